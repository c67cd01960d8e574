//! A checkpoint's `config.json`, read as Hugging Face's `BertConfig`, and the checks that make
//! a checkpoint usable: BERT-family, absolute positions, a known activation.

use std::path::Path;

use serde::Deserialize;

use super::checkpoint_error::CheckpointError;

/// The fields of `config.json` that `BertModel` reads (others are ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BertConfig {
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_position")]
    pub position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position() -> String {
    "absolute".into()
}

/// Most parameters an encoder may have: the bound every rmlab model has (README, "2²⁸
/// parameters a model"; `experiment::config::validate`), so that a `config.json` of absurd
/// sizes is refused when it is read rather than failing in LibTorch's allocator.
pub const MAX_PARAMETERS: u128 = 1 << 28;

/// The feed-forward non-linearity of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    Relu,
}

impl BertConfig {
    /// Reads and checks `config.json`; the error names the file and what is wrong, at
    /// `model.encoder`.
    pub fn read(path: &Path) -> Result<BertConfig, CheckpointError> {
        let bad = |e: String| CheckpointError::at("model.encoder", format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        BertConfig::parse(&text).map_err(bad)
    }

    /// Parses and checks the text of a `config.json`.
    pub fn parse(text: &str) -> Result<BertConfig, String> {
        let c: BertConfig = serde_json::from_str(text).map_err(|e| format!("not a BERT config: {e}"))?;
        match c.model_type.as_deref() {
            Some("bert") => {}
            other => {
                return Err(format!(
                    "model_type = {} is not BERT-family; rmlab's encoder is Hugging Face's BertModel (model_type = \"bert\": BERT, MiniLM, BGE, E5, …)",
                    other.map_or("(missing)".into(), |t| format!("\"{t}\""))
                ));
            }
        }
        if c.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type = \"{}\" is not supported (only \"absolute\")",
                c.position_embedding_type
            ));
        }
        c.act()?;
        if c.hidden_size == 0
            || c.num_attention_heads == 0
            || !c.hidden_size.is_multiple_of(c.num_attention_heads)
        {
            return Err(format!(
                "hidden_size = {} is not a positive multiple of num_attention_heads = {}",
                c.hidden_size, c.num_attention_heads
            ));
        }
        let params = c.parameters();
        if params > MAX_PARAMETERS {
            return Err(format!(
                "the encoder would have {params} parameters (vocab_size = {}, hidden_size = {}, num_hidden_layers = {}, \
                 intermediate_size = {}, max_position_embeddings = {}, type_vocab_size = {}); at most 2²⁸ (1 GiB of float32) fit",
                c.vocab_size,
                c.hidden_size,
                c.num_hidden_layers,
                c.intermediate_size,
                c.max_position_embeddings,
                c.type_vocab_size
            ));
        }
        if c.type_vocab_size < 2 {
            return Err(format!(
                "type_vocab_size = {}: a prompt–response pair needs token types 0 and 1",
                c.type_vocab_size
            ));
        }
        Ok(c)
    }

    pub fn act(&self) -> Result<Act, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Act::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Act::GeluTanh),
            "relu" => Ok(Act::Relu),
            other => Err(format!("hidden_act = \"{other}\" is not supported (gelu, gelu_new, relu)")),
        }
    }

    /// Parameters of the `BertModel` this config builds (embeddings, layer norms, every
    /// layer's attention and feed-forward weights and biases), counted without overflow: what
    /// [`MAX_PARAMETERS`] bounds before anything is allocated.
    pub fn parameters(&self) -> u128 {
        let (h, f) = (self.hidden_size as u128, self.intermediate_size as u128);
        let (v, p, t) =
            (self.vocab_size as u128, self.max_position_embeddings as u128, self.type_vocab_size as u128);
        // Query, key, value and attention output [H, H] + [H]; intermediate [F, H] + [F]; output
        // [H, F] + [H]; two layer norms [H] + [H].
        let layer = 4 * (h * h + h) + (f * h + f) + (h * f + h) + 2 * 2 * h;
        (v + p + t) * h + 2 * h + (self.num_hidden_layers as u128).saturating_mul(layer)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"{"model_type": "bert", "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 40}"#;

    #[track_caller]
    fn rejects(edit: (&str, &str), needle: &str) {
        let text = MINI.replace(edit.0, edit.1);
        let err = BertConfig::parse(&text).unwrap_err();
        assert!(err.contains(needle), "{err}");
    }

    #[test]
    fn a_bert_config_reads_with_defaults() {
        let c = BertConfig::parse(MINI).unwrap();
        assert_eq!((c.head_dim(), c.type_vocab_size, c.layer_norm_eps), (8, 2, 1e-12));
        assert_eq!(c.act().unwrap(), Act::Gelu);
    }

    #[test]
    fn other_families_and_variants_are_refused() {
        rejects(("\"bert\"", "\"gpt2\""), "model_type = \"gpt2\" is not BERT-family");
        rejects(("\"model_type\": \"bert\",", ""), "model_type = (missing)");
        rejects(("\"hidden_size\": 32", "\"hidden_size\": 30"), "multiple of num_attention_heads");
        rejects(
            ("\"intermediate_size\": 64", "\"intermediate_size\": 64, \"hidden_act\": \"swish\""),
            "hidden_act",
        );
        rejects(
            (
                "\"intermediate_size\": 64",
                "\"intermediate_size\": 64, \"position_embedding_type\": \"relative_key\"",
            ),
            "relative_key",
        );
        rejects(("\"vocab_size\": 50,", ""), "not a BERT config");
    }

    /// MINI's parameters by hand: embeddings (50 + 40 + 2) · 32 + 2 · 32 = 3008; a layer
    /// 4 · (32² + 32) + (64 · 32 + 64) + (32 · 64 + 32) + 4 · 32 = 8544, two of them.
    #[test]
    fn parameters_are_counted_as_bert_builds_them() {
        assert_eq!(BertConfig::parse(MINI).unwrap().parameters(), 3008 + 2 * 8544);
    }

    /// Sizes that would fail in LibTorch's allocator (exit 101) are refused when read, each
    /// naming the parameter count and the bound.
    #[test]
    fn absurd_sizes_are_refused_by_the_parameter_bound() {
        for edit in [
            ("\"intermediate_size\": 64", "\"intermediate_size\": 100000000000"),
            ("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1000000"),
            ("\"max_position_embeddings\": 40", "\"max_position_embeddings\": 10000000000"),
            ("\"intermediate_size\": 64", "\"intermediate_size\": 64, \"type_vocab_size\": 1000000000"),
            ("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 18446744073709551615"),
        ] {
            rejects(edit, "parameters (vocab_size = 50");
            rejects(edit, "at most 2²⁸");
        }
        // all-MiniLM-L6-v2's sizes fit: its published 22,713,216 parameters less the pooler
        // (384² + 384 = 147,840), which rmlab does not build.
        let minilm = r#"{"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
            "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512}"#;
        assert_eq!(BertConfig::parse(minilm).unwrap().parameters(), 22_713_216 - 147_840);
    }
}
