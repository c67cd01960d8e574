//! Metrics by comparison-graph component kind: accuracy, spread |r_a − r_b| and |r_a + r_b|
//! over the pairs of a split that lie in bipartite components against those in components
//! with an odd cycle. The pair-sum term can bound the spread only on the second kind (see
//! `data::graph`), so this is where its effect on real data shows.

use crate::data::{ComponentKind, SplitTensors};
use crate::experiment::metric::GRAPH_KIND_NAMES;

/// `(name, value)` in [`GRAPH_KIND_NAMES`] order from the rewards `r` of all R responses
/// (host, f64); means over the split's pairs of each kind, NaN for a kind with no pair. Empty
/// when the data have no component kinds (synthetic data).
pub fn graph_kind_metrics(r: &[f64], split: &SplitTensors) -> Vec<(&'static str, f64)> {
    let Some(kinds) = &split.pair_kind_host else { return Vec::new() };
    // Per kind: pairs, correct, Σ|r_a − r_b|, Σ|r_a + r_b|.
    let mut acc = [[0.0f64; 4]; 2];
    for (&(a, b), kind) in split.pairs_host.iter().zip(kinds) {
        let k = &mut acc[usize::from(*kind == ComponentKind::OddCycle)];
        k[0] += 1.0;
        k[1] += f64::from(u8::from(r[a] > r[b]));
        k[2] += (r[a] - r[b]).abs();
        k[3] += (r[a] + r[b]).abs();
    }
    let mean = |k: usize, i: usize| if acc[k][0] == 0.0 { f64::NAN } else { acc[k][i] / acc[k][0] };
    let values = [mean(0, 1), mean(1, 1), mean(0, 2), mean(1, 2), mean(0, 3), mean(1, 3)];
    GRAPH_KIND_NAMES.iter().copied().zip(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    fn split(pairs: &[(usize, usize)], kinds: Option<Vec<ComponentKind>>) -> SplitTensors {
        SplitTensors {
            chosen: Tensor::new(),
            rejected: Tensor::new(),
            responses: Tensor::new(),
            n_pairs: pairs.len(),
            responses_host: (0..6).collect(),
            pairs_host: pairs.to_vec(),
            margins: None,
            margins_host: None,
            pair_kind_host: kinds,
        }
    }

    /// Rewards r = [2, −1, 0.5, 3, 1, −2]; pairs (0, 1) and (2, 3) in a bipartite component,
    /// (3, 4), (4, 5), (5, 3) in a triangle.
    #[test]
    fn metrics_by_kind_by_hand() {
        use ComponentKind::{Bipartite as B, OddCycle as O};
        let r = [2.0, -1.0, 0.5, 3.0, 1.0, -2.0];
        let s = split(&[(0, 1), (2, 3), (3, 4), (4, 5), (5, 3)], Some(vec![B, B, O, O, O]));
        let m: std::collections::HashMap<_, _> = graph_kind_metrics(&r, &s).into_iter().collect();
        // Bipartite: (2, −1) right, (0.5, 3) wrong; |diff| 3 and 2.5; |sum| 1 and 3.5.
        assert_eq!(m["accuracy_bipartite"], 0.5);
        assert_eq!(m["pair_diff_abs_mean_bipartite"], 2.75);
        assert_eq!(m["pair_sum_abs_mean_bipartite"], 2.25);
        // Triangle: (3, 1) right, (1, −2) right, (−2, 3) wrong; |diff| 2, 3, 5; |sum| 4, 1, 1.
        assert_eq!(m["accuracy_odd_cycle"], 2.0 / 3.0);
        assert_eq!(m["pair_diff_abs_mean_odd_cycle"], 10.0 / 3.0);
        assert_eq!(m["pair_sum_abs_mean_odd_cycle"], 2.0);
        let only_b = graph_kind_metrics(&r, &split(&[(0, 1)], Some(vec![B])));
        assert!(only_b.iter().filter(|(n, _)| n.ends_with("odd_cycle")).all(|(_, v)| v.is_nan()));
        assert!(graph_kind_metrics(&r, &split(&[(0, 1)], None)).is_empty(), "synthetic data: none");
    }
}
