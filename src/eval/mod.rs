//! Stage 5, evaluation: what is measured about a run's rewards and where it is reported.
//!
//! [`metrics`] (one split's losses, accuracy, magnitudes, with [`calibration`] against the
//! labels) and [`truth`] (agreement with a known
//! true reward) compute on the host in f64; [`evaluator`] runs them for every split at an
//! evaluation step; [`record`] is the sink interface runs report into; [`stats`] holds the
//! statistics that metrics, tables and figures share.

pub mod calibration;
pub mod evaluator;
pub mod graph_kind;
pub mod metrics;
pub mod record;
pub mod stats;
pub mod truth;

pub use record::{Divergence, MemorySink, MetricsSink, Outcome, RewardRow, Tee, TrainedModel};
