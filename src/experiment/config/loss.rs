//! `[loss]`: the regularizer and its λ, the margin.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which penalty is added to the Bradley–Terry term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Regularizer {
    None,
    /// `λ · mean((r_a + r_b)²)`.
    PairSumSq,
    /// `λ · N · (mean of the batch's 2N rewards)²` (BSR).
    BatchSum,
    /// `λ · mean(r_a² + r_b²)`.
    L2,
}

/// `[loss]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    pub regularizer: Regularizer,
    /// λ ≥ 0; 0 is the unregularized loss.
    #[schemars(range(min = 0))]
    pub lambda: f64,
    /// m ≥ 0 in the pairwise term −log σ(r_a − r_b − m); combinable with any regularizer.
    #[schemars(range(min = 0))]
    pub margin: f64,
    /// Add each pair's `margin` column (preference files) to m; pairs without one add 0.
    pub margin_from_data: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig { regularizer: Regularizer::PairSumSq, lambda: 0.0, margin: 0.0, margin_from_data: false }
    }
}
