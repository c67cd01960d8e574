//! A decoder checkpoint's `config.json`, read as Hugging Face's `LlamaConfig` (and the
//! `Qwen2Config` and `MistralConfig` that share its layout), and the checks that make it one
//! rmlab's [`super::llama::Llama`] computes exactly.

use serde::Deserialize;

/// The fields of `config.json` that the Llama family's forward pass reads (others ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct LlamaConfig {
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Key-value heads of grouped-query attention; all heads when absent.
    pub num_key_value_heads: Option<usize>,
    /// Width of a head; `hidden_size / num_attention_heads` when absent.
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Rotary base of older configs (transformers < 5 writes it at the top level).
    pub rope_theta: Option<f64>,
    /// Rotary parameters of newer configs (`rope_theta`, `rope_type`).
    pub rope_parameters: Option<RopeParameters>,
    /// Rotary scaling of older configs; only `null` (plain RoPE) is computed.
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Bias on the q, k, v and o projections (Llama's `attention_bias`).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    pub max_position_embeddings: usize,
    pub pad_token_id: Option<i64>,
    /// Mistral's and Qwen2's attention window; longer inputs are refused, not windowed.
    pub sliding_window: Option<usize>,
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
}

/// `rope_parameters` of a transformers ≥ 5 config.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RopeParameters {
    pub rope_theta: Option<f64>,
    pub rope_type: Option<String>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}

/// The architectures of the family, by `model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Llama,
    /// Llama's layout with bias on q, k and v.
    Qwen2,
    /// Llama's layout with a sliding attention window.
    Mistral,
}

impl LlamaConfig {
    /// Parses and checks the text of a `config.json`: a known family, plain RoPE, SiLU, and
    /// head counts that divide.
    pub fn parse(text: &str) -> Result<LlamaConfig, String> {
        let c: LlamaConfig =
            serde_json::from_str(text).map_err(|e| format!("not a Llama-family config: {e}"))?;
        c.family()?;
        if c.hidden_act != "silu" {
            return Err(format!("hidden_act = \"{}\" is not supported (silu)", c.hidden_act));
        }
        let rope_type = c.rope_parameters.as_ref().and_then(|r| r.rope_type.as_deref()).unwrap_or("default");
        let scaled = c.rope_scaling.as_ref().is_some_and(|s| !s.is_null());
        if rope_type != "default" || scaled {
            return Err(format!(
                "rope_type = \"{rope_type}\"{}: only plain RoPE (\"default\") is computed",
                if scaled { " with rope_scaling" } else { "" }
            ));
        }
        let (heads, kv) = (c.num_attention_heads, c.kv_heads());
        if heads == 0 || kv == 0 || !heads.is_multiple_of(kv) {
            return Err(format!(
                "num_attention_heads = {heads} is not a positive multiple of num_key_value_heads = {kv}"
            ));
        }
        if c.head_dim.is_none() && !c.hidden_size.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size = {} is not a multiple of num_attention_heads = {heads}",
                c.hidden_size
            ));
        }
        if c.head_dim() == 0 || !c.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head_dim = {} is not a positive even number (RoPE rotates pairs)",
                c.head_dim()
            ));
        }
        if !(c.theta() > 0.0 && c.theta().is_finite()) {
            return Err(format!("rope_theta = {} is not a positive number", c.theta()));
        }
        Ok(c)
    }

    /// The family by `model_type`; an unknown architecture is bad input.
    pub fn family(&self) -> Result<Family, String> {
        match self.model_type.as_deref() {
            Some("llama") => Ok(Family::Llama),
            Some("qwen2") => Ok(Family::Qwen2),
            Some("mistral") => Ok(Family::Mistral),
            other => Err(format!(
                "model_type = {} is not a Llama-family decoder (llama, qwen2, mistral)",
                other.map_or("(missing)".into(), |t| format!("\"{t}\""))
            )),
        }
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The rotary base: `rope_parameters.rope_theta`, else `rope_theta`, else Llama's 10 000.
    pub fn theta(&self) -> f64 {
        self.rope_parameters.as_ref().and_then(|r| r.rope_theta).or(self.rope_theta).unwrap_or(10_000.0)
    }

    /// Whether q, k and v carry a bias (always in Qwen2; `attention_bias` in Llama).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.family() == Ok(Family::Qwen2)
    }

    /// The longest input the model attends over whole: the sliding window where one is on.
    pub fn max_length(&self) -> usize {
        let window = match (self.family(), self.use_sliding_window) {
            (Ok(Family::Qwen2), Some(false) | None) => None,
            _ => self.sliding_window,
        };
        window.map_or(self.max_position_embeddings, |w| w.min(self.max_position_embeddings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = r#"{"model_type": "llama", "vocab_size": 96, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 128, "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}"#;

    #[track_caller]
    fn rejects(edit: (&str, &str), needle: &str) {
        let err = LlamaConfig::parse(&TINY.replace(edit.0, edit.1)).unwrap_err();
        assert!(err.contains(needle), "{err}");
    }

    #[test]
    fn a_llama_config_reads_with_defaults() {
        let c = LlamaConfig::parse(TINY).unwrap();
        assert_eq!((c.head_dim(), c.kv_heads(), c.theta(), c.rms_norm_eps), (16, 2, 100_000.0, 1e-6));
        assert_eq!((c.family(), c.qkv_bias(), c.max_length()), (Ok(Family::Llama), false, 128));
        let old = TINY.replace(
            r#""rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}"#,
            r#""rope_theta": 500.0"#,
        );
        assert_eq!(LlamaConfig::parse(&old).unwrap().theta(), 500.0);
        let qwen = LlamaConfig::parse(&TINY.replace("\"llama\"", "\"qwen2\"")).unwrap();
        assert!(qwen.qkv_bias());
        let mistral = TINY
            .replace("\"llama\"", "\"mistral\"")
            .replace("\"vocab_size\"", "\"sliding_window\": 32, \"vocab_size\"");
        assert_eq!(LlamaConfig::parse(&mistral).unwrap().max_length(), 32);
    }

    #[test]
    fn other_architectures_and_variants_are_refused() {
        rejects(("\"llama\"", "\"gpt2\""), "model_type = \"gpt2\" is not a Llama-family decoder");
        rejects(
            ("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"),
            "multiple of num_key_value_heads",
        );
        rejects(("\"hidden_size\": 64", "\"hidden_size\": 66"), "not a multiple of num_attention_heads");
        rejects(("\"rope_type\": \"default\"", "\"rope_type\": \"llama3\""), "only plain RoPE");
        rejects(("\"vocab_size\": 96,", "\"hidden_act\": \"gelu\", \"vocab_size\": 96,"), "hidden_act");
        rejects(("\"vocab_size\": 96,", ""), "not a Llama-family config");
    }
}
