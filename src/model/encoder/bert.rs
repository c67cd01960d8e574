//! Hugging Face's `BertModel` in tch: embeddings, self-attention, feed-forward and layer norms,
//! with parameters named as in a checkpoint's `model.safetensors` (`embeddings.word_embeddings.
//! weight`, `encoder.layer.3.attention.self.query.bias`, …) so that weights load by name.

use std::path::Path;

use tch::{Kind, Tensor, nn};

use super::config::{Act, BertConfig};
use crate::error::{Error, Result};
use crate::experiment::config::{Finetune, Precision};

/// The safetensors dtypes an encoder's weights may have: floating point, converted to float32
/// when loaded (half and bfloat16 exactly, float64 rounded). Integer, boolean and 8-bit float
/// tensors are refused: cast to float32 they would be numbers of no meaning.
pub const FLOAT_DTYPES: [&str; 4] = ["F32", "F16", "BF16", "F64"];

/// The names a parameter may have in a checkpoint, in the order they are looked up: its own,
/// with a `bert.` prefix (task models), and both with `gamma`/`beta` for old layer norms.
pub fn stored_names(name: &str) -> [String; 4] {
    let legacy =
        name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta");
    [name.to_string(), format!("bert.{name}"), legacy.clone(), format!("bert.{legacy}")]
}

/// Every parameter `config` builds, with its shape, in the order [`Bert::new`] makes them:
/// what a checkpoint's weights are checked against before anything is allocated.
pub fn parameter_shapes(cfg: &BertConfig) -> Vec<(String, Vec<i64>)> {
    let (h, f) = (cfg.hidden_size as i64, cfg.intermediate_size as i64);
    let mut out = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![cfg.vocab_size as i64, h]),
        ("embeddings.position_embeddings.weight".to_string(), vec![cfg.max_position_embeddings as i64, h]),
        ("embeddings.token_type_embeddings.weight".to_string(), vec![cfg.type_vocab_size as i64, h]),
        ("embeddings.LayerNorm.weight".to_string(), vec![h]),
        ("embeddings.LayerNorm.bias".to_string(), vec![h]),
    ];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("encoder.layer.{i}");
        let linears = [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("attention.output.LayerNorm", h, 0),
            ("intermediate.dense", f, h),
            ("output.dense", h, f),
            ("output.LayerNorm", h, 0),
        ];
        for (part, out_dim, in_dim) in linears {
            // A layer norm (in_dim 0) has a weight of [H] where a linear layer has [out, in].
            let w = if in_dim == 0 { vec![out_dim] } else { vec![out_dim, in_dim] };
            out.push((format!("{p}.{part}.weight"), w));
            out.push((format!("{p}.{part}.bias"), vec![out_dim]));
        }
    }
    out
}

/// A linear layer `[out, in]` + `[out]`.
#[derive(Debug)]
struct Linear {
    w: Tensor,
    b: Tensor,
}

/// A layer norm's scale and shift `[H]`.
#[derive(Debug)]
struct Norm {
    w: Tensor,
    b: Tensor,
}

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    inter: Linear,
    out: Linear,
    out_norm: Norm,
}

/// A BERT encoder: token ids in, one state per token out.
#[derive(Debug)]
pub struct Bert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    cfg: BertConfig,
    act: Act,
    /// Dropout on (fine-tuning with `model.dropout = true`) in training forwards.
    dropout: bool,
    /// The matmuls' kind: float32, or bfloat16 under `precision = "bf16"`.
    compute: Kind,
    /// Every parameter with its checkpoint name, for loading.
    named: Vec<(String, Tensor)>,
}

/// Builds parameters under a path, trainable or not.
struct Maker<'a> {
    root: &'a nn::Path<'a>,
    named: Vec<(String, Tensor)>,
}

impl Maker<'_> {
    fn tensor(&mut self, name: &str, dims: &[i64], trainable: bool) -> Tensor {
        let mut p = self.root.clone();
        let (parent, leaf) = name.rsplit_once('.').expect("a dotted parameter name");
        for part in parent.split('.') {
            p = p / part;
        }
        let t = if trainable { p.zeros(leaf, dims) } else { p.zeros_no_train(leaf, dims) };
        self.named.push((name.to_string(), t.shallow_clone()));
        t
    }

    fn linear(&mut self, name: &str, out: usize, inp: usize, trainable: bool) -> Linear {
        Linear {
            w: self.tensor(&format!("{name}.weight"), &[out as i64, inp as i64], trainable),
            b: self.tensor(&format!("{name}.bias"), &[out as i64], trainable),
        }
    }

    fn norm(&mut self, name: &str, h: usize, trainable: bool) -> Norm {
        Norm {
            w: self.tensor(&format!("{name}.weight"), &[h as i64], trainable),
            b: self.tensor(&format!("{name}.bias"), &[h as i64], trainable),
        }
    }
}

impl Bert {
    /// The encoder's parameters under `root` (zeros until [`Bert::load`]), with the ones
    /// `finetune` trains marked trainable: none, all, or the last K layers.
    pub fn new(
        root: &nn::Path,
        cfg: &BertConfig,
        finetune: Finetune,
        dropout: bool,
        precision: Precision,
    ) -> Bert {
        let n = cfg.num_hidden_layers;
        let trains_layer = |i: usize| match finetune {
            Finetune::None => false,
            Finetune::All => true,
            Finetune::Last(k) => i + k >= n,
        };
        let emb = finetune == Finetune::All;
        let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
        let mut m = Maker { root, named: Vec::new() };
        let word = m.tensor("embeddings.word_embeddings.weight", &[cfg.vocab_size as i64, h as i64], emb);
        let position = m.tensor(
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings as i64, h as i64],
            emb,
        );
        let token_type =
            m.tensor("embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size as i64, h as i64], emb);
        let emb_norm = m.norm("embeddings.LayerNorm", h, emb);
        let layers = (0..n)
            .map(|i| {
                let t = trains_layer(i);
                let p = format!("encoder.layer.{i}");
                Layer {
                    query: m.linear(&format!("{p}.attention.self.query"), h, h, t),
                    key: m.linear(&format!("{p}.attention.self.key"), h, h, t),
                    value: m.linear(&format!("{p}.attention.self.value"), h, h, t),
                    attn_out: m.linear(&format!("{p}.attention.output.dense"), h, h, t),
                    attn_norm: m.norm(&format!("{p}.attention.output.LayerNorm"), h, t),
                    inter: m.linear(&format!("{p}.intermediate.dense"), f, h, t),
                    out: m.linear(&format!("{p}.output.dense"), h, f, t),
                    out_norm: m.norm(&format!("{p}.output.LayerNorm"), h, t),
                }
            })
            .collect();
        Bert {
            word,
            position,
            token_type,
            emb_norm,
            layers,
            act: cfg.act().expect("checked when the config was read"),
            cfg: cfg.clone(),
            dropout,
            compute: match precision {
                Precision::Fp32 => Kind::Float,
                Precision::Bf16 => Kind::BFloat16,
            },
            named: m.named,
        }
    }

    /// Copies every parameter from a checkpoint's safetensors, found by its name (or with a
    /// `bert.` prefix, as task models save it; `gamma`/`beta` for old layer norms: see
    /// [`stored_names`]). Every missing or misshapen tensor, and every tensor of a kind that is
    /// not floating point ([`FLOAT_DTYPES`]: an integer table would be cast to floats of no
    /// meaning), is an error naming it and the file: [`Error::Unreadable`] (exit code 1), as the
    /// checkpoint was checked before the run ([`super::Checkpoint::open`]) and its read failed
    /// while running.
    pub fn load(&self, path: &Path) -> Result<()> {
        let bad = |message: String| Error::unreadable(path, message);
        let tensors: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?
            .into_iter()
            .collect();
        tch::no_grad(|| {
            for (name, var) in &self.named {
                let (stored, src) = stored_names(name)
                    .into_iter()
                    .find_map(|n| tensors.get(&n).map(|t| (n, t)))
                    .ok_or_else(|| bad(format!("no tensor `{name}` (nor `bert.{name}`)")))?;
                if !matches!(src.kind(), Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double) {
                    return Err(bad(format!(
                        "`{stored}` is stored as {:?}; encoder weights must be floating point ({})",
                        src.kind(),
                        FLOAT_DTYPES.join(", ")
                    )));
                }
                if src.size() != var.size() {
                    return Err(bad(format!(
                        "`{stored}` has shape {:?}, config.json implies {:?}",
                        src.size(),
                        var.size()
                    )));
                }
                let mut var = var.shallow_clone();
                var.copy_(&src.to_kind(Kind::Float));
            }
            Ok(())
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// Token states `[B, L, H]` float32 of ids `[B, L]`, token types `[B, L]` and attention
    /// mask `[B, L]` (1 = token, 0 = padding; padded positions attend and are attended by
    /// nothing real). `train` turns dropout on where the model has it on.
    pub fn forward_t(&self, ids: &Tensor, types: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let (b, l) = (ids.size()[0], ids.size()[1]);
        let (h, heads) = (self.cfg.hidden_size as i64, self.cfg.num_attention_heads as i64);
        let drop = |x: Tensor, p: f64| if train && self.dropout && p > 0.0 { x.dropout(p, true) } else { x };
        let positions = self.position.narrow(0, 0, l).unsqueeze(0);
        let x = Tensor::embedding(&self.word, ids, -1, false, false)
            + positions
            + Tensor::embedding(&self.token_type, types, -1, false, false);
        let mut x = drop(self.norm(&x, &self.emb_norm), self.cfg.hidden_dropout_prob);
        // Additive key mask [B, 1, 1, L]: 0 for tokens, the kind's lowest value for padding
        // (as BertModel builds it), so that softmax gives padding zero weight.
        let min = if self.compute == Kind::BFloat16 { -3.38e38 } else { f32::MIN as f64 };
        let bias = ((mask.to_kind(Kind::Float) - 1.0) * -min).view([b, 1, 1, l]).to_kind(self.compute);
        let attn_p = if train && self.dropout { self.cfg.attention_probs_dropout_prob } else { 0.0 };
        for layer in &self.layers {
            // Query, key and value in one matmul against their stacked weights [3H, H] (one
            // larger GEMM runs faster than three), split as views: [3, B, heads, L, H / heads].
            let w = Tensor::cat(&[&layer.query.w, &layer.key.w, &layer.value.w], 0);
            let bias3 = Tensor::cat(&[&layer.query.b, &layer.key.b, &layer.value.b], 0);
            let qkv = self
                .linear(&x, &Linear { w, b: bias3 })
                .view([b, l, 3, heads, h / heads])
                .permute([2, 0, 3, 1, 4]);
            let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
            let ctx =
                Tensor::scaled_dot_product_attention(&q, &k, &v, Some(&bias), attn_p, false, None, false)
                    .transpose(1, 2)
                    .reshape([b, l, h])
                    .to_kind(Kind::Float);
            let a =
                drop(self.linear(&ctx, &layer.attn_out).to_kind(Kind::Float), self.cfg.hidden_dropout_prob);
            let a = self.norm(&(a + &x), &layer.attn_norm);
            let i = self.activate(&self.linear(&a, &layer.inter));
            let o = drop(self.linear(&i, &layer.out).to_kind(Kind::Float), self.cfg.hidden_dropout_prob);
            x = self.norm(&(o + &a), &layer.out_norm);
        }
        x
    }

    /// `x Wᵀ + b` in the compute kind (bfloat16 under `bf16`, with float32 weights cast per
    /// call so that the optimizer keeps float32 masters).
    fn linear(&self, x: &Tensor, l: &Linear) -> Tensor {
        if self.compute == Kind::Float {
            x.linear(&l.w, Some(&l.b))
        } else {
            x.to_kind(self.compute).linear(&l.w.to_kind(self.compute), Some(l.b.to_kind(self.compute)))
        }
    }

    fn norm(&self, x: &Tensor, n: &Norm) -> Tensor {
        let h = self.cfg.hidden_size as i64;
        x.to_kind(Kind::Float).layer_norm([h], Some(&n.w), Some(&n.b), self.cfg.layer_norm_eps, true)
    }

    fn activate(&self, x: &Tensor) -> Tensor {
        match self.act {
            Act::Gelu => x.gelu("none"),
            Act::GeluTanh => x.gelu("tanh"),
            Act::Relu => x.relu(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shapes checked before loading are the parameters `Bert::new` makes, name for
    /// name, and `BertConfig::parameters` counts their elements.
    #[test]
    fn parameter_shapes_are_what_new_builds() {
        let cfg = BertConfig::parse(
            r#"{"model_type": "bert", "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 3,
                "num_attention_heads": 4, "intermediate_size": 48, "max_position_embeddings": 40,
                "type_vocab_size": 3}"#,
        )
        .unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let bert = Bert::new(&vs.root(), &cfg, Finetune::Last(1), false, Precision::Fp32);
        let built: Vec<(String, Vec<i64>)> = bert.named.iter().map(|(n, t)| (n.clone(), t.size())).collect();
        let listed = parameter_shapes(&cfg);
        assert_eq!(listed, built);
        let elements: i64 = listed.iter().map(|(_, s)| s.iter().product::<i64>()).sum();
        assert_eq!(elements as u128, cfg.parameters());
    }

    #[test]
    fn stored_names_cover_task_models_and_old_layer_norms() {
        assert_eq!(
            stored_names("encoder.layer.0.output.LayerNorm.bias"),
            [
                "encoder.layer.0.output.LayerNorm.bias",
                "bert.encoder.layer.0.output.LayerNorm.bias",
                "encoder.layer.0.output.LayerNorm.beta",
                "bert.encoder.layer.0.output.LayerNorm.beta",
            ]
        );
    }
}
