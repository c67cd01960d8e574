//! A cell's identity: which config keys make two runs the same experiment, and the hash that
//! names a cell in the store.
//!
//! Every key of the serialized [`RunConfig`] has a decision in [`KEYS`]; a test walks the
//! serialized config and fails on a key without one, so a new key cannot silently change (or
//! fail to change) the identity of every stored cell.

use sha2::{Digest, Sha256};

use super::config::RunConfig;

/// How one config key bears on a cell's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Hashed as written: a key of the first stores.
    Hashed,
    /// Added after stores existed: hashed only when it differs from its default, so a cell that
    /// does not use the new control keeps its identity and its results.
    Later,
    /// Where content is found (a file path, a checkpoint's name or directory): hashed as null once
    /// the content's SHA-256, the sibling key named here, is known. Moving a file, running a
    /// copy of the spec elsewhere, or naming a checkpoint by its directory instead of its name
    /// keeps the cell; editing the content does not.
    Locator { content: &'static str },
    /// A locator added after stores existed: nulled as a locator, then left out at its default
    /// (null) like a later key.
    LaterLocator { content: &'static str },
    /// Never hashed: a bound that decides whether a run may start (a file too large to read),
    /// never the numbers of a run that does. Raising it keeps every cell.
    Unhashed,
}

use Identity::{Hashed, Later, LaterLocator, Locator, Unhashed};

/// Every key of the serialized config (dotted; `[]` marks the entries of a list of tables)
/// with its identity decision. Keys marked `#[serde(skip)]` (resolved paths, the cache
/// directory) are never serialized and so never hashed.
pub const KEYS: &[(&str, Identity)] = &[
    ("seed", Hashed),
    ("data.kind", Hashed),
    ("data.n_prompts", Hashed),
    ("data.responses_per_prompt", Hashed),
    ("data.pairs_per_prompt", Hashed),
    ("data.feature_dim", Hashed),
    ("data.offset_scale", Hashed),
    ("data.beta", Hashed),
    ("data.flip", Hashed),
    ("data.graph", Hashed),
    ("data.prompt_features", Hashed),
    ("data.nuisance_dim", Hashed),
    ("data.path", Locator { content: "file_sha256" }),
    ("data.skip_bad_rows", Hashed),
    ("data.prompt_split", Later),
    ("data.eval", Later),
    ("data.eval[].name", Hashed),
    ("data.eval[].path", Locator { content: "file_sha256" }),
    ("data.eval[].file_sha256", Hashed),
    ("data.text_features", Hashed),
    ("data.ngram", Hashed),
    ("data.buckets", Hashed),
    ("data.max_tokens", Hashed),
    ("data.file_sha256", Hashed),
    ("data.val_frac", Hashed),
    ("data.test_frac", Hashed),
    ("data.max_line_bytes", Unhashed),
    ("data.max_file_bytes", Unhashed),
    ("data.max_rows", Unhashed),
    ("model.kind", Hashed),
    ("model.hidden", Hashed),
    ("model.activation", Hashed),
    ("model.device", Hashed),
    ("model.embed_dim", Hashed),
    ("model.bias_init", Hashed),
    ("model.encoder", LaterLocator { content: "encoder_sha256" }),
    ("model.encoder_sha256", Later),
    ("model.head", Later),
    ("model.pooling", Later),
    ("model.max_length", Later),
    ("model.finetune", Later),
    ("model.dropout", Later),
    ("model.precision", Later),
    ("train.optimizer", Hashed),
    ("train.lr", Hashed),
    ("train.weight_decay", Hashed),
    ("train.momentum", Hashed),
    ("train.batch_size", Hashed),
    ("train.steps", Hashed),
    ("train.sampling", Later),
    ("train.gradient_accumulation", Later),
    ("train.schedule", Later),
    ("train.warmup_steps", Later),
    ("train.warmup_ratio", Later),
    ("train.max_grad_norm", Later),
    ("train.early_stopping_metric", Later),
    ("train.early_stopping_split", Later),
    ("train.early_stopping_patience", Later),
    ("train.save", Later),
    ("loss.regularizer", Hashed),
    ("loss.lambda", Hashed),
    ("loss.margin", Hashed),
    ("loss.margin_from_data", Hashed),
    ("eval.every", Hashed),
    ("eval.rewards", Later),
];

/// The config every section's defaults make, as JSON: what a [`Later`] key is compared with.
/// Made once: every cell of a spec is hashed.
fn defaults() -> &'static serde_json::Value {
    static DEFAULTS: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DEFAULTS
        .get_or_init(|| serde_json::to_value(RunConfig::default()).expect("a RunConfig always serializes"))
}

/// Nulls a locator in `obj` when its content hash is known.
fn null_locator(obj: &mut serde_json::Map<String, serde_json::Value>, name: &str, content: &str) {
    if obj.get(content).is_some_and(|c| !c.is_null()) && obj.contains_key(name) {
        obj.insert(name.to_string(), serde_json::Value::Null);
    }
}

/// The JSON that is hashed for `config`: locators nulled where their content is known, later
/// keys left out at their defaults.
pub fn identity_json(config: &RunConfig) -> serde_json::Value {
    let mut value = serde_json::to_value(config).expect("a RunConfig always serializes");
    let defaults = defaults();
    for &(key, identity) in KEYS {
        let (Locator { content } | LaterLocator { content }) = identity else { continue };
        match key.split_once("[].") {
            Some((list, name)) => {
                let (section, list) = list.split_once('.').expect("section.list");
                if let Some(items) = value[section][list].as_array_mut() {
                    for item in items.iter_mut().filter_map(|i| i.as_object_mut()) {
                        null_locator(item, name, content);
                    }
                }
            }
            None => {
                let (section, name) = key.split_once('.').expect("section.key");
                if let Some(obj) = value[section].as_object_mut() {
                    null_locator(obj, name, content);
                }
            }
        }
    }
    for &(key, identity) in KEYS {
        if !matches!(identity, Later | LaterLocator { .. } | Unhashed) {
            continue;
        }
        let (section, name) = key.split_once('.').expect("later and unhashed keys are section.key");
        let default = &defaults[section][name];
        if let Some(obj) = value.get_mut(section).and_then(|s| s.as_object_mut())
            && (identity == Unhashed || obj.get(name) == Some(default))
        {
            // shift_remove keeps the other keys in their order (the canonical one).
            obj.shift_remove(name);
        }
    }
    value
}

impl RunConfig {
    /// Identity of a cell, 16 hex digits ([`hash`]).
    pub fn hash(&self) -> String {
        hash(self)
    }
}

/// Identity of a cell: SHA-256 of [`identity_json`], 16 hex digits. The format version is
/// stored beside the hash rather than hashed, so a run under an older version is found and
/// reported as stale instead of missing.
pub fn hash(config: &RunConfig) -> String {
    let mut h = Sha256::new();
    h.update(identity_json(config).to_string());
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::config::{DataKind, EvalFile, Finetune, ModelKind};
    use std::collections::BTreeSet;

    fn base() -> RunConfig {
        RunConfig::default().resolve()
    }

    fn eval_file(name: &str, path: &str, sha: &str) -> EvalFile {
        EvalFile { name: name.into(), path: path.into(), file_sha256: Some(sha.into()), resolved_path: None }
    }

    /// A preference-file cell with an evaluation file, its contents named by made-up hashes.
    fn preference_file() -> RunConfig {
        let mut c = base();
        c.data.kind = DataKind::PreferenceFile;
        c.data.path = Some("../data/preferences/hh.jsonl".into());
        c.data.file_sha256 = Some("a".repeat(64));
        c.data.eval = vec![eval_file("held", "../data/preferences/held.jsonl", &"b".repeat(64))];
        c.resolve()
    }

    fn encoder() -> RunConfig {
        let mut c = preference_file();
        c.model.kind = ModelKind::Encoder;
        c.model.hidden = None;
        c.model.encoder = Some("minilm-l6".into());
        c.model.encoder_sha256 = Some("c".repeat(64));
        c.resolve()
    }

    /// Every key of a serialized config, dotted, with `[]` for the entries of a list of tables.
    fn serialized_keys(c: &RunConfig) -> BTreeSet<String> {
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                        out.insert(key.clone());
                        walk(&key, v, out);
                    }
                }
                serde_json::Value::Array(items) => {
                    for item in items.iter().filter(|i| i.is_object()) {
                        walk(&format!("{prefix}[]"), item, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = BTreeSet::new();
        walk("", &serde_json::to_value(c).unwrap(), &mut out);
        // Sections are tables of keys, not keys.
        out.retain(|k| k.contains('.') || k == "seed");
        out
    }

    #[test]
    fn every_config_key_has_an_identity_decision() {
        // An encoder cell with an evaluation file sets every optional key.
        let keys = serialized_keys(&encoder());
        let decided: BTreeSet<String> = KEYS.iter().map(|(k, _)| k.to_string()).collect();
        let undecided: Vec<&String> = keys.difference(&decided).collect();
        assert!(
            undecided.is_empty(),
            "config keys without an identity decision: {undecided:?}; add each to experiment::identity::KEYS \
             (Later for a new control, so stored cells keep their identity)"
        );
        let gone: Vec<&String> = decided.difference(&keys).collect();
        assert!(gone.is_empty(), "identity decisions for keys the config no longer has: {gone:?}");
        assert_eq!(decided.len(), KEYS.len(), "a key decided twice");
    }

    #[test]
    fn later_keys_are_top_level_section_keys() {
        for (key, identity) in KEYS {
            if matches!(identity, Later | LaterLocator { .. } | Unhashed) {
                assert_eq!(key.matches('.').count(), 1, "{key}");
                assert!(!key.contains("[]"), "{key}");
            }
        }
    }

    // Golden hashes: a change to any of these is a change to the identity of stored cells,
    // which then read as missing and rerun. Change them only on purpose, and say so in the
    // commit (and bump FORMAT_VERSION if results changed rather than identities).

    /// The default synthetic cell, as hashed since the first stores (checked against a store
    /// written by 82cad9b, before this table existed).
    #[test]
    fn golden_hash_of_the_default_synthetic_cell() {
        assert_eq!(hash(&base()), "1e6fa3c972be64e9");
    }

    /// Pinned when evaluation-file paths and encoder names became locators (both changed
    /// identity once then).
    #[test]
    fn golden_hash_of_a_preference_file_cell_with_an_evaluation_file() {
        assert_eq!(hash(&preference_file()), "da7c1d34692187fc");
    }

    #[test]
    fn golden_hash_of_an_encoder_cell() {
        assert_eq!(hash(&encoder()), "903622fb546baab7");
    }

    #[test]
    fn every_path_counts_by_content_not_by_where_it_is() {
        let moved = |edit: &dyn Fn(&mut RunConfig)| {
            let mut c = encoder();
            edit(&mut c);
            hash(&c)
        };
        let h = hash(&encoder());
        assert_eq!(moved(&|c| c.data.path = Some("/elsewhere/hh.jsonl".into())), h, "data.path");
        assert_eq!(moved(&|c| c.data.eval[0].path = "/elsewhere/held.jsonl".into()), h, "data.eval[].path");
        assert_eq!(moved(&|c| c.model.encoder = Some("/venv/minilm".into())), h, "model.encoder");
        assert_ne!(moved(&|c| c.data.file_sha256 = Some("d".repeat(64))), h, "data.file_sha256");
        assert_ne!(moved(&|c| c.data.eval[0].file_sha256 = Some("d".repeat(64))), h, "eval sha");
        assert_ne!(moved(&|c| c.data.eval[0].name = "other".into()), h, "eval name");
        assert_ne!(moved(&|c| c.model.encoder_sha256 = Some("d".repeat(64))), h, "encoder sha");
        // Before its content is known a locator is all there is: it counts.
        let mut unresolved = encoder();
        unresolved.model.encoder_sha256 = None;
        let mut other = unresolved.clone();
        other.model.encoder = Some("other".into());
        assert_ne!(hash(&unresolved), hash(&other));
    }

    #[test]
    fn later_keys_count_only_away_from_their_default() {
        let h = hash(&base());
        let mut c = base();
        c.train.max_grad_norm = 1.0;
        assert_ne!(hash(&c), h);
        assert!(identity_json(&c)["train"].get("max_grad_norm").is_some());
        assert!(identity_json(&base())["train"].get("max_grad_norm").is_none());
        let mut f = encoder();
        f.model.finetune = Some(Finetune::All);
        assert_ne!(hash(&f), hash(&encoder()));
    }

    /// Read limits decide whether a file may be read, never what a run that reads it computes.
    #[test]
    fn read_limits_are_not_hashed() {
        let h = hash(&preference_file());
        let mut c = preference_file();
        (c.data.max_line_bytes, c.data.max_file_bytes, c.data.max_rows) = (1, 2, 3);
        assert_eq!(hash(&c), h);
        for key in ["max_line_bytes", "max_file_bytes", "max_rows"] {
            assert!(identity_json(&c)["data"].get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn hash_changes_with_any_hashed_value() {
        let h = hash(&base());
        let mut lambda = base();
        lambda.loss.lambda = 0.01;
        let mut seed = base();
        seed.seed = 1;
        let mut steps = base();
        steps.train.steps = 10;
        for (what, c) in [("λ", lambda.resolve()), ("seed", seed), ("steps", steps)] {
            assert_ne!(hash(&c), h, "{what}");
        }
        assert_eq!(h.len(), 16);
    }
}
