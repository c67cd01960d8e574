//! `[data]`: the synthetic generator's knobs, or a preference file and how its text becomes input.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// Longest line a preference file may have, in bytes (a Parquet row: as JSON). A longer
    /// one stops reading with an error (exit 2): a file without line breaks, a gzip bomb.
    #[schemars(range(min = 1))]
    pub max_line_bytes: usize,
    /// Most bytes one preference file may hold after decompression (Parquet: the uncompressed
    /// size it declares); reading stops with an error past it.
    #[schemars(range(min = 1))]
    pub max_file_bytes: usize,
    /// Most rows one preference file may hold; reading stops with an error past it.
    #[schemars(range(min = 1))]
    pub max_rows: usize,
}

/// Default of `data.max_line_bytes`: 16 MiB, a conversation of some 4 million words, or a row
/// with two 4096-wide embeddings many times over.
pub const MAX_LINE_BYTES: usize = 16 << 20;
/// Default of `data.max_file_bytes`: 2 GiB.
pub const MAX_FILE_BYTES: usize = 2 << 30;
/// Default of `data.max_rows`: two million rows.
pub const MAX_ROWS: usize = 2_000_000;

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
            max_line_bytes: MAX_LINE_BYTES,
            max_file_bytes: MAX_FILE_BYTES,
            max_rows: MAX_ROWS,
        }
    }
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
