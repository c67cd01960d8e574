//! Agreement with the true reward, where it is known (synthetic data): rank and prompt-centred
//! correlations, within-prompt ranking, per-prompt offset error, calibration against the true
//! preference probability, and the offset and spread parts of each pair's rewards.

use super::stats::{pearson_host, population_std, ranks};
use crate::experiment::metric::TRUTH_NAMES;

/// What the truth metrics need to know about a split, on the host.
#[derive(Clone, Debug)]
pub struct HostSplit<'a> {
    /// Responses of the split.
    pub responses: &'a [usize],
    /// (chosen, rejected) response indices of its labelled pairs.
    pub pairs: &'a [(usize, usize)],
    /// Prompt of every response (all splits).
    pub prompt_of: &'a [usize],
    /// True reward of every response (all splits).
    pub true_reward: &'a [f64],
    /// Bradley–Terry β of the data (∞: noise-free), for the true P(a ≻ b).
    pub beta: f64,
    /// Label flip probability ε: the true P(a ≻ b) is ε + (1 − 2ε) σ(β Δr*).
    pub flip: f64,
}

/// Truth metrics of one split from the rewards `r` of all responses (host, f64), in
/// [`TRUTH_NAMES`] order; NaN where undefined. Everything is recomputed on each call: the
/// plain definition, which evaluations use through [`TruthIndex`] (tested equal).
pub fn truth_metrics(r: &[f64], s: &HostSplit) -> Vec<(&'static str, f64)> {
    let rs: Vec<f64> = s.responses.iter().map(|&i| r[i]).collect();
    let ts: Vec<f64> = s.responses.iter().map(|&i| s.true_reward[i]).collect();
    let spearman = pearson_host(&ranks(&rs), &ranks(&ts));

    // Responses grouped by prompt (responses of a prompt are contiguous in every generator, but
    // grouping does not rely on it).
    let mut by_prompt: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for &i in s.responses {
        by_prompt.entry(s.prompt_of[i]).or_default().push(i);
    }
    let (mut agree, mut total) = (0usize, 0usize);
    let mut offsets = Vec::with_capacity(by_prompt.len());
    for members in by_prompt.values() {
        for (a, &i) in members.iter().enumerate() {
            for &j in &members[a + 1..] {
                let dt = s.true_reward[i] - s.true_reward[j];
                if dt != 0.0 {
                    total += 1;
                    agree += usize::from((r[i] - r[j]) * dt > 0.0);
                }
            }
        }
        let k = members.len() as f64;
        offsets.push(members.iter().map(|&i| r[i] - s.true_reward[i]).sum::<f64>() / k);
    }
    let within = if total == 0 { f64::NAN } else { agree as f64 / total as f64 };
    let (mut rc, mut tc) = (Vec::with_capacity(rs.len()), Vec::with_capacity(rs.len()));
    for members in by_prompt.values() {
        let k = members.len() as f64;
        let (mr, mt) = (
            members.iter().map(|&i| r[i]).sum::<f64>() / k,
            members.iter().map(|&i| s.true_reward[i]).sum::<f64>() / k,
        );
        for &i in members {
            rc.push(r[i] - mr);
            tc.push(s.true_reward[i] - mt);
        }
    }
    let pearson_within = pearson_host(&rc, &tc);
    let offset_error = population_std(&offsets);

    let t = s.true_reward;
    let pairs = s.pairs.iter().map(|&(a, b)| (r[a], r[b], true_preference(t[a] - t[b], s.beta, s.flip)));
    let [ece, off, spread] = pair_calibration(pairs, s.pairs.len());
    let v = [spearman, pearson_within, within, offset_error, ece, off, spread];
    TRUTH_NAMES.iter().copied().zip(v).collect()
}

/// [`truth_metrics`] of one split with everything that does not depend on the rewards
/// computed once: prompt groups, ranks and centred values of the true reward, the
/// within-prompt pairs the truth orders, and each labelled pair's true P(a ≻ b). Evaluations
/// then cost one sort and a few passes. Same arithmetic, same values as [`truth_metrics`].
#[derive(Clone, Debug)]
pub struct TruthIndex {
    responses: Vec<usize>,
    true_ranks: Vec<f64>,
    /// Responses grouped by prompt (prompts in increasing order).
    groups: Vec<Vec<usize>>,
    /// Each group's Σ r* (for the offsets), then its r* values centred (group order).
    true_sums: Vec<f64>,
    true_centred: Vec<f64>,
    /// (i, j, r*_i − r*_j) for response pairs within a prompt that the truth orders.
    within: Vec<(usize, usize, f64)>,
    /// (chosen, rejected, true P(chosen ≻ rejected)) of the labelled pairs.
    pairs: Vec<(usize, usize, f64)>,
}

impl TruthIndex {
    pub fn new(s: &HostSplit) -> TruthIndex {
        let t = s.true_reward;
        let ts: Vec<f64> = s.responses.iter().map(|&i| t[i]).collect();
        let mut by_prompt: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for &i in s.responses {
            by_prompt.entry(s.prompt_of[i]).or_default().push(i);
        }
        let groups: Vec<Vec<usize>> = by_prompt.into_values().collect();
        let mut within = Vec::new();
        let (mut true_sums, mut true_centred) = (Vec::new(), Vec::with_capacity(ts.len()));
        for members in &groups {
            for (a, &i) in members.iter().enumerate() {
                for &j in &members[a + 1..] {
                    let dt = t[i] - t[j];
                    if dt != 0.0 {
                        within.push((i, j, dt));
                    }
                }
            }
            true_sums.push(members.iter().map(|&i| t[i]).sum::<f64>());
            let mt = members.iter().map(|&i| t[i]).sum::<f64>() / members.len() as f64;
            true_centred.extend(members.iter().map(|&i| t[i] - mt));
        }
        let pairs =
            s.pairs.iter().map(|&(a, b)| (a, b, true_preference(t[a] - t[b], s.beta, s.flip))).collect();
        TruthIndex {
            responses: s.responses.to_vec(),
            true_ranks: ranks(&ts),
            groups,
            true_sums,
            true_centred,
            within,
            pairs,
        }
    }

    /// The truth metrics of rewards `r` of all responses, in [`TRUTH_NAMES`] order.
    pub fn metrics(&self, r: &[f64]) -> Vec<(&'static str, f64)> {
        let rs: Vec<f64> = self.responses.iter().map(|&i| r[i]).collect();
        let spearman = pearson_host(&ranks(&rs), &self.true_ranks);
        let agree = self.within.iter().filter(|&&(i, j, dt)| (r[i] - r[j]) * dt > 0.0).count();
        let within = if self.within.is_empty() { f64::NAN } else { agree as f64 / self.within.len() as f64 };
        let mut offsets = Vec::with_capacity(self.groups.len());
        let mut rc = Vec::with_capacity(rs.len());
        for (members, &t_sum) in self.groups.iter().zip(&self.true_sums) {
            let k = members.len() as f64;
            let r_sum = members.iter().map(|&i| r[i]).sum::<f64>();
            offsets.push((r_sum - t_sum) / k);
            rc.extend(members.iter().map(|&i| r[i] - r_sum / k));
        }
        let pearson_within = pearson_host(&rc, &self.true_centred);
        let pairs = self.pairs.iter().map(|&(a, b, p_true)| (r[a], r[b], p_true));
        let [ece, off, spread] = pair_calibration(pairs, self.pairs.len());
        let v = [spearman, pearson_within, within, population_std(&offsets), ece, off, spread];
        TRUTH_NAMES.iter().copied().zip(v).collect()
    }
}

/// The identifiable ceiling of the agreement metrics on one split: their values for
/// r° = r* − g(x), the true reward without its per-prompt offset `offsets[prompt]` = g(x),
/// which cancels in every comparison. It is what a model that recovers everything the
/// comparisons identify scores when its offsets carry no knowledge of g (the best such model
/// for the across-prompt correlations; see the README's ceilings table).
///
/// Returns `(name, value)` for `true_pearson`, `true_pair_accuracy`, `true_spearman`,
/// `true_pearson_within`, `true_within_prompt_accuracy` and `offset_error` (for which it is a
/// floor: the population sd over the split's prompts of g(x)). Within-prompt metrics see no
/// offset, so their ceiling is 1. `ece`, `offset_part_abs_mean` and `spread_part_abs_mean`
/// have none: they depend on the reward's scale, which separable data leave free.
pub fn identifiable_ceilings(s: &HostSplit, offsets: &[f64]) -> Vec<(&'static str, f64)> {
    let t = s.true_reward;
    let r: Vec<f64> = t.iter().zip(s.prompt_of).map(|(t, &x)| t - offsets[x]).collect();
    let rs: Vec<f64> = s.responses.iter().map(|&i| r[i]).collect();
    let ts: Vec<f64> = s.responses.iter().map(|&i| t[i]).collect();
    let agree = s.pairs.iter().filter(|&&(a, b)| (r[a] - r[b]) * (t[a] - t[b]) > 0.0).count();
    let pair_accuracy = if s.pairs.is_empty() { f64::NAN } else { agree as f64 / s.pairs.len() as f64 };
    let mut out = vec![("true_pearson", pearson_host(&rs, &ts)), ("true_pair_accuracy", pair_accuracy)];
    out.extend(truth_metrics(&r, s).into_iter().filter(|(n, _)| CEILING_NAMES[2..].contains(n)));
    out
}

/// The metrics [`identifiable_ceilings`] returns, in its order.
pub const CEILING_NAMES: [&str; 6] = [
    "true_pearson",
    "true_pair_accuracy",
    "true_spearman",
    "true_pearson_within",
    "true_within_prompt_accuracy",
    "offset_error",
];

/// The true P(a ≻ b) given r*_a − r*_b: ε + (1 − 2ε) σ(β Δr*), a step at β = ∞.
fn true_preference(dt: f64, beta: f64, flip: f64) -> f64 {
    let p_bt = if beta.is_infinite() {
        if dt > 0.0 {
            1.0
        } else if dt < 0.0 {
            0.0
        } else {
            0.5
        }
    } else {
        1.0 / (1.0 + (-beta * dt).exp())
    };
    flip + (1.0 - 2.0 * flip) * p_bt
}

/// ECE of σ(r_a − r_b) against the true P(a ≻ b) in 10 bins, mean |(r_a + r_b)/2| and mean
/// |(r_a − r_b)/2| over `n` pairs given as (r_a, r_b, true P).
fn pair_calibration(pairs: impl Iterator<Item = (f64, f64, f64)>, n: usize) -> [f64; 3] {
    let mut bins = [(0usize, 0.0f64, 0.0f64); 10];
    let (mut off, mut spread) = (0.0, 0.0);
    for (ra, rb, p_true) in pairs {
        let p = 1.0 / (1.0 + (-(ra - rb)).exp());
        let bin = ((p * 10.0) as usize).min(9);
        bins[bin].0 += 1;
        bins[bin].1 += p;
        bins[bin].2 += p_true;
        off += ((ra + rb) / 2.0).abs();
        spread += ((ra - rb) / 2.0).abs();
    }
    let nf = n as f64;
    let ece =
        if n == 0 { f64::NAN } else { bins.iter().filter(|b| b.0 > 0).map(|b| (b.1 - b.2).abs() / nf).sum() };
    [ece, off / nf, spread / nf]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The precomputed index gives the plain [`truth_metrics`] values on random data with
    /// ties, several prompts, finite β and flips.
    #[test]
    fn truth_index_matches_truth_metrics() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 60;
        let prompt_of: Vec<usize> = (0..n).map(|i| i / 4).collect();
        let t: Vec<f64> = (0..n).map(|_| (rng.random_range(0..5) as f64) / 2.0).collect();
        let responses: Vec<usize> = (8..52).collect();
        let pairs: Vec<(usize, usize)> =
            (2..13).map(|p| (4 * p, 4 * p + 1 + rng.random_range(0..3))).collect();
        for (beta, flip) in [(f64::INFINITY, 0.0), (2.0, 0.1)] {
            let s = HostSplit {
                responses: &responses,
                pairs: &pairs,
                prompt_of: &prompt_of,
                true_reward: &t,
                beta,
                flip,
            };
            let index = TruthIndex::new(&s);
            for _ in 0..3 {
                let r: Vec<f64> = (0..n).map(|_| (rng.random_range(0..7) as f64) - 3.0).collect();
                let (fast, slow) = (index.metrics(&r), truth_metrics(&r, &s));
                for ((name, a), (_, b)) in fast.iter().zip(&slow) {
                    assert!((a - b).abs() < 1e-12 || (a.is_nan() && b.is_nan()), "{name}: {a} vs {b}");
                }
            }
        }
    }

    /// The ceilings on a hand-worked case. Two prompts, r* = [1, 0, −1 | 2, 0], g = [0.5, −1],
    /// so r° = [0.5, −0.5, −1.5 | 3, 1]; pairs (0, 1), (2, 1), (3, 4).
    #[test]
    fn identifiable_ceilings_by_hand() {
        let t = [1.0, 0.0, -1.0, 2.0, 0.0];
        let s = HostSplit {
            responses: &[0, 1, 2, 3, 4],
            pairs: &[(0, 1), (2, 1), (3, 4)],
            prompt_of: &[0, 0, 0, 1, 1],
            true_reward: &t,
            beta: f64::INFINITY,
            flip: 0.0,
        };
        let ceilings = identifiable_ceilings(&s, &[0.5, -1.0]);
        assert_eq!(ceilings.iter().map(|c| c.0).collect::<Vec<_>>(), CEILING_NAMES);
        let m: std::collections::HashMap<&str, f64> = ceilings.into_iter().collect();
        let r0 = [0.5, -0.5, -1.5, 3.0, 1.0];
        assert!((m["true_pearson"] - crate::testing::pearson_slow(&r0, &t)).abs() < 1e-12);
        // Every pair keeps its true order (the label of (2, 1) is wrong, the truth is not).
        assert_eq!(m["true_pair_accuracy"], 1.0);
        assert_eq!(m["true_within_prompt_accuracy"], 1.0);
        assert!((m["true_pearson_within"] - 1.0).abs() < 1e-12);
        // Ranks of r° [3, 2, 1, 5, 4] against those of r* [4, 2.5, 1, 5, 2.5].
        let spearman = crate::testing::pearson_slow(&[3.0, 2.0, 1.0, 5.0, 4.0], &[4.0, 2.5, 1.0, 5.0, 2.5]);
        assert!((m["true_spearman"] - spearman).abs() < 1e-12);
        // Offsets mean r° − mean r* = −g = [−0.5, 1]: population sd 0.75.
        assert!((m["offset_error"] - 0.75).abs() < 1e-12);
    }

    /// With r* = w·φ + g(x), w a unit vector, φ ~ N(0, I) and g ~ N(0, 1) (lambda.toml's data),
    /// corr(r*, r* − g) = 1/√2: the Pearson ceiling on 8 000 responses is within 0.02 of it.
    #[test]
    fn pearson_ceiling_is_one_over_root_two_for_unit_offsets() {
        let cfg = crate::experiment::config::DataConfig {
            n_prompts: 2000,
            responses_per_prompt: 4,
            feature_dim: 16,
            offset_scale: 1.0,
            ..Default::default()
        };
        let (p, g) = crate::data::synthetic::generate_with_offsets(&cfg, 3);
        let responses: Vec<usize> = (0..p.n_responses()).collect();
        let pairs: Vec<(usize, usize)> = p.pairs.iter().map(|q| (q.chosen, q.rejected)).collect();
        let s = HostSplit {
            responses: &responses,
            pairs: &pairs,
            prompt_of: &p.prompt_of,
            true_reward: p.true_reward.as_ref().unwrap(),
            beta: cfg.beta,
            flip: 0.0,
        };
        let m: std::collections::HashMap<&str, f64> = identifiable_ceilings(&s, &g).into_iter().collect();
        assert!((m["true_pearson"] - 0.5f64.sqrt()).abs() < 0.02, "{}", m["true_pearson"]);
        assert!((m["offset_error"] - 1.0).abs() < 0.05, "{}", m["offset_error"]);
    }

    /// Every truth metric on a tiny hand-worked case.
    ///
    /// Two prompts, responses 0–2 (prompt 0) and 3–4 (prompt 1); r* = [1, 0, −1, 2, 0],
    /// r = [3, 1, 2, 0, 0]; pairs (0, 1) and (3, 4); β = ∞.
    #[test]
    fn truth_metrics_by_hand() {
        let r = [3.0, 1.0, 2.0, 0.0, 0.0];
        let t = [1.0, 0.0, -1.0, 2.0, 0.0];
        let s = HostSplit {
            responses: &[0, 1, 2, 3, 4],
            pairs: &[(0, 1), (3, 4)],
            prompt_of: &[0, 0, 0, 1, 1],
            true_reward: &t,
            beta: f64::INFINITY,
            flip: 0.0,
        };
        let m: std::collections::HashMap<&str, f64> = truth_metrics(&r, &s).into_iter().collect();
        // Within prompts: (0,1) agree, (0,2) agree, (1,2) disagree, (3,4) r tie → disagree: 2/4.
        assert_eq!(m["true_within_prompt_accuracy"], 0.5);
        // Offsets: prompt 0 mean r − mean r* = 2 − 0 = 2; prompt 1: 0 − 1 = −1; population sd 1.5.
        assert!((m["offset_error"] - 1.5).abs() < 1e-12);
        // Pairs: p = σ(2) = 0.8808 (true 1) in bin 8; σ(0) = 0.5 (true 1) in bin 5.
        let ece = ((0.880_797_077_977_882_3f64 - 1.0).abs() + (0.5f64 - 1.0).abs()) / 2.0;
        assert!((m["ece"] - ece).abs() < 1e-12);
        assert!((m["offset_part_abs_mean"] - (2.0 + 0.0) / 2.0).abs() < 1e-12);
        assert!((m["spread_part_abs_mean"] - (1.0 + 0.0) / 2.0).abs() < 1e-12);
        // Spearman: ranks r [5, 3, 4, 1.5, 1.5], r* [4, 2.5, 1, 5, 2.5].
        let expected = pearson_host(&[5.0, 3.0, 4.0, 1.5, 1.5], &[4.0, 2.5, 1.0, 5.0, 2.5]);
        assert!((m["true_spearman"] - expected).abs() < 1e-12);
        // Centred within prompts: r → [1, −1, 0, 0, 0], r* → [1, 0, −1, 1, −1].
        let expected = pearson_host(&[1.0, -1.0, 0.0, 0.0, 0.0], &[1.0, 0.0, -1.0, 1.0, -1.0]);
        assert!((m["true_pearson_within"] - expected).abs() < 1e-12);
    }
}
