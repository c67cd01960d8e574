//! Metrics by comparison-graph component kind: accuracy, spread |r_a − r_b| and |r_a + r_b|
//! over the pairs of a split that lie in each kind of component: bipartite with every winner
//! on one side (the pair-sum term leaves the spread free), bipartite with winners on both
//! sides (the spread is bounded), with an odd cycle (every reward pinned); see `data::graph`.
//! This is where the term's effect on real data shows.

use crate::data::{ComponentKind, SplitTensors};
use crate::experiment::metric::{GRAPH_KIND_BASES, GRAPH_KIND_NAMES, GRAPH_KINDS};

/// `(name, value)` in [`GRAPH_KIND_NAMES`] order from the rewards `r` of all R responses
/// (host, f64); means over the split's pairs of each kind, NaN for a kind with no pair. Empty
/// when the data have no component kinds (synthetic data).
pub fn graph_kind_metrics(r: &[f64], split: &SplitTensors) -> Vec<(&'static str, f64)> {
    let Some(kinds) = &split.pair_kind_host else { return Vec::new() };
    // Per kind (ComponentKind::index): pairs, then Σ of each base metric's term.
    let mut acc = [[0.0f64; 1 + GRAPH_KIND_BASES.len()]; GRAPH_KINDS.len()];
    for (&(a, b), kind) in split.pairs_host.iter().zip(kinds) {
        let k = &mut acc[kind.index()];
        k[0] += 1.0;
        k[1] += f64::from(u8::from(r[a] > r[b]));
        k[2] += (r[a] - r[b]).abs();
        k[3] += (r[a] + r[b]).abs();
    }
    // GRAPH_KIND_NAMES is base-major: every kind of the first base, then of the next.
    let values = (0..GRAPH_KIND_BASES.len()).flat_map(|base| {
        ComponentKind::ALL.map(|kind| {
            let k = &acc[kind.index()];
            if k[0] == 0.0 { f64::NAN } else { k[1 + base] / k[0] }
        })
    });
    GRAPH_KIND_NAMES.iter().copied().zip(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ComparisonGraphs;
    use crate::data::Pair;
    use std::collections::HashMap;
    use tch::Tensor;

    fn split(pairs: &[(usize, usize)], kinds: Option<Vec<ComponentKind>>) -> SplitTensors {
        SplitTensors {
            chosen: Tensor::new(),
            rejected: Tensor::new(),
            responses: Tensor::new(),
            n_pairs: pairs.len(),
            responses_host: (0..pairs.iter().map(|&(a, b)| a.max(b) + 1).max().unwrap_or(0)).collect(),
            pairs_host: pairs.to_vec(),
            margins: None,
            margins_host: None,
            pair_kind_host: kinds,
        }
    }

    /// The split of one prompt's `pairs` on `n` responses, its kinds from its graph.
    fn split_of_graph(n: usize, pairs: &[(usize, usize)]) -> SplitTensors {
        let list: Vec<Pair> = pairs.iter().map(|&(chosen, rejected)| Pair { chosen, rejected }).collect();
        split(pairs, Some(ComparisonGraphs::new(1, &vec![0; n], &list).pair_kind))
    }

    /// Rewards r = [2, −1, 0.5, 3, 1, −2, 4, 0]; pairs (0, 1) and (2, 3) one-sided, (6, 7) and
    /// (7, 6) two-sided (a contradicted pair), (3, 4), (4, 5), (5, 3) a triangle.
    #[test]
    fn metrics_by_kind_by_hand() {
        use ComponentKind::{OddCycle as O, OneSided as S, TwoSided as T};
        let r = [2.0, -1.0, 0.5, 3.0, 1.0, -2.0, 4.0, 0.0];
        let s =
            split(&[(0, 1), (2, 3), (6, 7), (3, 4), (4, 5), (5, 3), (7, 6)], Some(vec![S, S, T, O, O, O, T]));
        let m: HashMap<_, _> = graph_kind_metrics(&r, &s).into_iter().collect();
        assert_eq!(m.len(), 9);
        // One-sided: (2, −1) right, (0.5, 3) wrong; |diff| 3 and 2.5; |sum| 1 and 3.5.
        assert_eq!(m["accuracy_one_sided"], 0.5);
        assert_eq!(m["pair_diff_abs_mean_one_sided"], 2.75);
        assert_eq!(m["pair_sum_abs_mean_one_sided"], 2.25);
        // Two-sided: (4, 0) right, (0, 4) wrong; |diff| 4 and 4; |sum| 4 and 4.
        assert_eq!(m["accuracy_two_sided"], 0.5);
        assert_eq!(m["pair_diff_abs_mean_two_sided"], 4.0);
        assert_eq!(m["pair_sum_abs_mean_two_sided"], 4.0);
        // Triangle: (3, 1) right, (1, −2) right, (−2, 3) wrong; |diff| 2, 3, 5; |sum| 4, 1, 1.
        assert_eq!(m["accuracy_odd_cycle"], 2.0 / 3.0);
        assert_eq!(m["pair_diff_abs_mean_odd_cycle"], 10.0 / 3.0);
        assert_eq!(m["pair_sum_abs_mean_odd_cycle"], 2.0);
        let only_s = graph_kind_metrics(&r, &split(&[(0, 1)], Some(vec![S])));
        assert!(only_s.iter().filter(|(n, _)| !n.ends_with("one_sided")).all(|(_, v)| v.is_nan()));
        assert!(only_s.iter().filter(|(n, _)| n.ends_with("one_sided")).all(|(_, v)| v.is_finite()));
        assert!(graph_kind_metrics(&r, &split(&[(0, 1)], None)).is_empty(), "synthetic data: none");
    }

    /// A split holding a one-sided star (centre 0 beats 1 and 2) and a two-sided path
    /// (3 ≻ 4 ≻ 5), both bipartite: their pairs are measured apart, from the graph's own
    /// classification. Rewards r = [3, 0, 1, 2, 1, −1]: star spreads 3 and 2, path spreads 1
    /// and 2; star sums 3 and 4, path sums 3 and 0.
    #[test]
    fn one_sided_and_two_sided_components_are_measured_apart() {
        let r = [3.0, 0.0, 1.0, 2.0, 1.0, -1.0];
        let s = split_of_graph(6, &[(0, 1), (0, 2), (3, 4), (4, 5)]);
        let m: HashMap<_, _> = graph_kind_metrics(&r, &s).into_iter().collect();
        assert_eq!(m["pair_diff_abs_mean_one_sided"], 2.5);
        assert_eq!(m["pair_diff_abs_mean_two_sided"], 1.5);
        assert_eq!(m["pair_sum_abs_mean_one_sided"], 3.5);
        assert_eq!(m["pair_sum_abs_mean_two_sided"], 1.5);
        assert_eq!((m["accuracy_one_sided"], m["accuracy_two_sided"]), (1.0, 1.0));
        assert!(m["accuracy_odd_cycle"].is_nan());
    }
}
