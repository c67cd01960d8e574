//! `[eval]`: how often a run is evaluated, and which final rewards it keeps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[eval]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Evaluate train and val splits every this many steps (and at step 0 and the last step).
    #[schemars(range(min = 1))]
    pub every: usize,
    /// Which final rewards the run stores, one row per response (`rewards` table). A sweep of
    /// thousands of cells keeps `"none"`: its metrics and summaries are computed all the same.
    pub rewards: KeptRewards,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig { every: 50, rewards: KeptRewards::All }
    }
}

/// `eval.rewards`: which final rewards a run stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeptRewards {
    /// The final reward of every response of every split with pairs.
    All,
    /// None: the run's metrics and summaries only.
    None,
}
