//! The metrics a run records, by name, and which way each improves: the vocabulary that specs
//! (figures), the store (best values) and queries share. `eval` computes them in this order.

/// Metric names, in the order `eval::metrics::split_metrics` returns them. Pair statistics are means over
/// the split's P pairs; reward statistics are over its R_s responses.
pub const NAMES: [&str; 12] = [
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
    "true_pearson",       // Pearson correlation of r with r* over responses, across prompts
    "true_pair_accuracy", // fraction of pairs where sign(r_a − r_b) = sign(r*_a − r*_b)
];

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
/// order `eval::graph_kind::graph_kind_metrics` returns them. A pair lies in a bipartite
/// component (a single pair, a star, an even cycle: the pair-sum term does not pin its rewards,
/// and leaves its spread free when every winner sits on one side; `data::comparison_graph`)
/// or in one with an odd cycle (the term pins its rewards); NaN where a split has none.
pub const GRAPH_KIND_NAMES: [&str; 6] = [
    "accuracy_bipartite", // fraction of those pairs with r_a > r_b
    "accuracy_odd_cycle",
    "pair_diff_abs_mean_bipartite", // mean |r_a − r_b|: the spread
    "pair_diff_abs_mean_odd_cycle",
    "pair_sum_abs_mean_bipartite", // mean |r_a + r_b|
    "pair_sum_abs_mean_odd_cycle",
];

/// The component kinds of [`GRAPH_KIND_NAMES`], as their names end.
pub const GRAPH_KINDS: [&str; 2] = ["bipartite", "odd_cycle"];

/// Metrics of the model rather than of a split, recorded with the train split.
pub const MODEL_NAMES: [&str; 1] = ["head_weight_norm"];

/// Every metric name an evaluation can record.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    NAMES.iter().chain(TRUTH_NAMES.iter()).chain(GRAPH_KIND_NAMES.iter()).chain(MODEL_NAMES.iter()).copied()
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
        | "accuracy_bipartite"
        | "accuracy_odd_cycle"
        | "true_pearson"
        | "true_pair_accuracy"
        | "true_spearman"
        | "true_pearson_within"
        | "true_within_prompt_accuracy" => Some(Goal::Max),
        "offset_error" | "ece" => Some(Goal::Min),
        _ => None,
    }
}
