//! rmlab: reward models trained with a regularized pairwise loss,
//! `L = −log σ(r_a − r_b) + λ · (r_a + r_b)²`, and the study of what λ does.
//!
//! Data flows one way: [`spec`] → [`config`] → [`data`] → [`model`] → [`loss`] → [`train`]
//! → [`sink`] → [`store`] → [`query`] → [`output`]. [`sweep`] plans and runs the cells of a spec.

pub mod config;
pub mod data;
pub mod error;
pub mod flat_optim;
pub mod host;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod output;
pub mod plot;
pub mod provenance;
pub mod query;
pub mod runtime;
pub mod sink;
pub mod slurm;
pub mod spec;
pub mod stacked;
pub mod store;
pub mod sweep;
#[cfg(test)]
pub(crate) mod testing;
pub mod train;
pub mod vectorized;

pub use error::{Error, Result};
