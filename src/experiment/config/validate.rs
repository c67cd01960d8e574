//! Range checks of a resolved config, by section; each error names its dotted key.

use super::{
    BatchSize, DataKind, Finetune, HeadKind, InvalidValue, ModelKind, OptimizerKind, Regularizer, RunConfig,
    SaveModel, TextFeatures,
};

impl RunConfig {
    /// Checks every range constraint; returns the first violation, section by section in
    /// key order.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        self.check_source()?;
        self.check_sizes()?;
        self.check_data()?;
        self.check_model()?;
        self.check_train()?;
        self.check_loss()
    }

    /// data.kind and data.path agree.
    fn check_source(&self) -> Result<(), InvalidValue> {
        let d = &self.data;
        let bad = |key: &str, message: String| Err(InvalidValue { key: key.into(), message });
        match (d.kind, &d.path) {
            (DataKind::PreferenceFile, None) => {
                return bad(
                    "data.path",
                    "kind = \"preference_file\" needs a path to a .jsonl, .jsonl.gz or .parquet file".into(),
                );
            }
            (DataKind::Synthetic, Some(p)) => {
                return bad(
                    "data.path",
                    format!("`{p}` is given but kind = \"synthetic\"; set kind = \"preference_file\""),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Sizes first, so nothing below (or any allocation later) meets an absurd one.
    fn check_sizes(&self) -> Result<(), InvalidValue> {
        let d = &self.data;
        let m = &self.model;
        let t = &self.train;
        let bad = |key: &str, message: String| Err(InvalidValue { key: key.into(), message });
        at_most("data.n_prompts", d.n_prompts, 10_000_000)?;
        at_most("data.responses_per_prompt", d.responses_per_prompt, 10_000)?;
        at_most("data.feature_dim", d.feature_dim, 1 << 20)?;
        at_most("data.nuisance_dim", d.nuisance_dim, 1 << 20)?;
        at_most("data.buckets", d.buckets, 1 << 24)?;
        at_most("data.max_tokens", d.max_tokens, 1 << 16)?;
        at_most("model.embed_dim", m.embed_dim, 1 << 16)?;
        if let BatchSize::Pairs(b) = t.batch_size {
            at_most("train.batch_size", b, 1 << 22)?;
        }
        at_most("train.steps", t.steps, 1_000_000_000)?;
        at_most("eval.every", self.eval.every, 1_000_000_000)?;
        if let Some(h) = &m.hidden {
            at_most("model.hidden", h.len(), 64)?;
            if let Some(&big) = h.iter().find(|&&s| s > 1 << 16) {
                return bad("model.hidden", format!("layer sizes must be at most {}, found {big}", 1 << 16));
            }
        }
        // The responses' features, as float32, must fit: 2³⁰ values (4 GiB).
        let rows = if d.kind == DataKind::Synthetic { d.n_prompts * d.responses_per_prompt } else { 0 };
        let values = rows as u128 * self.data.input_dim() as u128;
        if values > 1 << 30 {
            return bad(
                "data.n_prompts",
                format!(
                    "n_prompts × responses_per_prompt × input dimension = {} × {} × {} = {values} feature values; \
                     at most 2³⁰ (4 GiB of float32) fit",
                    d.n_prompts,
                    d.responses_per_prompt,
                    self.data.input_dim()
                ),
            );
        }
        // The parameters of one model, and a batch's inputs, likewise.
        let mut params: u128 = 0;
        let mut fan_in =
            if d.kind == DataKind::Synthetic { self.data.input_dim() } else { m.embed_dim } as u128;
        for &h in m.hidden.as_deref().unwrap_or(&[]) {
            params += (fan_in + 1) * h as u128;
            fan_in = h as u128;
        }
        params += fan_in + 1;
        if d.kind == DataKind::PreferenceFile && d.text_features == TextFeatures::Ngrams {
            params += (d.buckets as u128 + 1) * m.embed_dim as u128;
        }
        if params > 1 << 28 {
            return bad(
                "model.hidden",
                format!("the model would have {params} parameters; at most 2²⁸ (1 GiB of float32) fit"),
            );
        }
        let pairs = t.batch_size.pairs(d.n_prompts * d.pairs_per_prompt);
        let batch_values = 2 * pairs as u128 * self.data.input_dim() as u128;
        if d.kind == DataKind::Synthetic && batch_values > 1 << 30 {
            return bad(
                "train.batch_size",
                format!(
                    "a batch of {pairs} pairs holds {batch_values} input values; at most 2³⁰ (4 GiB of float32) fit"
                ),
            );
        }
        Ok(())
    }

    /// The rest of `[data]`: evaluation files, n-grams, counts, noise, split fractions.
    fn check_data(&self) -> Result<(), InvalidValue> {
        let d = &self.data;
        let m = &self.model;
        let bad = |key: &str, message: String| Err(InvalidValue { key: key.into(), message });
        if !d.eval.is_empty() && d.kind != DataKind::PreferenceFile {
            return bad("data.eval", "evaluation files need kind = \"preference_file\"".into());
        }
        for (i, e) in d.eval.iter().enumerate() {
            if e.name.is_empty()
                || !e.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
            {
                return bad(
                    "data.eval",
                    format!(
                        "entry {}: name `{}`: use lower-case letters, digits, '_' and '-'",
                        i + 1,
                        e.name
                    ),
                );
            }
            if ["train", "val", "test"].contains(&e.name.as_str())
                || d.eval[..i].iter().any(|o| o.name == e.name)
            {
                return bad(
                    "data.eval",
                    format!(
                        "entry {}: name `{}` is taken; each evaluation file needs a split name of its own, not train, val or test",
                        i + 1,
                        e.name
                    ),
                );
            }
            if e.path.is_empty() {
                return bad("data.eval", format!("entry {} (`{}`): path is empty", i + 1, e.name));
            }
        }
        if !(1..=3).contains(&d.ngram) {
            return bad("data.ngram", format!("must be 1, 2 or 3, found {}", d.ngram));
        }
        positive("data.buckets", d.buckets)?;
        positive("data.max_tokens", d.max_tokens)?;
        positive("model.embed_dim", m.embed_dim)?;
        positive("data.n_prompts", d.n_prompts)?;
        if d.responses_per_prompt < 2 {
            return bad(
                "data.responses_per_prompt",
                format!("must be at least 2 to form a pair, found {}", d.responses_per_prompt),
            );
        }
        positive("data.pairs_per_prompt", d.pairs_per_prompt)?;
        let max_pairs = d.responses_per_prompt * (d.responses_per_prompt - 1) / 2;
        if d.pairs_per_prompt > max_pairs {
            return bad(
                "data.pairs_per_prompt",
                format!(
                    "must be at most k(k−1)/2 = {max_pairs} for k = {} responses, found {}",
                    d.responses_per_prompt, d.pairs_per_prompt
                ),
            );
        }
        positive("data.feature_dim", d.feature_dim)?;
        finite_non_negative("data.offset_scale", d.offset_scale)?;
        if d.beta.is_nan() || d.beta <= 0.0 {
            return bad("data.beta", format!("must be > 0 (or inf for noise-free), found {}", d.beta));
        }
        if !(d.flip.is_finite() && (0.0..0.5).contains(&d.flip)) {
            return bad("data.flip", format!("must be in [0, 0.5), found {}", d.flip));
        }
        positive("data.max_line_bytes", d.max_line_bytes)?;
        positive("data.max_file_bytes", d.max_file_bytes)?;
        positive("data.max_rows", d.max_rows)?;
        unit_fraction("data.val_frac", d.val_frac)?;
        unit_fraction("data.test_frac", d.test_frac)?;
        if d.val_frac + d.test_frac >= 1.0 {
            return bad(
                "data.val_frac",
                format!(
                    "val_frac + test_frac must leave prompts for training, found {} + {}",
                    d.val_frac, d.test_frac
                ),
            );
        }
        Ok(())
    }

    /// `[model]`: the head's bias, encoder keys on an encoder only, hidden layers.
    fn check_model(&self) -> Result<(), InvalidValue> {
        let d = &self.data;
        let m = &self.model;
        let bad = |key: &str, message: String| Err(InvalidValue { key: key.into(), message });
        if let Some(b) = m.bias_init
            && !b.is_finite()
        {
            return bad("model.bias_init", format!("must be a finite number, found {b}"));
        }
        if let Some(bad_key) = m.encoder_keys_without_encoder() {
            return bad(bad_key, "applies to kind = \"encoder\" only".into());
        }
        if m.kind == ModelKind::Encoder {
            if m.encoder.as_deref().is_none_or(str::is_empty) {
                return bad(
                    "model.encoder",
                    "kind = \"encoder\" needs a checkpoint: a directory with config.json, model.safetensors and tokenizer.json (relative to the spec), or a known name such as \"minilm-l6\"".into(),
                );
            }
            if d.kind != DataKind::PreferenceFile {
                return bad(
                    "model.kind",
                    "an encoder reads text: needs data.kind = \"preference_file\"".into(),
                );
            }
            if d.text_features == TextFeatures::Embedding {
                return bad(
                    "data.text_features",
                    "is \"embedding\" but model.kind = \"encoder\" makes the features from the text".into(),
                );
            }
            if let Some(n) = m.max_length.filter(|&n| n < 4) {
                return bad(
                    "model.max_length",
                    format!("must be at least 4 ([CLS], [SEP], [SEP] and one token), found {n}"),
                );
            }
            if m.dropout == Some(true) && m.finetune == Some(Finetune::None) {
                return bad(
                    "model.dropout",
                    "applies to fine-tuning; a frozen encoder embeds without dropout (set finetune = \"all\" or \"last:K\")".into(),
                );
            }
            if m.head == Some(HeadKind::Linear) && m.hidden.as_ref().is_some_and(|h| !h.is_empty()) {
                return bad("model.hidden", "a linear head has no hidden layers; set head = \"mlp\"".into());
            }
        }
        let mlp_head = m.kind == ModelKind::Mlp || m.head == Some(HeadKind::Mlp);
        match (m.kind, &m.hidden) {
            (ModelKind::Linear, Some(h)) if !h.is_empty() => {
                return bad(
                    "model.hidden",
                    format!("a linear model has no hidden layers, found {h:?}; use kind = \"mlp\""),
                );
            }
            (_, Some(h)) if mlp_head => {
                if h.is_empty() {
                    return bad(
                        "model.hidden",
                        "an MLP needs at least one hidden layer; use kind = \"linear\"".into(),
                    );
                }
                if let Some(i) = h.iter().position(|&s| s == 0) {
                    return bad("model.hidden", format!("layer sizes must be > 0, found 0 at index {i}"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `[train]`: optimizer, batches, warmup, clipping, early stopping, what is kept.
    fn check_train(&self) -> Result<(), InvalidValue> {
        let d = &self.data;
        let t = &self.train;
        let bad = |key: &str, message: String| Err(InvalidValue { key: key.into(), message });
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return bad("train.lr", format!("must be a finite number > 0, found {}", t.lr));
        }
        finite_non_negative("train.weight_decay", t.weight_decay)?;
        if !(t.momentum.is_finite() && (0.0..1.0).contains(&t.momentum)) {
            return bad("train.momentum", format!("must be in [0, 1), found {}", t.momentum));
        }
        if t.optimizer == OptimizerKind::Adam && t.momentum != 0.0 {
            return bad("train.momentum", "applies to optimizer = \"sgd\" only; Adam has betas".into());
        }
        if let BatchSize::Pairs(b) = t.batch_size {
            positive("train.batch_size", b)?;
        }
        positive("train.steps", t.steps)?;
        positive("train.gradient_accumulation", t.gradient_accumulation)?;
        at_most("train.gradient_accumulation", t.gradient_accumulation, 1 << 16)?;
        if !(t.warmup_ratio.is_finite() && (0.0..1.0).contains(&t.warmup_ratio)) {
            return bad("train.warmup_ratio", format!("must be in [0, 1), found {}", t.warmup_ratio));
        }
        if t.warmup_ratio > 0.0 && t.warmup_steps > 0 {
            return bad("train.warmup_ratio", "set warmup_steps or warmup_ratio, not both".into());
        }
        if t.warmup() >= t.steps {
            return bad(
                "train.warmup_steps",
                format!(
                    "the warmup ({} steps) must be shorter than training ({} steps)",
                    t.warmup(),
                    t.steps
                ),
            );
        }
        finite_non_negative("train.max_grad_norm", t.max_grad_norm)?;
        positive("train.early_stopping_patience", t.early_stopping_patience)?;
        if let Some(m) = &t.early_stopping_metric {
            match crate::experiment::metric::goal(m) {
                _ if !crate::experiment::metric::all_names().any(|n| n == m) => {
                    let known: Vec<&str> = crate::experiment::metric::all_names()
                        .filter(|n| crate::experiment::metric::goal(n).is_some())
                        .collect();
                    return bad(
                        "train.early_stopping_metric",
                        format!("unknown metric `{m}`; metrics with a direction: {}", known.join(", ")),
                    );
                }
                None => {
                    return bad(
                        "train.early_stopping_metric",
                        format!(
                            "`{m}` is a magnitude with no better direction; choose a loss, accuracy or correlation"
                        ),
                    );
                }
                Some(_) => {}
            }
            let split = t.early_stopping_split.as_str();
            if !["train", "val", "test"].contains(&split) && !d.eval.iter().any(|e| e.name == split) {
                return bad(
                    "train.early_stopping_split",
                    format!(
                        "unknown split `{split}`; expected train, val, test or the name of a [[data.eval]] file"
                    ),
                );
            }
            let frac = match split {
                "val" => Some(d.val_frac),
                "test" => Some(d.test_frac),
                _ => None,
            };
            if frac == Some(0.0) {
                return bad(
                    "train.early_stopping_split",
                    format!(
                        "the {split} split is empty (data.{split}_frac = 0); hold out prompts to stop on"
                    ),
                );
            }
        }
        if t.save == SaveModel::Best && t.early_stopping_metric.is_none() {
            return bad(
                "train.save",
                "\"best\" needs train.early_stopping_metric, which defines best".into(),
            );
        }
        Ok(())
    }

    /// `[loss]` and `[eval]`.
    fn check_loss(&self) -> Result<(), InvalidValue> {
        let d = &self.data;
        let bad = |key: &str, message: String| Err(InvalidValue { key: key.into(), message });
        finite_non_negative("loss.lambda", self.loss.lambda)?;
        finite_non_negative("loss.margin", self.loss.margin)?;
        if self.loss.margin_from_data && d.kind != DataKind::PreferenceFile {
            return bad(
                "loss.margin_from_data",
                "needs data with a margin column (kind = \"preference_file\")".into(),
            );
        }
        if self.loss.regularizer == Regularizer::None && self.loss.lambda != 0.0 {
            return bad(
                "loss.lambda",
                format!(
                    "is {} but regularizer = \"none\"; set regularizer = \"pair_sum_sq\"",
                    self.loss.lambda
                ),
            );
        }
        positive("eval.every", self.eval.every)?;
        Ok(())
    }
}

fn at_most(key: &str, v: usize, max: usize) -> Result<(), InvalidValue> {
    if v > max {
        return Err(InvalidValue { key: key.into(), message: format!("must be at most {max}, found {v}") });
    }
    Ok(())
}

fn positive(key: &str, v: usize) -> Result<(), InvalidValue> {
    if v == 0 {
        return Err(InvalidValue { key: key.into(), message: "must be > 0, found 0".into() });
    }
    Ok(())
}

fn finite_non_negative(key: &str, v: f64) -> Result<(), InvalidValue> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(InvalidValue {
            key: key.into(),
            message: format!("must be a finite number ≥ 0, found {v}"),
        });
    }
    Ok(())
}

fn unit_fraction(key: &str, v: f64) -> Result<(), InvalidValue> {
    if !(v.is_finite() && (0.0..1.0).contains(&v)) {
        return Err(InvalidValue { key: key.into(), message: format!("must be in [0, 1), found {v}") });
    }
    Ok(())
}
