//! TensorBoard event files of rmlab runs, so that they sit beside other runs (TRL's) in one
//! TensorBoard: exported from the store ([`export`]) or written while training
//! ([`TrainingEvents`]), one directory a run named by its cell, a scalar `split/metric` for
//! every metric at every evaluation step, and the run's params as hparams hyperparameters.

pub mod event_file;
mod export;
pub mod proto;
mod run_dir;
mod sink;

pub use export::{Export, ExportRequest, ExportedRun, export};
pub use sink::TrainingEvents;
