//! Stage 8, analysis: the store read back into polars tables ([`query`]), written for people
//! and programs ([`output`]), and drawn as paper figures ([`plot`]); preference files'
//! reports as a table ([`data_table`]); runs as TensorBoard event files ([`tensorboard`]); an
//! experiment's figures, tables and provenance as one HTML page ([`report`]).

pub mod data_table;
pub mod output;
pub mod plot;
pub mod query;
pub mod report;
pub mod tensorboard;
