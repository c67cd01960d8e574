//! Stage 8, analysis: the store read back into polars tables ([`query`]), written for people
//! and programs ([`output`]), and drawn as paper figures ([`plot`]).

pub mod output;
pub mod plot;
pub mod query;
