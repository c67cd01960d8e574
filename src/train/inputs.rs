//! A cell's data as model inputs: what both trainers call instead of `data::load`.
//!
//! Synthetic features, n-gram bags and a file's embedding columns come from the data stage as
//! they are. An encoder cell's texts become either the frozen encoder's pooled embeddings
//! (`finetune = "none"`: computed once per checkpoint, tokenizer, max_length, pooling,
//! precision, device kind and texts, and cached on disk, so every cell of a sweep reuses them)
//! or packed token rows `[R, 3, L]` for fine-tuning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tch::{Device, Tensor};

use crate::data::{self, Dataset, Preferences, Texts};
use crate::error::{Error, Result};
use crate::experiment::config::{DataKind, Finetune, ModelConfig, ModelKind, RunConfig};
use crate::model::encoder::{Bert, Checkpoint, PairTokens, cache, embed};

/// What a run records about its inputs.
#[derive(Clone, Debug, Default)]
pub struct InputsReport {
    /// Rows read and rows skipped, for a preference file.
    pub rows: Option<(usize, usize)>,
    /// `runs.data_report`: the data stage's report of a file and, for an encoder, its record
    /// under `"encoder"` (`{texts, truncated, cache, …}`).
    pub data_report: Option<Value>,
}

impl InputsReport {
    /// Adds the encoder's record under `"encoder"` in the data report.
    fn add_encoder(&mut self, record: Value) {
        match &mut self.data_report {
            Some(Value::Object(m)) => {
                m.insert("encoder".into(), record);
            }
            _ => self.data_report = Some(json!({ "encoder": record })),
        }
    }
}

/// Progress of an embedding pass: texts done of a total.
pub type EmbedProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// The cell's inputs as a dataset on `device`, and what the run record says about them.
pub fn load(cfg: &RunConfig, device: Device) -> Result<(Dataset, InputsReport)> {
    let (prefs, read) = data::load(&cfg.data, cfg.seed)?;
    let mut report = InputsReport {
        rows: read.as_ref().map(|r| (r.train.rows, r.train.skipped)),
        data_report: read.as_ref().map(|r| serde_json::to_value(r).expect("a data report serializes")),
    };
    let (data, encoder) = dataset(cfg, prefs, device)?;
    if let Some(record) = encoder {
        report.add_encoder(record);
    }
    Ok((data, report))
}

/// The model inputs of preferences the data stage gave for `cfg` (what [`load`] builds after
/// reading them; `rmlab score` builds a kept model's inputs from a file it reads itself), and
/// an encoder's record for the data report.
pub fn dataset(cfg: &RunConfig, mut prefs: Preferences, device: Device) -> Result<(Dataset, Option<Value>)> {
    if cfg.model.kind != ModelKind::Encoder {
        return Ok((Dataset::new(&prefs, device), None));
    }
    let texts = prefs.texts.take();
    let items = items(texts.as_ref(), &prefs.prompt_of)?;
    if cfg.model.finetune() == Finetune::None {
        let (emb, rec) = embeddings(cfg, &items.unique, device, &mut |_, _| {})?;
        prefs.bags = None;
        prefs.dim = emb.dim;
        prefs.features = items.expand(&emb.values, emb.dim);
        return Ok((Dataset::new(&prefs, device), Some(rec)));
    }
    // Fine-tuning: token rows of every response replace the data stage's features.
    let ck = open(&cfg.model)?;
    let pairs = ck.tokenizer.encode_all(&items.unique).map_err(Error::training)?;
    let truncated = pairs.iter().filter(|p| p.truncated).count();
    let record = encoder_record(&cfg.model, items.unique.len(), truncated, None);
    (prefs.bags, prefs.dim, prefs.features) = (None, 0, Vec::new());
    let mut data = Dataset::new(&prefs, device);
    let rows: Vec<&PairTokens> = items.of_response.iter().map(|&u| &pairs[u]).collect();
    let (ids, types, mask) = embed::padded(&rows, Device::Cpu);
    data.features = Tensor::stack(&[ids, types, mask], 1).to_device(device);
    data.dim = data.features.size()[2] as usize;
    data.buckets = None;
    Ok((data, Some(record)))
}

/// What [`load`] reports for a cell, without building its dataset (the batched engine loads
/// its cells' data itself): the data stage's report and, for a frozen encoder, the cached
/// embeddings' record.
pub fn report(cfg: &RunConfig) -> Result<InputsReport> {
    let encoder = cfg.model.kind == ModelKind::Encoder && cfg.model.finetune() == Finetune::None;
    if cfg.data.kind == DataKind::Synthetic && !encoder {
        // Generated data has nothing to report: no need to generate it here too.
        return Ok(InputsReport { rows: None, data_report: None });
    }
    let (prefs, read) = data::load(&cfg.data, cfg.seed)?;
    let mut report = InputsReport {
        rows: read.as_ref().map(|r| (r.train.rows, r.train.skipped)),
        data_report: read.as_ref().map(|r| serde_json::to_value(r).expect("a data report serializes")),
    };
    if encoder {
        let items = items(prefs.texts.as_ref(), &prefs.prompt_of)?;
        let device = crate::runtime::resolve_device(cfg.model.device)?;
        report.add_encoder(embeddings(cfg, &items.unique, device, &mut |_, _| {})?.1);
    }
    Ok(report)
}

/// Computes (or finds in the cache) the embeddings of every frozen-encoder cell, once per
/// cache key, before cells run: `progress` sees each pass (texts done, total).
pub fn prepare(cfgs: &[&RunConfig], progress: EmbedProgress) -> Result<()> {
    let mut done = std::collections::HashSet::new();
    for cfg in cfgs {
        if cfg.model.kind != ModelKind::Encoder || cfg.model.finetune() != Finetune::None {
            continue;
        }
        // A cell whose device is unavailable fails when it runs, recorded as such.
        let Ok(device) = crate::runtime::resolve_device(cfg.model.device) else { continue };
        // Everything the texts and the key depend on but the seed, to read each file once.
        let (d, m) = (&cfg.data, &cfg.model);
        let what = serde_json::to_string(&(
            &d.file_sha256,
            d.skip_bad_rows,
            &m.encoder_sha256,
            m.max_length,
            m.pooling,
            m.precision,
            device.is_cuda(),
        ))
        .expect("plain values serialize");
        if done.insert(what) {
            let (prefs, _) = data::load(d, cfg.seed)?;
            let items = items(prefs.texts.as_ref(), &prefs.prompt_of)?;
            embeddings(cfg, &items.unique, device, progress)?;
        }
    }
    Ok(())
}

/// The embedding cache's directory: `model.embedding_cache` (the sweep sets it beside the
/// store), else `rmlab-embeddings` in the system's temporary directory.
fn cache_dir(m: &ModelConfig) -> PathBuf {
    m.embedding_cache.clone().unwrap_or_else(|| std::env::temp_dir().join("rmlab-embeddings"))
}

/// The distinct (prompt, response) texts of a data set, and which one each response is.
struct Items<'a> {
    unique: Vec<(&'a str, &'a str)>,
    of_response: Vec<usize>,
}

impl Items<'_> {
    /// Rows `[R, dim]` of the responses from rows `[U, dim]` of the distinct texts.
    fn expand(&self, values: &[f32], dim: usize) -> Vec<f32> {
        self.of_response.iter().flat_map(|&u| values[u * dim..][..dim].iter().copied()).collect()
    }
}

/// The distinct (prompt, response) texts of the responses of a preference file.
fn items<'t>(texts: Option<&'t Texts>, prompt_of: &[usize]) -> Result<Items<'t>> {
    let texts = texts.ok_or_else(|| Error::training("an encoder needs the texts of a preference file"))?;
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut unique = Vec::new();
    let of_response = (0..prompt_of.len())
        .map(|r| {
            let item = (texts.prompts[prompt_of[r]].as_str(), texts.responses[r].as_str());
            *index.entry(item).or_insert_with(|| {
                unique.push(item);
                unique.len() - 1
            })
        })
        .collect();
    Ok(Items { unique, of_response })
}

fn open(m: &ModelConfig) -> Result<Checkpoint> {
    Ok(Checkpoint::open(m)?)
}

fn key_parts<T>(
    cfg: &RunConfig,
    items: &[(&str, &str)],
    device: Device,
    f: impl FnOnce(&cache::KeyParts) -> T,
) -> T {
    let m = &cfg.model;
    let tokenizer_sha = m
        .resolved_encoder
        .as_ref()
        .and_then(|d| crate::experiment::checkpoint::file_sha256(&d.join("tokenizer.json")).ok())
        .unwrap_or_default();
    let texts = cache::texts_sha256(items);
    let parts = cache::KeyParts {
        encoder_sha256: m.encoder_sha256.as_deref().unwrap_or(""),
        tokenizer_sha256: &tokenizer_sha,
        max_length: m.max_length.unwrap_or(crate::experiment::config::DEFAULT_MAX_LENGTH),
        pooling: &serde_json::to_value(m.pooling)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        precision: &serde_json::to_value(m.precision)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        device: if device.is_cuda() { "cuda" } else { "cpu" },
        data_sha256: cfg.data.file_sha256.as_deref().unwrap_or(""),
        texts_sha256: &texts,
    };
    f(&parts)
}

/// The encoder part of a run's data report.
fn encoder_record(m: &ModelConfig, texts: usize, truncated: usize, cache_file: Option<&Path>) -> Value {
    json!({
        "checkpoint": m.encoder,
        "sha256": m.encoder_sha256,
        "max_length": m.max_length,
        "pooling": m.pooling,
        "finetune": m.finetune().as_string(),
        "texts": texts,
        "truncated": truncated,
        "cache": cache_file.map(|p| p.display().to_string()),
    })
}

/// The frozen encoder's embeddings of `items`, from the cache or computed and cached, with
/// their record for the run's data report.
fn embeddings(
    cfg: &RunConfig,
    items: &[(&str, &str)],
    device: Device,
    progress: EmbedProgress,
) -> Result<(cache::Embeddings, Value)> {
    let key = key_parts(cfg, items, device, |k| k.key());
    let dir = cache_dir(&cfg.model);
    let lock = cache::key_lock(&key);
    let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
    let emb = match cache::load(&dir, &key) {
        Some(e) if e.truncated.len() == items.len() => e,
        _ => {
            let emb = compute(&cfg.model, items, device, progress)?;
            cache::store(&dir, &key, &emb)?;
            emb
        }
    };
    let truncated = emb.truncated.iter().filter(|&&t| t).count();
    Ok((emb, encoder_record(&cfg.model, items.len(), truncated, Some(&cache::path(&dir, &key)))))
}

/// One embedding pass: tokenize, load the weights, embed longest first under no-grad.
fn compute(
    m: &ModelConfig,
    items: &[(&str, &str)],
    device: Device,
    progress: EmbedProgress,
) -> Result<cache::Embeddings> {
    let ck = open(m)?;
    let pairs = ck.tokenizer.encode_all(items).map_err(Error::training)?;
    let vs = tch::nn::VarStore::new(device);
    let bert = Bert::new(
        &vs.root(),
        &ck.config,
        Finetune::None,
        false,
        m.precision.unwrap_or(crate::experiment::config::Precision::Fp32),
    );
    bert.load(&ck.dir.join("model.safetensors"))?;
    let pooling = m.pooling.unwrap_or(crate::experiment::config::Pooling::Mean);
    let total = pairs.len();
    progress(0, total);
    let values =
        embed::embed(&bert, pooling, &pairs, embed::EMBED_BATCH, device, &mut |done| progress(done, total))?;
    Ok(cache::Embeddings {
        values,
        dim: ck.config.hidden_size,
        truncated: pairs.iter().map(|p| p.truncated).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::config::{DataConfig, TextFeatures};

    fn config(data: DataConfig) -> RunConfig {
        RunConfig {
            seed: 3,
            data,
            model: Default::default(),
            train: Default::default(),
            loss: Default::default(),
            eval: Default::default(),
        }
    }

    /// Five responses: (p0, a) twice, so four distinct texts, numbered in first-seen order.
    #[test]
    fn items_are_the_distinct_texts_and_expand_back_to_every_response() {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let texts = Texts { prompts: strings(&["p0", "p1"]), responses: strings(&["a", "b", "a", "a", "b"]) };
        let it = items(Some(&texts), &[0, 0, 1, 0, 1]).unwrap();
        assert_eq!(it.unique, [("p0", "a"), ("p0", "b"), ("p1", "a"), ("p1", "b")]);
        assert_eq!(it.of_response, [0, 1, 2, 0, 3]);
        // Rows [U = 4, 2] → rows [R = 5, 2].
        let rows = it.expand(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 2);
        assert_eq!(rows, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 7.0, 8.0]);
        let err = items(None, &[0]).err().expect("no texts").to_string();
        assert!(err.contains("needs the texts of a preference file"), "{err}");
    }

    #[test]
    fn the_encoder_record_joins_the_data_report() {
        let mut r = InputsReport::default();
        r.add_encoder(json!({ "texts": 3 }));
        assert_eq!(r.data_report, Some(json!({ "encoder": { "texts": 3 } })));
        let mut r = InputsReport { rows: Some((2, 0)), data_report: Some(json!({ "train": { "rows": 2 } })) };
        r.add_encoder(json!({ "texts": 4 }));
        assert_eq!(r.data_report, Some(json!({ "train": { "rows": 2 }, "encoder": { "texts": 4 } })));
    }

    /// Synthetic inputs are the generator's features as they are: `[n_prompts · k, D]`.
    #[test]
    fn synthetic_inputs_are_the_generated_features() {
        let data = DataConfig { n_prompts: 6, responses_per_prompt: 3, feature_dim: 4, ..Default::default() };
        let cfg = config(data);
        let (ds, report) = load(&cfg, Device::Cpu).unwrap();
        assert_eq!(ds.features.size(), [18, 4]);
        assert_eq!(ds.dim, 4);
        let want = data::synthetic::generate(&cfg.data, cfg.seed).features;
        let got = Vec::<f32>::try_from(ds.features.flatten(0, -1)).unwrap();
        assert_eq!(got, want);
        assert_eq!((report.rows, report.data_report), (None, None));
        let r = super::report(&cfg).unwrap();
        assert_eq!((r.rows, r.data_report), (None, None));
    }

    /// A file's embedding columns, written by hand, are the features of its responses; a bad
    /// row is skipped and counted.
    #[test]
    fn a_files_embedding_columns_are_the_features() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        let rows = [
            r#"{"prompt": "p", "chosen": "a", "rejected": "b", "embedding_chosen": [1.0, 2.0], "embedding_rejected": [3.0, 4.0]}"#,
            r#"{"prompt": "p", "chosen": "a", "rejected": "c", "embedding_chosen": [1.0, 2.0], "embedding_rejected": [5.0, -6.0]}"#,
            r#"{"prompt": "q", "chosen": "d", "rejected": "a", "embedding_chosen": [0.5, 0.25], "embedding_rejected": [7.0, 8.0]}"#,
            r#"{"prompt": "q", "chosen": "bad row"}"#,
        ];
        std::fs::write(&path, rows.join("\n") + "\n").unwrap();
        let want: HashMap<(&str, &str), [f32; 2]> = [
            (("p", "a"), [1.0, 2.0]),
            (("p", "b"), [3.0, 4.0]),
            (("p", "c"), [5.0, -6.0]),
            (("q", "d"), [0.5, 0.25]),
            (("q", "a"), [7.0, 8.0]),
        ]
        .into();
        let cfg = config(DataConfig {
            kind: DataKind::PreferenceFile,
            path: Some(path.display().to_string()),
            text_features: TextFeatures::Embedding,
            skip_bad_rows: true,
            ..Default::default()
        });
        let (ds, report) = load(&cfg, Device::Cpu).unwrap();
        assert_eq!(report.rows, Some((4, 1)), "4 rows read, 1 of them skipped");
        assert!(report.data_report.is_some());
        assert_eq!(ds.features.size(), [5, 2]);
        assert_eq!(ds.dim, 2);
        assert_eq!(ds.train.n_pairs + ds.val.n_pairs + ds.test.n_pairs, 3);
        // Which text each response is, from the data stage that numbered them.
        let (prefs, _) = data::load(&cfg.data, cfg.seed).unwrap();
        let texts = prefs.texts.unwrap();
        let got = Vec::<f32>::try_from(ds.features.flatten(0, -1)).unwrap();
        for r in 0..5 {
            let key = (texts.prompts[prefs.prompt_of[r]].as_str(), texts.responses[r].as_str());
            assert_eq!(got[2 * r..2 * r + 2], want[&key], "response {r} {key:?}");
        }
    }
}
