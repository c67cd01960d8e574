//! Stage 3, reward models: features `[B, D]` (or n-gram ids `[B, L]`, or packed token rows
//! `[B, 3, L]` for a fine-tuned encoder) in, one scalar reward per row `[B]` out.

mod build;
pub mod encoder;
mod mlp;
mod scorer;
pub mod transformer;

pub use build::build_model;
pub use mlp::{RewardModel, activate};
pub use scorer::Scorer;
