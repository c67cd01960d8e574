//! Hugging Face's `LlamaModel` in tch, which Qwen2 (bias on q, k and v) and Mistral share:
//! token embedding, RMSNorm, rotary position embedding, grouped-query attention and a SwiGLU
//! MLP, with parameters named as a checkpoint names them (`model.layers.3.self_attn.q_proj.
//! weight`, …) so that weights load by name; and the `score` head of
//! `LlamaForSequenceClassification`, read at the last non-padding token.

use std::collections::HashMap;

use tch::{Kind, Tensor, nn};

use super::llama_config::LlamaConfig;

/// A linear layer `[out, in]` with an optional bias `[out]`.
#[derive(Debug)]
struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    fn apply(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w, self.b.as_ref())
    }
}

#[derive(Debug)]
struct Layer {
    input_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A Llama-family decoder: token ids in, one final-norm state per token out.
#[derive(Debug)]
pub struct Llama {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// The reward head `score.weight` `[1, H]`, no bias.
    score: Tensor,
    cfg: LlamaConfig,
    /// Every parameter with its checkpoint name, for loading.
    named: Vec<(String, Tensor)>,
}

/// Builds parameters under a path; `named` keeps each with its checkpoint name.
struct Maker<'a> {
    root: &'a nn::Path<'a>,
    named: Vec<(String, Tensor)>,
    trainable: bool,
}

impl Maker<'_> {
    fn tensor(&mut self, name: &str, dims: &[usize]) -> Tensor {
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        // tch's variable names may not contain dots: the path's components are the name's.
        let mut p = self.root.clone();
        let (parent, leaf) = name.rsplit_once('.').unwrap_or(("", name));
        for part in parent.split('.').filter(|s| !s.is_empty()) {
            p = p / part;
        }
        let t = if self.trainable { p.zeros(leaf, &dims) } else { p.zeros_no_train(leaf, &dims) };
        self.named.push((name.to_string(), t.shallow_clone()));
        t
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize, bias: bool) -> Linear {
        Linear {
            w: self.tensor(&format!("{name}.weight"), &[out, inp]),
            b: bias.then(|| self.tensor(&format!("{name}.bias"), &[out])),
        }
    }
}

impl Llama {
    /// The decoder's parameters under `root`, zeros until [`Llama::load`]; all trainable or
    /// none.
    pub fn new(root: &nn::Path, cfg: &LlamaConfig, trainable: bool) -> Llama {
        let (h, f, d) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
        let (heads, kv) = (cfg.num_attention_heads, cfg.kv_heads());
        let qkv_bias = cfg.qkv_bias();
        let mut m = Maker { root, named: Vec::new(), trainable };
        let embed = m.tensor("model.embed_tokens.weight", &[cfg.vocab_size, h]);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                Layer {
                    input_norm: m.tensor(&format!("{p}.input_layernorm.weight"), &[h]),
                    q: m.linear(&format!("{p}.self_attn.q_proj"), heads * d, h, qkv_bias),
                    k: m.linear(&format!("{p}.self_attn.k_proj"), kv * d, h, qkv_bias),
                    v: m.linear(&format!("{p}.self_attn.v_proj"), kv * d, h, qkv_bias),
                    o: m.linear(&format!("{p}.self_attn.o_proj"), h, heads * d, cfg.attention_bias),
                    post_norm: m.tensor(&format!("{p}.post_attention_layernorm.weight"), &[h]),
                    gate: m.linear(&format!("{p}.mlp.gate_proj"), f, h, cfg.mlp_bias),
                    up: m.linear(&format!("{p}.mlp.up_proj"), f, h, cfg.mlp_bias),
                    down: m.linear(&format!("{p}.mlp.down_proj"), h, f, cfg.mlp_bias),
                }
            })
            .collect();
        let norm = m.tensor("model.norm.weight", &[h]);
        let score = m.tensor("score.weight", &[1, h]);
        Llama { embed, layers, norm, score, cfg: cfg.clone(), named: m.named }
    }

    /// Copies every parameter from `tensors` by its checkpoint name. The `score` head may be
    /// absent (a base language model, not a reward model): it is then left as it is and
    /// `Ok(false)` says so. Any other missing or misshapen tensor is an error naming it.
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<bool, String> {
        let mut has_score = true;
        tch::no_grad(|| {
            for (name, var) in &self.named {
                let Some(src) = tensors.get(name) else {
                    if name == "score.weight" {
                        has_score = false;
                        continue;
                    }
                    return Err(format!("no tensor `{name}`"));
                };
                if src.size() != var.size() {
                    return Err(format!(
                        "`{name}` has shape {:?}, config.json implies {:?}",
                        src.size(),
                        var.size()
                    ));
                }
                var.shallow_clone().copy_(&src.to_kind(Kind::Float));
            }
            Ok(())
        })?;
        Ok(has_score)
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Final-norm token states `[B, T, H]` float32 of ids `[B, T]` int64 and attention mask
    /// `[B, T]` (1 = token, 0 = padding, on either side). Positions count a row's tokens
    /// only, so a row's states do not depend on its padding; a token attends to the tokens at
    /// or before it.
    // `x = x + …`, not `x += …`: tch's `+=` adds in place, into a tensor autograd has saved.
    #[allow(clippy::assign_op_pattern)]
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let (heads, kv, d) =
            (self.cfg.num_attention_heads as i64, self.cfg.kv_heads() as i64, self.cfg.head_dim() as i64);
        let mask = mask.to_kind(Kind::Int64);
        let positions = (mask.cumsum(1, Kind::Int64) - 1).clamp_min(0);
        let (cos, sin) = self.rotary(&positions);
        // Additive bias [B, 1, T, T]: 0 where the key is a token at or before the query, the
        // lowest float elsewhere (finite, as Hugging Face uses it, so that a padding query's
        // row, attending to nothing, stays finite).
        let causal = Tensor::ones([t, t], (Kind::Bool, ids.device())).tril(0);
        let keys = mask.view([b, 1, 1, t]).to_kind(Kind::Bool);
        let allowed = causal.view([1, 1, t, t]).logical_and(&keys);
        let bias = Tensor::zeros([b, 1, t, t], (Kind::Float, ids.device()))
            .masked_fill(&allowed.logical_not(), f32::MIN as f64);
        let mut x = Tensor::embedding(&self.embed, ids, -1, false, false);
        for layer in &self.layers {
            let a = self.rms_norm(&x, &layer.input_norm);
            let q = layer.q.apply(&a).view([b, t, heads, d]).transpose(1, 2);
            let k = layer.k.apply(&a).view([b, t, kv, d]).transpose(1, 2);
            let v = layer.v.apply(&a).view([b, t, kv, d]).transpose(1, 2);
            let (q, k) = (rotate(&q, &cos, &sin), rotate(&k, &cos, &sin));
            // Grouped-query attention: query head i reads key-value head i / (heads / kv).
            let (k, v) = (
                k.repeat_interleave_self_int(heads / kv, 1, None),
                v.repeat_interleave_self_int(heads / kv, 1, None),
            );
            let ctx = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&bias), 0.0, false, None, false)
                .transpose(1, 2)
                .reshape([b, t, heads * d]);
            x = x + layer.o.apply(&ctx);
            let m = self.rms_norm(&x, &layer.post_norm);
            x = x + layer.down.apply(&(layer.gate.apply(&m).silu() * layer.up.apply(&m)));
        }
        self.rms_norm(&x, &self.norm)
    }

    /// The index `[B]` of each row's last token that is not padding, read as
    /// `LlamaForSequenceClassification` reads it: the rightmost position whose id is not
    /// `pad_token_id` (so with pad = eos a trailing eos is skipped, as there), or, in a config
    /// without a pad id, the rightmost position the attention mask keeps.
    pub fn last_token(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let t = ids.size()[1];
        let keep = match self.cfg.pad_token_id {
            Some(pad) => ids.ne(pad),
            None => mask.to_kind(Kind::Bool),
        };
        (Tensor::arange(t, (Kind::Int64, ids.device())).view([1, t]) * keep.to_kind(Kind::Int64))
            .argmax(1, false)
    }

    /// States `[B, H]` at each row's last token ([`Llama::last_token`]) of states `[B, T, H]`.
    pub fn pool_last(&self, states: &Tensor, ids: &Tensor, mask: &Tensor) -> Tensor {
        let (b, h) = (states.size()[0], states.size()[2]);
        let idx = self.last_token(ids, mask).view([b, 1, 1]).expand([b, 1, h], false);
        states.gather(1, &idx, false).squeeze_dim(1)
    }

    /// The reward `[B]` of each row: the `score` head on its last-token state.
    pub fn score(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let last = self.pool_last(&self.forward(ids, mask), ids, mask);
        last.linear::<&Tensor>(&self.score, None).squeeze_dim(1)
    }

    /// `x / rms(x) · w` over the last dim, in float32 as Hugging Face's `LlamaRMSNorm`.
    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Tensor {
        let var = x.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        w * (x * (var + self.cfg.rms_norm_eps).rsqrt())
    }

    /// cos and sin `[B, 1, T, d]` of the rotary angles at `positions` `[B, T]`: frequency j
    /// is θ^(−2j/d), computed in float32 as Hugging Face computes it, each half of the head
    /// rotated by the same angles.
    fn rotary(&self, positions: &Tensor) -> (Tensor, Tensor) {
        let d = self.cfg.head_dim() as i64;
        let dev = positions.device();
        let exps = Tensor::arange_start_step(0, d, 2, (Kind::Int64, dev)).to_kind(Kind::Float) / d as f64;
        let inv_freq = Tensor::from(self.cfg.theta() as f32).to_device(dev).pow(&exps).reciprocal();
        let angles = positions.to_kind(Kind::Float).unsqueeze(-1) * inv_freq.view([1, 1, d / 2]);
        let emb = Tensor::cat(&[&angles, &angles], -1).unsqueeze(1);
        (emb.cos(), emb.sin())
    }
}

/// `x cos + rotate_half(x) sin`, where rotate_half maps halves (x₁, x₂) to (−x₂, x₁).
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let (x1, x2) = (x.narrow(3, 0, half), x.narrow(3, half, half));
    x * cos + Tensor::cat(&[&(-x2), &x1], 3) * sin
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::model::transformer::weights;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoder")
    }

    fn rows(v: &serde_json::Value) -> Tensor {
        let rows: Vec<Vec<i64>> = serde_json::from_value(v.clone()).unwrap();
        let (b, t) = (rows.len() as i64, rows[0].len() as i64);
        Tensor::from_slice(&rows.concat()).view([b, t])
    }

    fn floats(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    /// Scores and last-token states of a random LlamaForSequenceClassification and
    /// Qwen2ForSequenceClassification by `transformers` (tests/fixtures/gen_decoder_fixture.py),
    /// with padding on the right and on the left, within 1e-5.
    #[test]
    fn equals_transformers_with_padding_on_either_side() {
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap()).unwrap();
        for name in ["tiny-llama", "tiny-qwen2"] {
            let dir = fixture().join(name);
            let cfg = LlamaConfig::parse(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let model = Llama::new(&vs.root(), &cfg, false);
            assert!(model.load(&weights::read(&dir).unwrap()).unwrap(), "{name} has a score head");
            for case in expected["models"][name]["cases"].as_array().unwrap() {
                let (ids, mask) = (rows(&case["input_ids"]), rows(&case["attention_mask"]));
                let got = tch::no_grad(|| model.score(&ids, &mask));
                let want: Vec<f32> = serde_json::from_value(case["scores"].clone()).unwrap();
                let states = tch::no_grad(|| model.pool_last(&model.forward(&ids, &mask), &ids, &mask));
                let want_states: Vec<Vec<f32>> = serde_json::from_value(case["last_hidden"].clone()).unwrap();
                let pad = &case["padding"];
                for (g, w) in floats(&got).iter().zip(&want) {
                    assert!((g - w).abs() < 1e-5, "{name} {pad}: score {g} vs {w}");
                }
                for (g, w) in floats(&states).iter().zip(want_states.concat()) {
                    assert!((g - w).abs() < 1e-5, "{name} {pad}: state {g} vs {w}");
                }
            }
        }
    }

    /// A missing or misshapen tensor is named; a missing score head is reported, not an error.
    #[test]
    fn missing_and_misshapen_tensors_are_named() {
        let dir = fixture().join("tiny-llama");
        let cfg = LlamaConfig::parse(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = Llama::new(&vs.root(), &cfg, false);
        let mut w = weights::read(&dir).unwrap();
        w.remove("score.weight");
        assert_eq!(model.load(&w), Ok(false));
        w.remove("model.layers.1.mlp.up_proj.weight");
        assert_eq!(model.load(&w).unwrap_err(), "no tensor `model.layers.1.mlp.up_proj.weight`");
        w.insert(
            "model.layers.1.mlp.up_proj.weight".into(),
            Tensor::zeros([3, 64], (Kind::Float, tch::Device::Cpu)),
        );
        assert!(model.load(&w).unwrap_err().contains("has shape [3, 64], config.json implies [128, 64]"));
    }

    /// The last non-padding token, by pad id (as Hugging Face) and by mask without one.
    #[test]
    fn last_token_by_hand() {
        let dir = fixture().join("tiny-llama");
        let mut cfg = LlamaConfig::parse(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let ids = Tensor::from_slice(&[5i64, 6, 0, 0, 0, 0, 7, 8, 9, 4, 0, 0]).view([3, 4]);
        let mask = Tensor::from_slice(&[1i64, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0]).view([3, 4]);
        let model = Llama::new(&vs.root(), &cfg, false);
        // Row 3 ends in a token that is the pad id: Hugging Face reads the token before it.
        assert_eq!(Vec::<i64>::try_from(model.last_token(&ids, &mask)).unwrap(), [1, 3, 1]);
        cfg.pad_token_id = None;
        let model = Llama::new(&(vs.root() / "b"), &cfg, false);
        assert_eq!(Vec::<i64>::try_from(model.last_token(&ids, &mask)).unwrap(), [1, 3, 2]);
    }
}
