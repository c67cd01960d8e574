//! `[train]`: optimizer, batches, schedule, early stopping, and which model a run keeps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Optimizer of the training loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Adam,
    Sgd,
}

/// `[train]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub optimizer: OptimizerKind,
    /// Peak learning rate (the schedule scales it).
    pub lr: f64,
    /// L2 penalty added to the gradient by the optimizer (LibTorch's coupled weight decay).
    #[schemars(range(min = 0))]
    pub weight_decay: f64,
    /// SGD momentum (must be 0 for Adam).
    #[schemars(range(min = 0, max = 1))]
    pub momentum: f64,
    /// Pairs per micro-batch, or `"all"`: every training pair in every step (full batch).
    pub batch_size: BatchSize,
    /// Optimizer steps.
    #[schemars(range(min = 1))]
    pub steps: usize,
    /// How batches are drawn from the training pairs.
    pub sampling: Sampling,
    /// Micro-batches accumulated into one optimizer step (each loss scaled by 1/this, as
    /// Hugging Face's Trainer does): an effective batch of `batch_size` × this.
    #[schemars(range(min = 1))]
    pub gradient_accumulation: usize,
    /// Learning-rate schedule after the warmup.
    pub schedule: Schedule,
    /// Steps of linear warmup from 0 to `lr` (or set `warmup_ratio`).
    pub warmup_steps: usize,
    /// Warmup as a fraction of `steps` (rounded up), instead of `warmup_steps`.
    #[schemars(range(min = 0, max = 1))]
    pub warmup_ratio: f64,
    /// Clip each step's gradient to this global L2 norm (`torch.nn.utils.clip_grad_norm_`; per
    /// cell in the batched engine); 0: no clipping.
    #[schemars(range(min = 0))]
    pub max_grad_norm: f64,
    /// Stop when this metric (of `early_stopping_split`) has not improved for
    /// `early_stopping_patience` evaluations, and keep the weights of its best evaluation; its
    /// direction is the metric's (losses fall, accuracies rise). Unset: no early stopping.
    pub early_stopping_metric: Option<String>,
    /// The split whose metric early stopping watches.
    pub early_stopping_split: String,
    /// Evaluations without improvement before stopping.
    #[schemars(range(min = 1))]
    pub early_stopping_patience: usize,
    /// Keep the trained model (weights as safetensors and the resolved config, in the store's
    /// `artifacts`): `final` (after the last step, or the restored best when early stopping),
    /// `best` (the early-stopping metric's best evaluation), `none`.
    pub save: SaveModel,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.0,
            batch_size: BatchSize::Pairs(128),
            steps: 1000,
            sampling: Sampling::WithReplacement,
            gradient_accumulation: 1,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            warmup_ratio: 0.0,
            max_grad_norm: 0.0,
            early_stopping_metric: None,
            early_stopping_split: "val".into(),
            early_stopping_patience: 3,
            save: SaveModel::None,
        }
    }
}

impl TrainConfig {
    /// Warmup steps: `warmup_steps`, or `warmup_ratio` of `steps` rounded up.
    pub fn warmup(&self) -> usize {
        if self.warmup_ratio > 0.0 {
            (self.warmup_ratio * self.steps as f64).ceil() as usize
        } else {
            self.warmup_steps
        }
    }
}

/// Pairs per micro-batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchSize {
    Pairs(usize),
    /// Every training pair, in order, every step.
    All,
}

impl BatchSize {
    /// The pairs of a step's micro-batch for `n` training pairs.
    pub fn pairs(self, n: usize) -> usize {
        match self {
            BatchSize::Pairs(b) => b,
            BatchSize::All => n,
        }
    }
}

impl Serialize for BatchSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BatchSize::Pairs(b) => s.serialize_u64(*b as u64),
            BatchSize::All => s.serialize_str("all"),
        }
    }
}

impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Pairs(u64),
            Word(String),
            Other(serde::de::IgnoredAny),
        }
        match Repr::deserialize(d)? {
            Repr::Pairs(b) => usize::try_from(b)
                .map(BatchSize::Pairs)
                .map_err(|_| serde::de::Error::custom(format!("batch size {b} is too large"))),
            Repr::Word(w) if w == "all" => Ok(BatchSize::All),
            Repr::Word(w) => {
                Err(serde::de::Error::custom(format!("expected a count of pairs or \"all\", found \"{w}\"")))
            }
            Repr::Other(_) => {
                Err(serde::de::Error::custom("invalid type: expected a count of pairs or \"all\""))
            }
        }
    }
}

impl JsonSchema for BatchSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BatchSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "pairs per micro-batch, or \"all\" for every training pair every step",
            "anyOf": [{ "type": "integer", "minimum": 1 }, { "const": "all" }]
        })
    }
}

/// How a step's training pairs are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Uniformly with replacement, independently every step.
    WithReplacement,
    /// Epochs: a new permutation of the training pairs a pass, cut into batches; the last
    /// batch of a pass is partial.
    Epochs,
}

/// Learning-rate schedule after warmup (Hugging Face's `get_*_schedule_with_warmup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `lr` throughout.
    Constant,
    /// Linear decay from `lr` to 0 at the last step.
    Linear,
    /// Half a cosine from `lr` to 0 at the last step.
    Cosine,
}

/// Which trained model a run keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaveModel {
    None,
    Final,
    Best,
}
