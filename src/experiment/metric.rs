//! The metrics a run records, by name, and which way each improves: the vocabulary that specs
//! (figures), the store (best values) and queries share. `eval` computes them in this order.

/// Metric names, in the order `eval::metrics::split_metrics` returns them. Pair statistics are means over
/// the split's P pairs; reward statistics are over its R_s responses.
pub const NAMES: [&str; 14] = [
    "loss_pair",          // mean −log σ(r_a − r_b)
    "loss_reg",           // regularizer value
    "loss_total",         // loss_pair + loss_reg
    "accuracy",           // fraction of pairs with r_a > r_b (labels as given, noise included)
    "reward_mean",        // mean r over responses
    "reward_std",         // population standard deviation of r over responses
    "reward_max_abs",     // max |r| over responses
    "pair_sum_mean",      // mean (r_a + r_b)
    "pair_sum_abs_mean",  // mean |r_a + r_b|
    "pair_diff_mean",     // mean (r_a − r_b)
    "label_ece",          // ECE of σ(r_a − r_b) against the labels (`eval::calibration`)
    "label_brier",        // Brier score mean (σ(r_a − r_b) − 1)² of the labelled winner
    "true_pearson",       // Pearson correlation of r with r* over responses, across prompts
    "true_pair_accuracy", // fraction of pairs where sign(r_a − r_b) = sign(r*_a − r*_b)
];

/// The calibration metrics of [`NAMES`], in the order `eval::calibration::calibration_metrics`
/// returns them.
pub const CALIBRATION_NAMES: [&str; 2] = ["label_ece", "label_brier"];

/// Confidence bins of `label_ece` and of a reliability diagram: equal-width bins of the
/// folded confidence max(p, 1 − p) over [½, 1], so 0.05 wide. Ten keep a held-out split of a
/// few hundred pairs at tens of pairs a bin where the pairs are.
pub const RELIABILITY_BINS: usize = 10;

/// What each reliability bin records, in order (`reliability_{k}_{what}`, k = 0 for
/// confidences [0.5, 0.55)): its pair count, the mean confidence of its pairs and the fraction
/// of them whose preferred response is the labelled winner.
pub const RELIABILITY_PARTS: [&str; 3] = ["pairs", "confidence", "correct"];

/// The reliability bins' metric names, bin-major: `reliability_0_pairs`,
/// `reliability_0_confidence`, `reliability_0_correct`, `reliability_1_pairs`, … Recorded
/// once a run, for its final rewards (`eval::evaluator::report_rewards`), not at every
/// evaluation.
pub fn reliability_names() -> &'static [&'static str] {
    static NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        (0..RELIABILITY_BINS)
            .flat_map(|k| {
                RELIABILITY_PARTS
                    .iter()
                    .map(move |p| -> &'static str { format!("reliability_{k}_{p}").leak() })
            })
            .collect()
    });
    &NAMES
}

/// Metrics against the true reward computed on the host (synthetic data), in the order
/// `eval::truth::truth_metrics` returns them.
pub const TRUTH_NAMES: [&str; 7] = [
    "true_spearman",               // Spearman rank correlation of r with r* over responses
    "true_pearson_within",         // Pearson of r with r* after removing each prompt's mean from both
    "true_within_prompt_accuracy", // all response pairs within a prompt: sign(r_i − r_j) = sign(r*_i − r*_j)
    "offset_error",                // std over prompts of (mean_y r − mean_y r*)
    "ece", // calibration of σ(r_a − r_b) against the true P(a ≻ b) (flips included), 10 bins
    "offset_part_abs_mean", // mean |(r_a + r_b) / 2| over pairs: the part λ pins
    "spread_part_abs_mean", // mean |(r_a − r_b) / 2| over pairs: the part BT sees
];

/// Metrics over the pairs of one kind of comparison-graph component (preference files), in the
/// order `eval::graph_kind::graph_kind_metrics` returns them: each base metric for each kind
/// of [`GRAPH_KINDS`]; NaN where a split has no pair of that kind. A prompt's comparison graph
/// has its responses as nodes and its labelled pairs as edges (`data::graph`), and the kinds
/// are what the pair-sum term does there (`data::comparison_graph`):
///
/// - `one_sided`: bipartite with every winner on one side (a single pair always): the term
///   leaves the spread r_a − r_b free, unbounded on separable data;
/// - `two_sided`: bipartite with winners on both sides: the spread is bounded;
/// - `odd_cycle`: with an odd cycle: every reward is pinned.
pub const GRAPH_KIND_NAMES: [&str; 9] = [
    "accuracy_one_sided", // fraction of those pairs with r_a > r_b
    "accuracy_two_sided",
    "accuracy_odd_cycle",
    "pair_diff_abs_mean_one_sided", // mean |r_a − r_b|: the spread
    "pair_diff_abs_mean_two_sided",
    "pair_diff_abs_mean_odd_cycle",
    "pair_sum_abs_mean_one_sided", // mean |r_a + r_b|
    "pair_sum_abs_mean_two_sided",
    "pair_sum_abs_mean_odd_cycle",
];

/// The component kinds of [`GRAPH_KIND_NAMES`], as their names end, in the order of
/// `data::ComponentKind::ALL`.
pub const GRAPH_KINDS: [&str; 3] = ["one_sided", "two_sided", "odd_cycle"];

/// The metrics that [`GRAPH_KIND_NAMES`] measures for each kind.
pub const GRAPH_KIND_BASES: [&str; 3] = ["accuracy", "pair_diff_abs_mean", "pair_sum_abs_mean"];

/// Metrics of the model rather than of a split, recorded with the train split.
pub const MODEL_NAMES: [&str; 1] = ["head_weight_norm"];

/// Every metric name an evaluation can record.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    NAMES
        .iter()
        .chain(TRUTH_NAMES.iter())
        .chain(GRAPH_KIND_NAMES.iter())
        .chain(MODEL_NAMES.iter())
        .chain(reliability_names().iter())
        .copied()
}

/// The values a metric can take, `(low, high)`: fractions in [0, 1], correlations in
/// [−1, 1], losses and magnitudes in [0, ∞); `None` for signed means. A figure cuts a band
/// to it (a t-interval over few seeds can pass an accuracy of 1).
pub fn range(name: &str) -> Option<(f64, f64)> {
    let unit = (0.0, 1.0);
    match name {
        "true_pearson" | "true_spearman" | "true_pearson_within" => Some((-1.0, 1.0)),
        n if n.contains("accuracy") || is_probability(n) => Some(unit),
        n if n.starts_with("loss_")
            || magnitude(n)
            || (n.starts_with("reliability_") && n.ends_with("_pairs")) =>
        {
            Some((0.0, f64::INFINITY))
        }
        _ => None,
    }
}

/// Whether a metric is a magnitude (a non-negative size: max |r|, mean |r_a + r_b|, a norm),
/// whose values can span decades, so that a figure may draw it on a log axis.
pub fn magnitude(name: &str) -> bool {
    name.contains("abs") || matches!(name, "reward_std" | "offset_error" | "head_weight_norm")
}

/// Whether a metric is a probability or an error between probabilities (values in [0, 1]).
fn is_probability(name: &str) -> bool {
    matches!(name, "ece" | "label_ece" | "label_brier")
        || (name.starts_with("reliability_") && (name.ends_with("_confidence") || name.ends_with("_correct")))
}

/// Which way a metric improves; `None` for magnitudes, which have no better direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    Min,
    Max,
}

/// The goal of a metric by name: losses fall, accuracies and correlations rise.
pub fn goal(name: &str) -> Option<Goal> {
    match name {
        n if n.starts_with("loss_") => Some(Goal::Min),
        "accuracy"
        | "accuracy_one_sided"
        | "accuracy_two_sided"
        | "accuracy_odd_cycle"
        | "true_pearson"
        | "true_pair_accuracy"
        | "true_spearman"
        | "true_pearson_within"
        | "true_within_prompt_accuracy" => Some(Goal::Max),
        "offset_error" | "ece" | "label_ece" | "label_brier" => Some(Goal::Min),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric has the range its definition gives it.
    #[test]
    fn every_metric_has_its_range() {
        let signed = ["reward_mean", "pair_sum_mean", "pair_diff_mean"];
        let correlations = ["true_pearson", "true_spearman", "true_pearson_within"];
        for name in all_names() {
            let expected = if signed.contains(&name) {
                None
            } else if correlations.contains(&name) {
                Some((-1.0, 1.0))
            } else if name.contains("accuracy")
                || ["ece", "label_ece", "label_brier"].contains(&name)
                || name.ends_with("_confidence")
                || name.ends_with("_correct")
            {
                Some((0.0, 1.0))
            } else {
                Some((0.0, f64::INFINITY))
            };
            assert_eq!(range(name), expected, "{name}");
        }
        assert_eq!(range("spread_part_abs_mean"), Some((0.0, f64::INFINITY)));
        assert_eq!(range("true_within_prompt_accuracy"), Some((0.0, 1.0)));
        assert_eq!(range("reliability_9_pairs"), Some((0.0, f64::INFINITY)));
        assert_eq!(range("label_brier"), Some((0.0, 1.0)));
    }

    /// The reliability bins are every part of every bin, bin-major, registered once; the
    /// calibration errors fall, the bins have no direction.
    #[test]
    fn reliability_names_are_every_part_of_every_bin() {
        let names = reliability_names();
        assert_eq!(names.len(), 3 * RELIABILITY_BINS);
        assert_eq!(
            &names[..4],
            [
                "reliability_0_pairs",
                "reliability_0_confidence",
                "reliability_0_correct",
                "reliability_1_pairs"
            ]
        );
        assert_eq!(names.last(), Some(&"reliability_9_correct"));
        assert!(std::ptr::eq(names, reliability_names()), "built once");
        let all: Vec<&str> = all_names().collect();
        let unique: std::collections::BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(unique.len(), all.len(), "no name twice");
        assert!(names.iter().all(|n| all.contains(n) && goal(n).is_none()));
        for n in CALIBRATION_NAMES {
            assert!(NAMES.contains(&n));
            assert_eq!(goal(n), Some(Goal::Min), "{n}");
        }
    }

    /// The magnitudes are the metrics of range [0, ∞) that are not losses: sizes of rewards.
    #[test]
    fn magnitudes_are_the_non_negative_sizes() {
        let sizes: Vec<&str> = all_names().filter(|n| magnitude(n)).collect();
        for n in &sizes {
            assert_eq!(range(n), Some((0.0, f64::INFINITY)), "{n}");
            assert!(!n.starts_with("loss_"), "{n}");
        }
        for n in
            ["reward_max_abs", "pair_sum_abs_mean", "spread_part_abs_mean", "pair_diff_abs_mean_one_sided"]
        {
            assert!(sizes.contains(&n), "{n}");
        }
        for n in ["accuracy", "loss_pair", "reward_mean", "pair_diff_mean", "ece", "true_pearson"] {
            assert!(!magnitude(n), "{n}");
        }
    }

    /// The metrics by component kind are every base for every kind, base-major, and the
    /// accuracies among them improve upwards as `accuracy` does.
    #[test]
    fn graph_kind_names_are_every_base_for_every_kind() {
        let expected: Vec<String> = GRAPH_KIND_BASES
            .iter()
            .flat_map(|b| GRAPH_KINDS.iter().map(move |k| format!("{b}_{k}")))
            .collect();
        assert_eq!(GRAPH_KIND_NAMES.to_vec(), expected);
        for name in GRAPH_KIND_NAMES {
            let base = GRAPH_KIND_BASES.iter().find(|b| name.starts_with(*b)).unwrap();
            assert_eq!(goal(name), goal(base), "{name}");
        }
    }
}
