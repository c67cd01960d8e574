//! rmlab: reward models trained with a regularized pairwise loss,
//! `L = −log σ(r_a − r_b) + λ · (r_a + r_b)²`, and the study of what λ does.
//!
//! Data flows one way, and each stage is a module that depends only on the stages before it
//! (docs/architecture.md; `tests/architecture.rs` fails on an import against the flow):
//!
//! | stage | module | what it is |
//! | --- | --- | --- |
//! | 0 | [`error`], [`runtime`], [`provenance`] | errors, the loaded LibTorch and devices, where a result came from |
//! | 1 | [`experiment`] | spec files → grid of cells → resolved run configs; figure declarations |
//! | 2 | [`data`] | synthetic Bradley–Terry pairs and preference files → responses, pairs, splits, tensors |
//! | 3 | [`model`] | reward models: inputs in, one scalar reward per row out |
//! | 4 | [`objective`] | the regularized pairwise loss: values and closed-form gradients |
//! | 5 | [`eval`] | metrics of rewards, truth metrics, the sink runs report into, shared statistics |
//! | 6 | [`train`] | the training loops: one cell with autograd, or many cells as one batched program |
//! | 7 | [`store`] | the SQLite results store: runs, metrics, summaries, rewards; merges |
//! | 8 | [`analysis`] | store → polars tables (query, output) and figures (plot) |
//! | 9 | [`sweep`], [`score`] | planning and running the cells of a spec (worker threads, SLURM arrays); scoring files with kept models |
//!
//! Unsafe code lives in one place, the batched engine's host kernels (`train::batched`).

#![deny(unsafe_code)]

pub mod analysis;
pub mod data;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod model;
pub mod objective;
pub mod provenance;
pub mod runtime;
pub mod score;
pub mod store;
pub mod sweep;
#[cfg(test)]
pub(crate) mod testing;
pub mod train;

pub use error::{Error, Result};
