//! Synthetic Bradley–Terry preferences with a known true reward.
//!
//! For each prompt x, k responses y with features φ(x, y) ~ N(0, I_D) and true reward
//! `r*(x, y) = w·φ(x, y) + g(x)`, where w is a random unit vector and the per-prompt offset
//! g(x) ~ N(0, offset_scale²). `pairs_per_prompt` distinct pairs of each prompt's responses
//! are compared; the label says a ≻ b with probability σ(β (r*_a − r*_b)) (β = ∞: the better
//! one wins, ties by a fair coin) and is then flipped with probability ε.
//!
//! g(x) cancels in every comparison, so no preference data can identify it: it is the
//! underdetermined part of r* that the regularizer acts on. [`generate_with_offsets`] also
//! returns g, for the identifiable ceilings of the truth metrics (`eval::truth`).
//!
//! Every random draw comes from one ChaCha8 stream seeded with the run's seed, in a fixed
//! order, so the data are identical on every platform and every run.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::split::{partial_shuffle, split_prompts};
use super::{Pair, Preferences};
use crate::experiment::config::{DataConfig, Graph, PromptFeatures};

/// Generates the data set of a validated [`DataConfig`] from `seed`.
pub fn generate(cfg: &DataConfig, seed: u64) -> Preferences {
    generate_with_offsets(cfg, seed).0
}

/// [`generate`], and the per-prompt offset g(x) of every prompt, `[n_prompts]`: the part of
/// r* that no comparison sees. Same draws, same data.
pub fn generate_with_offsets(cfg: &DataConfig, seed: u64) -> (Preferences, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (n, k, d) = (cfg.n_prompts, cfg.responses_per_prompt, cfg.feature_dim);

    let mut w: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
    let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
    w.iter_mut().for_each(|v| *v /= norm);

    // Nuisance features come from their own stream, so that adding them leaves every other draw
    // (and so the rest of the data) unchanged.
    let mut nuisance_rng = ChaCha8Rng::seed_from_u64(seed);
    nuisance_rng.set_stream(NUISANCE_STREAM);
    let dim = cfg.input_dim();
    let mut features = Vec::with_capacity(n * k * dim);
    let mut true_reward = Vec::with_capacity(n * k);
    let mut prompt_of = Vec::with_capacity(n * k);
    let mut offsets = Vec::with_capacity(n);
    for x in 0..n {
        let g: f64 = cfg.offset_scale * rng.sample::<f64, _>(StandardNormal);
        offsets.push(g);
        let nuisance: Vec<f64> = (0..cfg.nuisance_dim).map(|_| nuisance_rng.sample(StandardNormal)).collect();
        for _ in 0..k {
            let phi: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
            true_reward.push(dot(&w, &phi) + g);
            features.extend(phi.iter().map(|&v| v as f32));
            features.extend(nuisance.iter().map(|&v| v as f32));
            if cfg.prompt_features == PromptFeatures::Onehot {
                features.extend((0..n).map(|p| if p == x { 1.0f32 } else { 0.0 }));
            }
            prompt_of.push(x);
        }
    }

    let all_pairs: Vec<(usize, usize)> = (0..k).flat_map(|i| (i + 1..k).map(move |j| (i, j))).collect();
    let design = cfg.graph.pairs(k);
    let mut pairs = Vec::with_capacity(n * cfg.pairs_per_prompt);
    for x in 0..n {
        let chosen_pairs: Vec<(usize, usize)> = match cfg.graph {
            Graph::Random => {
                let mut order = all_pairs.clone();
                partial_shuffle(&mut order, cfg.pairs_per_prompt, &mut rng);
                order.truncate(cfg.pairs_per_prompt);
                order
            }
            // Design positions are ranks by true reward (ties by index): the path joins
            // neighbours in that order.
            Graph::RankedPath => {
                let mut order: Vec<usize> = (0..k).collect();
                order.sort_by(|&i, &j| true_reward[x * k + i].total_cmp(&true_reward[x * k + j]));
                design.iter().map(|&(i, j)| (order[i], order[j])).collect()
            }
            _ => design.clone(),
        };
        for &(i, j) in &chosen_pairs {
            let (a, b) = (x * k + i, x * k + j);
            let margin = true_reward[a] - true_reward[b];
            let mut a_wins = if cfg.beta.is_infinite() {
                if margin == 0.0 { rng.random::<bool>() } else { margin > 0.0 }
            } else {
                rng.random::<f64>() < sigmoid(cfg.beta * margin)
            };
            if cfg.flip > 0.0 && rng.random::<f64>() < cfg.flip {
                a_wins = !a_wins;
            }
            let (chosen, rejected) = if a_wins { (a, b) } else { (b, a) };
            pairs.push(Pair { chosen, rejected });
        }
    }

    let prefs = Preferences {
        dim,
        features,
        prompt_of,
        true_reward: Some(true_reward),
        split_of_prompt: split_prompts(n, cfg.val_frac, cfg.test_frac, &mut rng),
        beta: Some(cfg.beta),
        flip: cfg.flip,
        bags: None,
        texts: None,
        margins: None,
        pair_kind: None,
        pairs,
    };
    (prefs, offsets)
}

/// ChaCha8 stream of the nuisance features (stream 0 draws everything else).
const NUISANCE_STREAM: u64 = 3;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;

    fn cfg() -> DataConfig {
        DataConfig { n_prompts: 50, responses_per_prompt: 4, pairs_per_prompt: 3, ..DataConfig::default() }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = generate(&cfg(), 7);
        assert_eq!(a, generate(&cfg(), 7));
        assert_ne!(a.features, generate(&cfg(), 8).features);
    }

    /// A fingerprint of the first draws, so a change of RNG, distribution or draw order (which
    /// would silently change every result) fails here and forces a FORMAT_VERSION bump.
    #[test]
    fn stream_is_pinned() {
        let p = generate(&cfg(), 0);
        let head: Vec<f32> = p.features[..3].to_vec();
        let r0 = p.true_reward.as_ref().unwrap()[0];
        let expected_head = [FIRST_FEATURES[0], FIRST_FEATURES[1], FIRST_FEATURES[2]];
        assert_eq!(head, expected_head, "features changed: bump FORMAT_VERSION and re-pin");
        assert!((r0 - FIRST_TRUE_REWARD).abs() < 1e-12, "true reward changed: {r0}");
    }
    const FIRST_FEATURES: [f32; 3] = [-0.245_789_81, 0.244_887_17, 1.949_940_2];
    const FIRST_TRUE_REWARD: f64 = -0.163_442_054_635_050_13;

    #[test]
    fn shapes_and_structure() {
        let c = cfg();
        let p = generate(&c, 1);
        assert_eq!(p.n_responses(), 200);
        assert_eq!(p.features.len(), 200 * 16);
        assert_eq!(p.pairs.len(), 150);
        // Pairs join two distinct responses of the same prompt, with no pair repeated.
        let mut seen = std::collections::HashSet::new();
        for q in &p.pairs {
            assert_ne!(q.chosen, q.rejected);
            assert_eq!(p.prompt_of[q.chosen], p.prompt_of[q.rejected]);
            assert!(seen.insert((q.chosen.min(q.rejected), q.chosen.max(q.rejected))));
        }
        let n_val = p.split_of_prompt.iter().filter(|&&s| s == Split::Val).count();
        assert_eq!(n_val, 10);
        assert_eq!(p.n_pairs(Split::Train) + p.n_pairs(Split::Val), 150);
    }

    #[test]
    fn noise_free_labels_follow_the_truth() {
        let c = DataConfig { beta: f64::INFINITY, ..cfg() };
        let p = generate(&c, 3);
        let r = p.true_reward.as_ref().unwrap();
        assert!(p.pairs.iter().all(|q| r[q.chosen] >= r[q.rejected]));
    }

    #[test]
    fn label_rates_match_bradley_terry_and_flip() {
        // With β = 1 and flips at 0.2, P(chosen is truly better) has a closed form per pair;
        // the observed rate over many pairs must match its mean.
        let c = DataConfig { n_prompts: 4000, beta: 1.0, flip: 0.2, offset_scale: 0.0, ..cfg() };
        let p = generate(&c, 11);
        let r = p.true_reward.as_ref().unwrap();
        let (mut expected, mut observed) = (0.0, 0.0);
        for q in &p.pairs {
            let (hi, lo) =
                if r[q.chosen] >= r[q.rejected] { (q.chosen, q.rejected) } else { (q.rejected, q.chosen) };
            let p_better = sigmoid(r[hi] - r[lo]);
            expected += p_better * 0.8 + (1.0 - p_better) * 0.2;
            observed += if hi == q.chosen { 1.0 } else { 0.0 };
        }
        let m = p.pairs.len() as f64;
        // 12000 Bernoulli draws: sd of the rate ≤ 0.005; allow 4 sd.
        assert!((observed / m - expected / m).abs() < 0.02, "{} vs {}", observed / m, expected / m);
    }

    #[test]
    fn offsets_shift_every_response_of_a_prompt() {
        let with = generate(&DataConfig { offset_scale: 3.0, ..cfg() }, 5);
        let without = generate(&DataConfig { offset_scale: 0.0, ..cfg() }, 5);
        let (a, b) = (with.true_reward.unwrap(), without.true_reward.unwrap());
        // Same draws, so the difference within a prompt is the same constant g(x).
        for x in 0..50 {
            let g0 = a[x * 4] - b[x * 4];
            for y in 1..4 {
                assert!((a[x * 4 + y] - b[x * 4 + y] - g0).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn graph_designs() {
        assert_eq!(Graph::AllPairs.pairs(3), [(0, 1), (0, 2), (1, 2)]);
        assert_eq!(Graph::Bipartite.pairs(4), [(0, 2), (0, 3), (1, 2), (1, 3)]);
        assert_eq!(Graph::Clusters.pairs(4), [(0, 1), (2, 3)]);
        assert_eq!(Graph::Clusters.pairs(5), [(0, 1), (0, 2), (1, 2), (3, 4)]);
        let c = DataConfig { graph: Graph::Bipartite, ..cfg() }.resolved();
        assert_eq!(c.pairs_per_prompt, 4);
        let p = generate(&c, 2);
        assert_eq!(p.pairs.len(), 50 * 4);
        for q in &p.pairs {
            let (a, b) = (q.chosen % 4, q.rejected % 4);
            assert!((a < 2) != (b < 2), "a bipartite pair joins the two groups");
        }
    }

    /// The offsets returned are exactly the part of r* that offset_scale scales: r* − g(x) is
    /// the true reward of the same seed drawn with offset_scale = 0.
    #[test]
    fn returned_offsets_are_g() {
        let (with, g) = generate_with_offsets(&DataConfig { offset_scale: 3.0, ..cfg() }, 5);
        let without = generate(&DataConfig { offset_scale: 0.0, ..cfg() }, 5);
        assert_eq!(g.len(), 50);
        let (a, b) = (with.true_reward.unwrap(), without.true_reward.unwrap());
        for i in 0..a.len() {
            assert!((a[i] - g[with.prompt_of[i]] - b[i]).abs() < 1e-12);
        }
        assert_eq!(with.pairs, generate(&DataConfig { offset_scale: 3.0, ..cfg() }, 5).pairs);
    }

    /// A ranked path joins each response to its neighbours in order of true reward.
    #[test]
    fn ranked_path_joins_neighbours_by_true_reward() {
        let c = DataConfig { graph: Graph::RankedPath, beta: f64::INFINITY, ..cfg() }.resolved();
        assert_eq!(c.pairs_per_prompt, 3);
        let p = generate(&c, 9);
        let t = p.true_reward.as_ref().unwrap();
        for x in 0..50 {
            let mut order: Vec<usize> = (4 * x..4 * x + 4).collect();
            order.sort_by(|&i, &j| t[i].total_cmp(&t[j]));
            let mut expected: Vec<(usize, usize)> = order.windows(2).map(|w| (w[1], w[0])).collect();
            let mut got: Vec<(usize, usize)> = p
                .pairs
                .iter()
                .filter(|q| p.prompt_of[q.chosen] == x)
                .map(|q| (q.chosen, q.rejected))
                .collect();
            expected.sort();
            got.sort();
            assert_eq!(got, expected, "prompt {x}: the better neighbour wins each pair");
        }
    }

    #[test]
    fn prompt_and_nuisance_features_extend_the_input() {
        let c = DataConfig { prompt_features: PromptFeatures::Onehot, nuisance_dim: 3, ..cfg() };
        let p = generate(&c, 4);
        assert_eq!(p.dim, 16 + 3 + 50);
        let base = generate(&cfg(), 4);
        // The response features and labels are those of the plain config.
        assert_eq!(p.pairs, base.pairs);
        for r in 0..p.n_responses() {
            let row = &p.features[r * p.dim..(r + 1) * p.dim];
            assert_eq!(&row[..16], &base.features[r * 16..(r + 1) * 16]);
            let x = p.prompt_of[r];
            assert_eq!(row[16 + 3 + x], 1.0);
            assert_eq!(row[16 + 3..].iter().sum::<f32>(), 1.0);
            // Nuisance features are shared by a prompt's responses.
            let first = &p.features[(x * 4) * p.dim + 16..(x * 4) * p.dim + 19];
            assert_eq!(&row[16..19], first);
        }
    }
}
