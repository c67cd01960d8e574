//! The resolved run configuration: what one training run needs, fully specified.
//!
//! A spec file (see [`super::spec`]) is expanded into one [`RunConfig`] per cell. Each section
//! has defaults for every key, so a spec only states what differs. A config is *resolved*
//! ([`RunConfig::resolve`]) before use: values that depend on other values are filled in, so
//! that two configs that train the same way serialize, and hash, the same way.
//!
//! One file a section: [`data`], [`model`], [`train`], [`loss`], [`eval`]; range checks in
//! [`validate`]; what counts for a cell's identity in [`super::identity`].

mod data;
mod data_source;
mod eval;
mod loss;
mod model;
mod train;
mod validate;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::runtime::DeviceChoice;
pub use data::{
    DataConfig, DataKind, EvalFile, Graph, MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_ROWS, PromptFeatures,
    PromptSplit, TextFeatures,
};
pub use data_source::only_its_data_source;
pub use eval::{EvalConfig, KeptRewards};
pub use loss::{LossConfig, Regularizer};
pub use model::{
    Activation, DEFAULT_HIDDEN, DEFAULT_MAX_LENGTH, Finetune, HeadKind, ModelConfig, ModelKind, Pooling,
    Precision,
};
pub use train::{BatchSize, OptimizerKind, Sampling, SaveModel, Schedule, TrainConfig};

/// Bump when the data generator, model, trainer or metrics change in a way that changes
/// results: runs finished under an older version are reported as stale and are not reused.
///
/// Not bumped when preference files became one node per response (within a prompt, the same
/// text is one response): the identity of every preference-file cell changed with it (a file
/// counts by its content, not its path), so their old runs read as missing, while synthetic
/// cells, whose results did not change, keep theirs. Nor when evaluation-file paths and encoder
/// names became locators (`experiment::identity`): cells with `data.eval` or an encoder changed
/// identity once and rerun, their results unchanged.
///
/// 2: the metrics by comparison-graph kind split bipartite components by where their winners
/// sit (`…_one_sided`, `…_two_sided`; version 1 recorded `…_bipartite`, both together). A
/// version-1 preference-file run lacks the new metrics, and as a finished current run it
/// would never be rerun: its `graph_kinds` figures would stay empty without a word. Stale, it
/// is rerun by the next sweep. Synthetic runs, whose results did not change, read as stale
/// too: the version is one number for every run, and a wrong figure costs more than a rerun.
pub const FORMAT_VERSION: u32 = 2;

/// A config value that is out of range, by dotted key path ([`RunConfig::validate`]).
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidValue {
    /// Dotted key path, e.g. `loss.lambda`.
    pub key: String,
    /// What was expected and what was found.
    pub message: String,
}

/// One training run, fully specified. `RunConfig::default()` is seed 0 with every section's
/// defaults, not yet resolved ([`RunConfig::resolve`]); a spec must still state its seed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seeds the data generator and LibTorch.
    pub seed: u64,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub loss: LossConfig,
    #[serde(default)]
    pub eval: EvalConfig,
}

impl RunConfig {
    /// Fills values that depend on others, so equal runs have equal configs:
    /// an MLP gets its default hidden sizes; λ = 0 becomes `regularizer = "none"`; an encoder
    /// gets its defaults (linear head, mean pooling, 256 tokens, frozen, no dropout, fp32).
    pub fn resolve(mut self) -> Self {
        self.data = self.data.resolved();
        let m = &mut self.model;
        if m.kind == ModelKind::Encoder {
            m.head.get_or_insert(HeadKind::Linear);
            m.pooling.get_or_insert(Pooling::Mean);
            m.max_length.get_or_insert(DEFAULT_MAX_LENGTH);
            m.finetune.get_or_insert(Finetune::None);
            m.dropout.get_or_insert(false);
            m.precision.get_or_insert(Precision::Fp32);
        }
        let mlp_head = m.kind == ModelKind::Mlp || m.head == Some(HeadKind::Mlp);
        if mlp_head && m.hidden.is_none() {
            m.hidden = Some(DEFAULT_HIDDEN.to_vec());
        }
        if self.loss.lambda == 0.0 {
            self.loss.regularizer = Regularizer::None;
        }
        self
    }

    /// Canonical JSON of the resolved config: the text stored with every run.
    pub fn canonical_json(&self) -> String {
        // Struct fields serialize in declaration order, so the text is canonical as it is.
        serde_json::to_string(self).expect("a RunConfig always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunConfig {
        RunConfig::default().resolve()
    }

    /// Every default, pinned: a changed default changes the results of every spec that leaves
    /// the key out (and the identity of its cells), so it must be a decision, not an accident.
    /// (`spec::tests::an_empty_spec_runs_the_defaults` checks an empty spec expands to it.)
    #[test]
    fn defaults_are_pinned_and_valid() {
        let c = base();
        assert_eq!(c.canonical_json(), DEFAULT_JSON);
        c.validate().unwrap();
    }

    const DEFAULT_JSON: &str = r#"{"seed":0,"data":{"kind":"synthetic","n_prompts":500,"responses_per_prompt":4,"pairs_per_prompt":2,"feature_dim":16,"offset_scale":1.0,"beta":4.0,"flip":0.0,"graph":"random","prompt_features":"none","nuisance_dim":0,"path":null,"skip_bad_rows":false,"prompt_split":"common_prefix","eval":[],"text_features":"ngrams","ngram":2,"buckets":4096,"max_tokens":256,"file_sha256":null,"val_frac":0.2,"test_frac":0.0,"max_line_bytes":16777216,"max_file_bytes":2147483648,"max_rows":2000000},"model":{"kind":"mlp","hidden":[64],"activation":"relu","device":"auto","embed_dim":32,"bias_init":null,"encoder":null,"encoder_sha256":null,"head":null,"pooling":null,"max_length":null,"finetune":null,"dropout":null,"precision":null},"train":{"optimizer":"adam","lr":0.001,"weight_decay":0.0,"momentum":0.0,"batch_size":128,"steps":1000,"sampling":"with_replacement","gradient_accumulation":1,"schedule":"constant","warmup_steps":0,"warmup_ratio":0.0,"max_grad_norm":0.0,"early_stopping_metric":null,"early_stopping_split":"val","early_stopping_patience":3,"save":"none"},"loss":{"regularizer":"none","lambda":0.0,"margin":0.0,"margin_from_data":false},"eval":{"every":50,"rewards":"all"}}"#;

    #[test]
    fn json_round_trip_keeps_infinite_beta() {
        let mut c = base();
        c.data.beta = f64::INFINITY;
        let json = c.canonical_json();
        assert!(json.contains("\"beta\":\"inf\""), "{json}");
        let back: RunConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.hash(), c.hash());
    }

    #[test]
    fn lambda_zero_resolves_to_no_regularizer() {
        let a = base();
        let mut b = base();
        b.loss.regularizer = Regularizer::None;
        assert_eq!(a.clone().resolve().hash(), b.resolve().hash());
        assert_eq!(a.loss.regularizer, Regularizer::None, "λ = 0 is none whatever the kind");
    }

    #[track_caller]
    fn rejects(edit: impl FnOnce(&mut RunConfig), key: &str) {
        let mut c = base();
        edit(&mut c);
        let err = c.validate().expect_err("should be rejected");
        assert_eq!(err.key, key, "{}", err.message);
    }

    #[test]
    fn range_errors_name_their_key() {
        rejects(|c| c.loss.lambda = -0.1, "loss.lambda");
        rejects(|c| c.loss.lambda = f64::NAN, "loss.lambda");
        rejects(|c| c.loss.lambda = f64::INFINITY, "loss.lambda");
        rejects(|c| c.data.flip = 0.5, "data.flip");
        rejects(|c| c.data.flip = -0.1, "data.flip");
        rejects(|c| c.data.beta = 0.0, "data.beta");
        rejects(|c| c.data.n_prompts = 0, "data.n_prompts");
        rejects(|c| c.data.responses_per_prompt = 1, "data.responses_per_prompt");
        rejects(|c| c.data.pairs_per_prompt = 7, "data.pairs_per_prompt");
        rejects(|c| (c.data.val_frac, c.data.test_frac) = (0.6, 0.5), "data.val_frac");
        rejects(|c| c.model.hidden = Some(vec![]), "model.hidden");
        rejects(|c| c.model.hidden = Some(vec![8, 0]), "model.hidden");
        rejects(|c| c.model.kind = ModelKind::Linear, "model.hidden");
        rejects(|c| c.train.lr = 0.0, "train.lr");
        rejects(|c| c.train.momentum = 0.9, "train.momentum");
        rejects(|c| c.train.batch_size = BatchSize::Pairs(0), "train.batch_size");
        rejects(|c| c.eval.every = 0, "eval.every");
        rejects(|c| (c.loss.regularizer, c.loss.lambda) = (Regularizer::None, 0.1), "loss.lambda");
        rejects(|c| c.model.pooling = Some(Pooling::Cls), "model.pooling");
    }

    fn encoder() -> RunConfig {
        let mut c = base();
        c.data.kind = DataKind::PreferenceFile;
        c.data.path = Some("prefs.jsonl".into());
        c.model.kind = ModelKind::Encoder;
        c.model.hidden = None;
        c.model.encoder = Some("minilm-l6".into());
        c.resolve()
    }

    #[test]
    fn an_encoder_resolves_its_defaults_and_checks_its_keys() {
        let c = encoder();
        c.validate().unwrap();
        let m = &c.model;
        assert_eq!(
            (m.head, m.pooling, m.max_length, m.finetune, m.dropout, m.precision),
            (
                Some(HeadKind::Linear),
                Some(Pooling::Mean),
                Some(256),
                Some(Finetune::None),
                Some(false),
                Some(Precision::Fp32)
            )
        );
        assert!(m.head_hidden().is_empty());
        let mut mlp = encoder();
        mlp.model.head = Some(HeadKind::Mlp);
        mlp.model.hidden = None;
        assert_eq!(mlp.resolve().model.head_hidden(), DEFAULT_HIDDEN);
        #[track_caller]
        fn refuses(edit: impl FnOnce(&mut RunConfig), key: &str) {
            let mut c = encoder();
            edit(&mut c);
            assert_eq!(c.validate().expect_err("should be rejected").key, key);
        }
        refuses(|c| c.model.encoder = None, "model.encoder");
        refuses(|c| (c.data.kind, c.data.path) = (DataKind::Synthetic, None), "model.kind");
        refuses(|c| c.data.text_features = TextFeatures::Embedding, "data.text_features");
        refuses(|c| c.model.max_length = Some(3), "model.max_length");
        refuses(|c| c.model.dropout = Some(true), "model.dropout");
        refuses(|c| c.model.hidden = Some(vec![8]), "model.hidden");
    }

    #[test]
    fn finetune_reads_and_writes_its_three_forms() {
        for (text, f) in [("none", Finetune::None), ("all", Finetune::All), ("last:2", Finetune::Last(2))] {
            assert_eq!(Finetune::parse(text), Ok(f));
            assert_eq!(f.as_string(), text);
        }
        for bad in ["last:0", "last:", "some", "last:x"] {
            assert!(Finetune::parse(bad).unwrap_err().contains("last:K"), "{bad}");
        }
        let mut c = encoder();
        c.model.finetune = Some(Finetune::Last(3));
        let back: RunConfig = serde_json::from_str(&c.canonical_json()).unwrap();
        assert_eq!(back.model.finetune, Some(Finetune::Last(3)));
    }
}
