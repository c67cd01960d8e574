//! Which `[data]` keys apply to a run's data source: the synthetic generator's knobs mean
//! nothing to a run on a preference file, and a file's keys nothing to a synthetic run. What a
//! reader is shown of a run's config (the record beside a kept model) lists only those that
//! apply; read back, the others take their defaults, which the run never read.

use serde_json::Value;

/// Keys only the synthetic generator reads (`data::synthetic`).
pub const SYNTHETIC_ONLY: [&str; 10] = [
    "n_prompts",
    "responses_per_prompt",
    "pairs_per_prompt",
    "feature_dim",
    "offset_scale",
    "beta",
    "flip",
    "graph",
    "prompt_features",
    "nuisance_dim",
];

/// Keys only a preference file reads (`data::preference_file`, `data::text_features`).
pub const FILE_ONLY: [&str; 9] = [
    "path",
    "skip_bad_rows",
    "prompt_split",
    "eval",
    "text_features",
    "ngram",
    "buckets",
    "max_tokens",
    "file_sha256",
];

/// A serialized [`super::RunConfig`] with only the `[data]` keys that apply to its
/// `data.kind` (an unknown kind, or a value that is not a config, is returned as it is).
pub fn only_its_data_source(mut config: Value) -> Value {
    let Some(data) = config.get_mut("data").and_then(Value::as_object_mut) else { return config };
    let drop: &[&str] = match data.get("kind").and_then(Value::as_str) {
        Some("synthetic") => &FILE_ONLY,
        Some("preference_file") => &SYNTHETIC_ONLY,
        _ => &[],
    };
    for key in drop {
        data.remove(*key);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::super::{DataConfig, DataKind, RunConfig};
    use super::*;

    fn config(kind: DataKind) -> RunConfig {
        let mut cfg = RunConfig::default().resolve();
        // Keys of the other source set away from their defaults, as a spec may leave them.
        cfg.data = DataConfig { kind, path: Some("p.jsonl".into()), n_prompts: 7, buckets: 9, ..cfg.data };
        cfg
    }

    /// The lists name keys the serialized config has (a renamed key fails here), and no key
    /// is in both.
    #[test]
    fn the_lists_name_data_keys_once() {
        let full: Value = serde_json::from_str(&config(DataKind::Synthetic).canonical_json()).unwrap();
        for key in SYNTHETIC_ONLY.iter().chain(&FILE_ONLY) {
            assert!(full["data"].get(*key).is_some(), "no data.{key}");
            assert!(!(SYNTHETIC_ONLY.contains(key) && FILE_ONLY.contains(key)), "{key} in both");
        }
    }

    /// Each source keeps its own keys and the shared ones and loses the other's; read back,
    /// a dropped key is at its default and nothing else changed.
    #[test]
    fn each_source_lists_only_its_keys_and_reads_back() {
        for (kind, dropped, kept) in [
            (DataKind::PreferenceFile, &SYNTHETIC_ONLY[..], &FILE_ONLY[..]),
            (DataKind::Synthetic, &FILE_ONLY[..], &SYNTHETIC_ONLY[..]),
        ] {
            let cfg = config(kind);
            let shown = only_its_data_source(serde_json::from_str(&cfg.canonical_json()).unwrap());
            for key in dropped {
                assert!(shown["data"].get(*key).is_none(), "{kind:?}: data.{key} listed");
            }
            for key in kept.iter().chain(&["kind", "val_frac", "test_frac"]) {
                assert!(shown["data"].get(*key).is_some(), "{kind:?}: data.{key} missing");
            }
            let back: RunConfig = serde_json::from_value(shown).unwrap();
            let mut want = cfg.clone();
            let defaults = DataConfig::default();
            if kind == DataKind::PreferenceFile {
                want.data.n_prompts = defaults.n_prompts;
            } else {
                (want.data.path, want.data.buckets) = (None, defaults.buckets);
            }
            assert_eq!(back, want, "{kind:?}");
        }
    }
}
