//! The fuzz targets of rmlab's readers: each takes arbitrary bytes as the content of one
//! input file and must return (an `Ok` or a clear `Err`), never panic, abort or hang.
//!
//! One function per target, shared by the coverage-guided libFuzzer binaries
//! (`fuzz/fuzz_targets/*.rs`, `just fuzz TARGET SECONDS`) and the corpus smoke test that
//! runs in `cargo test` (`tests/fuzz_corpus.rs`, which includes this file by path). Corpora
//! live in `fuzz/corpus/<target>/`.

use std::path::{Path, PathBuf};

use rmlab::experiment::config::{ModelConfig, PromptSplit};

/// A fuzz target: it must return on any input.
pub type Target = fn(&[u8]);

/// Every target, by name: the corpus directory and the binary are named after it.
pub const TARGETS: &[(&str, Target)] = &[
    ("spec", spec),
    ("preference_jsonl", preference_jsonl),
    ("preference_gz", preference_gz),
    ("preference_parquet", preference_parquet),
    ("embeddings", embeddings),
    ("encoder", encoder),
    ("store", store),
];

/// A fresh temporary directory for one input (removed when dropped); first, the default panic
/// hook back. libfuzzer-sys's hook aborts at the panic, before rmlab's own `catch_unwind` (the
/// Parquet reader's) can make it an error; a panic that leaves the target still aborts, as
/// libfuzzer-sys catches it and aborts.
fn scratch() -> tempfile::TempDir {
    static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    tempfile::Builder::new().prefix("rmlab-fuzz").tempdir().expect("a temporary directory")
}

/// Writes `data` to `name` in `dir`.
fn file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("writing the input file");
    path
}

/// The reader's options, from the input's length: every input is read one way, and the
/// fuzzer reaches all four by growing or shrinking inputs (a seed file stays a plain file).
fn options(data: &[u8]) -> (bool, PromptSplit) {
    let split = if data.len().is_multiple_of(2) { PromptSplit::CommonPrefix } else { PromptSplit::LastTurn };
    (data.len() % 4 >= 2, split)
}

/// Spec parsing and validation (`Spec::load`: TOML, typed sections, every cell of the grid,
/// figures), then the stored text and the JSON of every cell's config.
pub fn spec(data: &[u8]) {
    let dir = scratch();
    let path = file(dir.path(), "fuzz.toml", data);
    if let Ok(spec) = rmlab::experiment::Spec::load(&path) {
        let _ = spec.stored_text();
        if let Ok(cells) = spec.cells() {
            for c in cells.iter().take(64) {
                let _ = serde_json::to_string(&c.config);
            }
        }
    }
}

fn preference(data: &[u8], name: &str) {
    let dir = scratch();
    let path = file(dir.path(), name, data);
    let (skip, split) = options(data);
    let _ = rmlab::data::preference_file::read(&path, skip, split, rmlab::data::ReadLimits::default());
}

/// The JSONL preference reader.
pub fn preference_jsonl(data: &[u8]) {
    preference(data, "fuzz.jsonl")
}

/// The gzip-compressed JSONL reader (every gzip member).
pub fn preference_gz(data: &[u8]) {
    preference(data, "fuzz.jsonl.gz")
}

/// The Parquet reader (polars).
pub fn preference_parquet(data: &[u8]) {
    preference(data, "fuzz.parquet")
}

/// The JSONL reader on rows with `embedding_chosen` / `embedding_rejected` (its corpus holds
/// such rows; the most common embedding length decides which rows are bad).
pub fn embeddings(data: &[u8]) {
    preference(data, "fuzz.jsonl")
}

/// The bytes that separate `config.json` from `model.safetensors` in an `encoder` input:
/// 0xFF never occurs in UTF-8 text.
pub const ENCODER_SPLIT: u8 = 0xFF;

/// Parameters above which a checked config is not built into a model: a consistent config
/// of a large model is a question of memory, not of reading (2^24 floats, 64 MiB).
const MAX_PARAMETERS: u128 = 1 << 24;

/// An encoder checkpoint: the input is `config.json`, 0xFF, `model.safetensors`; the tokenizer
/// is the tiny test checkpoint's. Opens and checks it (`Checkpoint::open`: config, the
/// safetensors header), and when that passes and the model is small, builds the encoder and
/// loads its weights (`EncoderRewardModel::new`, `Bert::load`).
pub fn encoder(data: &[u8]) {
    let (config, weights) = match data.iter().position(|&b| b == ENCODER_SPLIT) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let dir = scratch();
    file(dir.path(), "config.json", config);
    file(dir.path(), "model.safetensors", weights);
    file(dir.path(), "tokenizer.json", tiny_tokenizer().as_bytes());
    let cfg = ModelConfig {
        kind: rmlab::experiment::config::ModelKind::Encoder,
        encoder: Some(dir.path().display().to_string()),
        resolved_encoder: Some(dir.path().to_path_buf()),
        max_length: Some(16),
        ..ModelConfig::default()
    };
    let Ok(ck) = rmlab::model::encoder::Checkpoint::open(&cfg) else { return };
    if parameters(&ck.config) > MAX_PARAMETERS {
        return;
    }
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let _ = rmlab::model::encoder::EncoderRewardModel::new(&vs.root(), &ck, &cfg, &mut rng);
}

/// An upper bound on a BERT config's parameter count.
fn parameters(c: &rmlab::model::encoder::BertConfig) -> u128 {
    let (h, i) = (c.hidden_size as u128, c.intermediate_size as u128);
    let tables = (c.vocab_size as u128 + c.max_position_embeddings as u128 + c.type_vocab_size as u128) * h;
    let layer = 4 * h * h + 2 * h * i + 10 * h + i;
    tables + (c.num_hidden_layers as u128) * layer + 4 * h + 1
}

/// The tokenizer.json of the tiny checkpoint in tests/fixtures/encoder/tiny_bert.json.
fn tiny_tokenizer() -> &'static str {
    static TOKENIZER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let text = std::fs::read_to_string(repo().join("tests/fixtures/encoder/tiny_bert.json"))
            .expect("tests/fixtures/encoder/tiny_bert.json");
        let fx: serde_json::Value = serde_json::from_str(&text).expect("the tiny BERT fixture");
        fx["tokenizer_json"].as_str().expect("its tokenizer_json").to_string()
    })
}

/// The repository root: this file is included from the root crate's tests and from fuzz/.
pub fn repo() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if here.join("tests/fixtures").is_dir() {
        here
    } else {
        here.parent().expect("fuzz/ has a parent").to_path_buf()
    }
}

/// The store opener: the input is a file given to `Store::open_read_only` and, in a copy,
/// `Store::open` (which migrates an older store and writes); then the queries every command
/// starts with.
pub fn store(data: &[u8]) {
    let dir = scratch();
    let path = file(dir.path(), "ro.sqlite", data);
    if let Ok(s) = rmlab::store::Store::open_read_only(&path) {
        let _ = s.schema_version();
        let _ = s.cell_statuses("quick");
    }
    let path = file(dir.path(), "rw.sqlite", data);
    if let Ok(s) = rmlab::store::Store::open(&path) {
        let _ = s.schema_version();
        let _ = s.cell_statuses("quick");
    }
}
