//! Stage 1, what to run: a spec file ([`spec`]) is checked and expanded into cells, each a
//! resolved [`RunConfig`] ([`config`]) with its identity hash. The spec also declares its
//! figures ([`figure`]) and may name metrics ([`metric`], the shared vocabulary).

pub mod checkpoint;
pub mod config;
pub mod figure;
mod grid;
pub mod identity;
mod location;
pub mod metric;
pub mod spec;

pub use config::RunConfig;
pub use spec::{Cell, Spec, json_schema};
