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
