//! Stage 3, reward models: features `[B, D]` (or n-gram ids `[B, L]`) in, one scalar reward
//! per row `[B]` out.

mod mlp;

pub use mlp::{RewardModel, activate};
