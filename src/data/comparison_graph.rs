//! What the pair-sum term bounds on one prompt's labelled comparison graph, for free
//! per-response rewards (one free reward per response, no model).
//!
//! Over a prompt's pairs, Σ (r_a + r_b)² = rᵀ(D + A)r with D + A the signless Laplacian of its
//! comparison graph. On a connected component, D + A is singular exactly when the component is
//! bipartite, and then its null vector is s = +1 on one side, −1 on the other. Along s every
//! pair sum stays put and every margin r_w − r_l (winner minus loser) moves by s_w − s_l = ±2:
//!
//! - every winner of the component on one side: moving along s raises every margin, the
//!   Bradley–Terry term falls for ever and the objective has no minimizer; the spread r_a − r_b
//!   grows without bound (always so with one pair a prompt);
//! - winners on both sides: either way along s some margin falls and its Bradley–Terry term
//!   grows without bound, so (the objective being convex with no other flat direction) a
//!   minimizer exists and the spread is bounded (a path a ≻ b ≻ c; a star whose centre ranks
//!   in the middle; a pair labelled both ways);
//! - an odd cycle: D + A is positive definite on the component, every reward is pinned.
//!
//! This holds for any labels and any λ > 0; with λ = 0 nothing bounds the spread of
//! separable data. The three kinds are [`ComponentKind`]'s, classified by `data::graph`; the
//! tests here check that classification against Newton's method on free rewards.

use super::graph::{ComparisonGraphs, ComponentKind};
use super::pair::Pair;

/// The kinds of the components of the graph on responses `0..n` with labelled pairs
/// `(winner, loser)` that contain at least one pair, in the order of their first pair
/// (classified by [`ComparisonGraphs`], the one implementation rmlab has). Responses outside
/// every pair are ignored (no comparison, no spread).
pub fn components(n: usize, pairs: &[(usize, usize)]) -> Vec<ComponentKind> {
    let pairs: Vec<Pair> = pairs.iter().map(|&(chosen, rejected)| Pair { chosen, rejected }).collect();
    ComparisonGraphs::new(1, &vec![0; n], &pairs).components
}

/// Whether every compared spread of the graph stays bounded under the pair-sum term (λ > 0).
pub fn spread_bounded(n: usize, pairs: &[(usize, usize)]) -> bool {
    components(n, pairs).iter().all(|c| c.bounded())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::config::{DataConfig, Graph};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn softplus(z: f64) -> f64 {
        if z > 0.0 { z + (-z).exp().ln_1p() } else { z.exp().ln_1p() }
    }

    fn sigmoid(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    /// Σ over pairs of −log σ(r_w − r_l) + λ (r_w + r_l)²: the objective of free rewards (a sum
    /// rather than the trainer's mean over pairs, which has the same minimizer).
    fn objective(r: &[f64], pairs: &[(usize, usize)], lambda: f64) -> f64 {
        pairs.iter().map(|&(w, l)| softplus(-(r[w] - r[l])) + lambda * (r[w] + r[l]).powi(2)).sum()
    }

    /// Solves `h x = g` by Gaussian elimination with partial pivoting (n ≤ 10).
    fn solve(mut h: Vec<Vec<f64>>, mut g: Vec<f64>) -> Vec<f64> {
        let n = g.len();
        for c in 0..n {
            let p = (c..n).max_by(|&a, &b| h[a][c].abs().total_cmp(&h[b][c].abs())).unwrap();
            h.swap(c, p);
            g.swap(c, p);
            let pivot = h[c].clone();
            for r in c + 1..n {
                let f = h[r][c] / pivot[c];
                for (v, p) in h[r][c..].iter_mut().zip(&pivot[c..]) {
                    *v -= f * p;
                }
                g[r] -= f * g[c];
            }
        }
        let mut x = vec![0.0; n];
        for r in (0..n).rev() {
            x[r] = (g[r] - (r + 1..n).map(|k| h[r][k] * x[k]).sum::<f64>()) / h[r][r];
        }
        x
    }

    /// Newton's method with backtracking on the free-reward objective from r = 0, for at most
    /// `iters` steps. Returns the rewards, the largest spread |r_w − r_l| after each step, and
    /// whether it converged (a step shorter than 1e-10). On a one-sided component the step
    /// along the null vector tends to 1/σ(d) → 1, so it never converges; beyond a spread of
    /// about 30, σ(−d) falls below the rounding of the other terms, so tests stop before.
    fn newton(n: usize, pairs: &[(usize, usize)], lambda: f64, iters: usize) -> (Vec<f64>, Vec<f64>, bool) {
        let mut r = vec![0.0; n];
        let mut spreads = Vec::new();
        for _ in 0..iters {
            let mut g = vec![0.0; n];
            // Responses outside every pair get a unit diagonal: they do not move.
            let mut h = vec![vec![0.0; n]; n];
            for (i, row) in h.iter_mut().enumerate() {
                if !pairs.iter().any(|&(w, l)| w == i || l == i) {
                    row[i] = 1.0;
                }
            }
            for &(w, l) in pairs {
                let d = r[w] - r[l];
                let (p, s) = (sigmoid(-d), r[w] + r[l]);
                let curv = sigmoid(d) * sigmoid(-d);
                g[w] += -p + 2.0 * lambda * s;
                g[l] += p + 2.0 * lambda * s;
                for (a, b, sign) in [(w, w, 1.0), (l, l, 1.0), (w, l, -1.0), (l, w, -1.0)] {
                    h[a][b] += sign * curv + 2.0 * lambda;
                }
            }
            let step = solve(h, g.iter().map(|v| -v).collect());
            let f0 = objective(&r, pairs, lambda);
            let mut t = 1.0;
            loop {
                let trial: Vec<f64> = r.iter().zip(&step).map(|(a, b)| a + t * b).collect();
                if objective(&trial, pairs, lambda) <= f0 || t < 1e-8 {
                    r = trial;
                    break;
                }
                t /= 2.0;
            }
            spreads.push(pairs.iter().map(|&(w, l)| (r[w] - r[l]).abs()).fold(0.0, f64::max));
            if t * step.iter().map(|v| v * v).sum::<f64>().sqrt() < 1e-10 {
                return (r, spreads, true);
            }
        }
        (r, spreads, false)
    }

    /// The root of a decreasing-minus-increasing function on (0, 100) by bisection.
    fn bisect(f: impl Fn(f64) -> f64) -> f64 {
        let (mut lo, mut hi) = (0.0, 100.0);
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if f(mid) > 0.0 { lo = mid } else { hi = mid }
        }
        (lo + hi) / 2.0
    }

    /// The path a ≻ b ≻ c (responses 0, 1, 2) at λ = 0.1: by the symmetry r ↦ (−r_c, −r_b, −r_a)
    /// the minimizer is (s, 0, −s) with σ(−s) = 2λ s, so the range r_a − r_c is 2s ≈ 2.355.
    #[test]
    fn path_spread_matches_closed_form() {
        let pairs = [(0, 1), (1, 2)];
        assert_eq!(components(3, &pairs), [ComponentKind::TwoSided]);
        let (r, _, converged) = newton(3, &pairs, 0.1, 100);
        assert!(converged);
        let s = bisect(|s| sigmoid(-s) - 0.2 * s);
        assert!((r[0] - r[2] - 2.0 * s).abs() < 1e-9 && r[1].abs() < 1e-9, "{r:?} vs s = {s}");
        assert!((2.0 * s - 2.355).abs() < 5e-4, "{}", 2.0 * s);
    }

    /// The triangle a ≻ b, a ≻ c, b ≻ c at λ = 0.1: minimizer (s, 0, −s) with
    /// σ(−s) + σ(−2s) = 2λ s, range 2s ≈ 2.70.
    #[test]
    fn triangle_spread_matches_closed_form() {
        let pairs = [(0, 1), (0, 2), (1, 2)];
        assert_eq!(components(3, &pairs), [ComponentKind::OddCycle]);
        let (r, _, converged) = newton(3, &pairs, 0.1, 100);
        assert!(converged);
        let s = bisect(|s| sigmoid(-s) + sigmoid(-2.0 * s) - 0.2 * s);
        assert!((r[0] - r[2] - 2.0 * s).abs() < 1e-9 && r[1].abs() < 1e-9, "{r:?} vs s = {s}");
        assert!((2.0 * s - 2.70).abs() < 5e-3, "{}", 2.0 * s);
    }

    /// One pair: no minimizer. Newton's step along r_a − r_b tends to 1/σ(d) → 1, so the spread
    /// grows by about one per step for ever while the pair sum stays 0.
    #[test]
    fn one_pair_spread_grows_without_bound() {
        let pairs = [(0, 1)];
        assert_eq!(components(2, &pairs), [ComponentKind::OneSided]);
        let (r, spreads, converged) = newton(2, &pairs, 0.1, 25);
        assert!(!converged && spreads.windows(2).all(|w| w[1] > w[0]), "spread increases at every step");
        assert!(spreads[24] > 20.0 && (spreads[24] - spreads[23] - 1.0).abs() < 1e-3, "{spreads:?}");
        assert!((r[0] + r[1]).abs() < 1e-9);
    }

    /// Stars of one centre (response 0) and three leaves: one-sided when the centre beats (or
    /// loses to) every leaf, bounded when it ranks in the middle.
    #[test]
    fn star_depends_on_the_rank_of_its_centre() {
        let best = [(0, 1), (0, 2), (0, 3)];
        let middle = [(1, 0), (0, 2), (0, 3)];
        assert_eq!(components(4, &best), [ComponentKind::OneSided]);
        assert_eq!(components(4, &middle), [ComponentKind::TwoSided]);
        assert!(newton(4, &middle, 0.1, 100).2);
        let (_, spreads, converged) = newton(4, &best, 0.1, 25);
        assert!(!converged && spreads[24] > 20.0, "{spreads:?}");
    }

    /// A pair labelled both ways (a contradiction) has winners on both sides: bounded, its
    /// minimizer r = 0 (each Bradley–Terry term is the other's mirror image).
    #[test]
    fn contradicted_pair_is_bounded() {
        let pairs = [(0, 1), (1, 0)];
        assert_eq!(components(2, &pairs), [ComponentKind::TwoSided]);
        let (r, _, converged) = newton(2, &pairs, 0.1, 100);
        assert!(converged && r.iter().all(|v| v.abs() < 1e-9), "{r:?}");
    }

    /// The theory against Newton on random labelled graphs of 2 to 6 responses (several
    /// components, even cycles, isolated responses, contradicted pairs): bounded exactly when Newton converges
    /// to a finite minimizer.
    #[test]
    fn theory_matches_newton_on_random_graphs() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let n = rng.random_range(2..7usize);
            let mut pairs = Vec::new();
            for i in 0..n {
                for j in i + 1..n {
                    if rng.random::<f64>() < 0.45 {
                        let pair = if rng.random::<bool>() { (i, j) } else { (j, i) };
                        pairs.push(pair);
                        // Now and then the same pair labelled the other way too.
                        if rng.random::<f64>() < 0.1 {
                            pairs.push((pair.1, pair.0));
                        }
                    }
                }
            }
            if pairs.is_empty() {
                continue;
            }
            let kinds = components(n, &pairs);
            seen.extend(kinds.iter().copied());
            let (_, spreads, converged) = newton(n, &pairs, 0.1, 25);
            let finite = converged && spreads.last().is_some_and(|&s| s < 15.0);
            assert_eq!(spread_bounded(n, &pairs), finite, "{pairs:?}: {kinds:?}, spreads {spreads:?}");
        }
        assert_eq!(seen.len(), 3, "every kind of component met: {seen:?}");
    }

    /// The synthetic designs on noise-free labels: one random pair is always one-sided, a ranked
    /// path and three all-pairs always bounded, and the k = 3 `bipartite` star (response 2 against
    /// responses 0 and 1) bounded exactly when its centre ranks in the middle.
    #[test]
    fn synthetic_graphs_on_separable_labels() {
        let base = DataConfig {
            n_prompts: 300,
            responses_per_prompt: 3,
            pairs_per_prompt: 1,
            feature_dim: 4,
            beta: f64::INFINITY,
            ..DataConfig::default()
        };
        let by_prompt = |graph: Graph| -> Vec<(bool, Vec<f64>)> {
            let p = super::super::synthetic::generate(&DataConfig { graph, ..base.clone() }.resolved(), 5);
            let t = p.true_reward.unwrap();
            (0..300)
                .map(|x| {
                    let local: Vec<(usize, usize)> = p
                        .pairs
                        .iter()
                        .filter(|q| p.prompt_of[q.chosen] == x)
                        .map(|q| (q.chosen - 3 * x, q.rejected - 3 * x))
                        .collect();
                    (spread_bounded(3, &local), t[3 * x..3 * x + 3].to_vec())
                })
                .collect()
        };
        assert!(by_prompt(Graph::Random).iter().all(|p| !p.0));
        assert!(by_prompt(Graph::RankedPath).iter().all(|p| p.0));
        assert!(by_prompt(Graph::AllPairs).iter().all(|p| p.0));
        let star = by_prompt(Graph::Bipartite);
        for (bounded, t) in &star {
            let middle = (t[2] - t[0]) * (t[2] - t[1]) < 0.0;
            assert_eq!(*bounded, middle, "{t:?}");
        }
        let share = star.iter().filter(|p| p.0).count() as f64 / 300.0;
        assert!((share - 1.0 / 3.0).abs() < 0.1, "about a third of the stars are bounded: {share}");
    }
}
