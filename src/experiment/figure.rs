//! Figure declarations: the `[[figure]]` tables of a spec and the default catalogue. What a
//! figure shows is decided here, with the spec; drawing it from the store is `analysis::plot`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::metric;

/// What a figure shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FigureKind {
    /// Metrics over training steps: a panel per (split, metric), a line per value of `lines`.
    Curves,
    /// Final (or best, `stat`) metrics against the param `x` (log axis; x = 0 drawn apart as a
    /// dashed baseline), a line per value of `lines`, error bars over seeds; a row of panels
    /// per split.
    Final,
    /// As `final`, by comparison-graph component kind (preference files): for each metric `m`
    /// (`accuracy`, `pair_diff_abs_mean`, `pair_sum_abs_mean`) a panel with a line for the
    /// pairs of each kind of component: bipartite with every winner on one side
    /// (`m_one_sided`), bipartite with winners on both sides (`m_two_sided`), with an odd cycle
    /// (`m_odd_cycle`).
    GraphKinds,
    /// Final reward histograms, a panel per λ (and per value of the other swept keys), seeds
    /// pooled, each panel binned over its own range on one shared y scale.
    Distribution,
    /// Learned against true reward (synthetic data) for λ = 0 and the largest λ, coloured by prompt.
    LearnedVsTrue,
    /// Reliability diagrams of the final rewards: per confidence bin σ(|r_a − r_b|), the
    /// fraction of pairs whose preferred response is the labelled winner, a panel per λ (and
    /// per value of the other swept keys), a row per split, seeds pooled; no `metrics`.
    Reliability,
}

/// A `[[figure]]` of a spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FigureSpec {
    /// File stem under results/figures/<experiment>/.
    pub name: String,
    pub kind: FigureKind,
    /// Metrics to show (curves, final); see docs/schema.md for names.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Splits (curves, final, graph_kinds: one row of panels each; other kinds use the first).
    #[serde(default = "default_splits")]
    pub splits: Vec<String>,
    /// The x param of `final` figures.
    #[serde(default = "default_x")]
    pub x: String,
    /// Params whose values each get a line (curves: default λ; final: default none).
    #[serde(default)]
    pub lines: Vec<String>,
    /// Only runs whose params have these values (a list: any of its values).
    #[serde(default, rename = "where", serialize_with = "filters_as_json")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub filters: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub band: Band,
    #[serde(default)]
    pub width: Width,
    /// `final` figures: each run's value at the last evaluation, or its best over evaluations
    /// (as `rmlab query summary --stat best`; only metrics that improve one way).
    #[serde(default)]
    pub stat: Statistic,
    /// `curves` figures: training steps on a log axis (step 0 left out).
    #[serde(default)]
    pub log_x: bool,
    /// Metrics (of `metrics`) drawn on a log y axis; values ≤ 0 are left out. Magnitudes
    /// (max |r|, mean |r_a + r_b|, …) not listed get one anyway when their positive means span
    /// two decades or more.
    #[serde(default)]
    pub log_y: Vec<String>,
    /// One sentence saying what the figure shows (goes to the sidecar and the README gallery);
    /// `{lines}` is replaced by the symbols of the keys that get a line each (`λ`, `graph, λ`).
    #[serde(default)]
    pub caption: String,
}

/// Which value of each run a `final` figure shows.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// The value at the last evaluation.
    #[default]
    Final,
    /// The best value over evaluations, on the split shown (so an optimistic estimate of what
    /// early stopping on that split would report).
    Best,
}

fn default_splits() -> Vec<String> {
    vec!["val".into()]
}

pub fn default_x() -> String {
    "loss.lambda".into()
}

/// The default catalogue, used for a spec that declares no figures.
pub fn catalogue() -> Vec<FigureSpec> {
    let base =
        |name: &str, kind, metrics: &[&str], splits: &[&str], lines: &[&str], caption: &str| FigureSpec {
            name: name.into(),
            kind,
            metrics: metrics.iter().map(|s| s.to_string()).collect(),
            splits: splits.iter().map(|s| s.to_string()).collect(),
            x: default_x(),
            lines: lines.iter().map(|s| s.to_string()).collect(),
            filters: BTreeMap::new(),
            band: Band::Ci95,
            width: Width::Double,
            stat: Statistic::Final,
            log_x: false,
            log_y: vec![],
            caption: caption.into(),
        };
    vec![
        base(
            "loss_curves",
            FigureKind::Curves,
            &["loss_pair", "loss_reg", "loss_total"],
            &["train", "val"],
            &[],
            "Loss terms over training, train (top) and validation (bottom), one line per {lines}.",
        ),
        base(
            "magnitude_curves",
            FigureKind::Curves,
            &["reward_max_abs", "reward_std", "pair_sum_abs_mean"],
            &["val"],
            &[],
            "Reward magnitude over training on validation responses: largest |r|, spread of r, and how far pair sums r_a + r_b stray from 0; one line per {lines}.",
        ),
        base(
            "final_vs_lambda",
            FigureKind::Final,
            &["accuracy", "reward_max_abs", "true_pearson"],
            &["val"],
            &[],
            "Final validation metrics against λ; λ = 0 (unregularized) is the dashed line with its band; dotted: the identifiable ceiling, what r* − g(x) scores (no comparison sees the per-prompt offset g(x)).",
        ),
        base(
            "reward_distributions",
            FigureKind::Distribution,
            &[],
            &["val"],
            &[],
            "Final rewards of validation responses, a panel per λ, seeds pooled; each panel is binned over its own range (note the x scales).",
        ),
        base(
            "learned_vs_true",
            FigureKind::LearnedVsTrue,
            &[],
            &["val"],
            &[],
            "Learned against true reward; coloured lines join the responses of one prompt.",
        ),
    ]
}

/// Checks a figure's names against the metrics, the config keys a sweep may set and the
/// spec's splits (train, val, test and its evaluation files').
pub fn check(
    fig: &FigureSpec,
    valid_keys: &BTreeSet<String>,
    splits: &[String],
) -> std::result::Result<(), (String, String)> {
    let bad = |k: &str, m: String| Err((format!("figure.{k}"), m));
    if fig.name.is_empty() || !fig.name.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
        return bad("name", format!("`{}`: use letters, digits, '_' and '-'", fig.name));
    }
    if fig.kind == FigureKind::GraphKinds
        && let Some(m) = fig.metrics.iter().find(|m| !metric::GRAPH_KIND_BASES.contains(&m.as_str()))
    {
        let known = metric::GRAPH_KIND_BASES.join(", ");
        return bad("metrics", format!("`{m}` has no values by component kind; known: {known}"));
    }
    for m in fig.metrics.iter().filter(|_| fig.kind != FigureKind::GraphKinds) {
        if !metric::all_names().any(|n| n == m) {
            let known: Vec<&str> = metric::all_names().collect();
            return bad("metrics", format!("unknown metric `{m}`; known: {}", known.join(", ")));
        }
    }
    for s in &fig.splits {
        if !splits.contains(s) {
            return bad("splits", format!("unknown split `{s}`; this spec has {}", splits.join(", ")));
        }
    }
    if fig.splits.is_empty() {
        return bad("splits", "needs at least one split".into());
    }
    let known = |k: &String| k == "seed" || valid_keys.contains(k);
    for (field, keys) in [
        ("lines", fig.lines.iter().collect::<Vec<_>>()),
        ("x", vec![&fig.x]),
        ("where", fig.filters.keys().collect()),
    ] {
        if let Some(k) = keys.into_iter().find(|k| !known(k)) {
            return bad(field, format!("unknown config key `{k}`"));
        }
    }
    // A value is a scalar, or a non-empty list of scalars (any of them).
    let scalar = |v: &toml::Value| !matches!(v, toml::Value::Array(_) | toml::Value::Table(_));
    for (k, v) in &fig.filters {
        let ok = match v {
            toml::Value::Array(a) => !a.is_empty() && a.iter().all(scalar),
            v => scalar(v),
        };
        if !ok {
            return bad("where", format!("`{k}`: expected a value or a non-empty list of values, found {v}"));
        }
    }
    if matches!(fig.kind, FigureKind::Curves | FigureKind::Final | FigureKind::GraphKinds)
        && fig.metrics.is_empty()
    {
        return bad("metrics", "this kind needs at least one metric".into());
    }
    if fig.kind == FigureKind::Reliability && !fig.metrics.is_empty() {
        return bad("metrics", "a reliability figure draws the reliability bins; leave `metrics` out".into());
    }
    if fig.stat == Statistic::Best {
        if fig.kind != FigureKind::Final {
            return bad("stat", "`best` applies to kind = \"final\" only".into());
        }
        if let Some(m) = fig.metrics.iter().find(|m| metric::goal(m).is_none()) {
            return bad(
                "stat",
                format!("`best` needs metrics that improve one way; `{m}` is a magnitude with no best value"),
            );
        }
    }
    if let Some(m) = fig.log_y.iter().find(|m| !fig.metrics.contains(m)) {
        return bad("log_y", format!("`{m}` is not one of this figure's metrics"));
    }
    if fig.log_x && fig.kind != FigureKind::Curves {
        return bad(
            "log_x",
            "applies to kind = \"curves\" only (`final` figures already use a log axis)".into(),
        );
    }
    Ok(())
}

/// How the band around a mean is drawn.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// 95 % confidence interval of the mean over seeds (Student's t, n − 1 degrees of freedom).
    #[default]
    Ci95,
    /// ± one standard error of the mean.
    Sem,
}

impl Band {
    pub fn describe(self) -> &'static str {
        match self {
            Band::Ci95 => "95 % CI of the mean over seeds (Student t), cut to the metric's range",
            Band::Sem => "± 1 standard error of the mean over seeds, cut to the metric's range",
        }
    }
}

/// Figure width for a one- or two-column paper layout.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Width {
    /// 3.5 in.
    Single,
    /// 7.16 in.
    #[default]
    Double,
}

impl Width {
    pub fn inches(self) -> f64 {
        match self {
            Width::Single => 3.5,
            Width::Double => 7.16,
        }
    }
}

/// `where` values as JSON (figure sidecars): JSON has no infinity, so `inf` (as in
/// `data.beta = inf`) is written as the string `"inf"`, as the canonical config writes it,
/// never as `null`.
fn filters_as_json<S: serde::Serializer>(
    filters: &BTreeMap<String, toml::Value>,
    s: S,
) -> Result<S::Ok, S::Error> {
    fn json(v: &toml::Value) -> serde_json::Value {
        match v {
            toml::Value::Float(f) if f.is_nan() => "nan".into(),
            toml::Value::Float(f) if f.is_infinite() => (if *f > 0.0 { "inf" } else { "-inf" }).into(),
            toml::Value::Array(items) => items.iter().map(json).collect(),
            toml::Value::Table(t) => t.iter().map(|(k, v)| (k.clone(), json(v))).collect(),
            other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
        }
    }
    let as_json: BTreeMap<&String, serde_json::Value> = filters.iter().map(|(k, v)| (k, json(v))).collect();
    serde::Serialize::serialize(&as_json, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_where_values_are_written_as_inf_not_null() {
        let fig: FigureSpec = toml::from_str(
            "name = \"f\"\nkind = \"final\"\n[where]\n\"data.beta\" = inf\n\"loss.lambda\" = [0.1, -inf]\n",
        )
        .unwrap();
        let json = serde_json::to_value(&fig).unwrap();
        assert_eq!(json["where"]["data.beta"], "inf");
        assert_eq!(json["where"]["loss.lambda"], serde_json::json!([0.1, "-inf"]));
    }
}
