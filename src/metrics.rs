//! Evaluation statistics of one split: loss terms, accuracy, reward magnitudes, agreement
//! with the true reward.
//!
//! Everything is computed on the host in float64 from one transfer of the rewards.

use crate::data::SplitTensors;
use crate::loss::{Objective, Regularizer};

/// Metric names, in the order [`split_metrics`] returns them. Pair statistics are means over
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
/// [`truth_metrics`] returns them.
pub const TRUTH_NAMES: [&str; 7] = [
    "true_spearman",               // Spearman rank correlation of r with r* over responses
    "true_pearson_within",         // Pearson of r with r* after removing each prompt's mean from both
    "true_within_prompt_accuracy", // all response pairs within a prompt: sign(r_i − r_j) = sign(r*_i − r*_j)
    "offset_error",                // std over prompts of (mean_y r − mean_y r*)
    "ece", // calibration of σ(r_a − r_b) against the true P(a ≻ b) (flips included), 10 bins
    "offset_part_abs_mean", // mean |(r_a + r_b) / 2| over pairs: the part λ pins
    "spread_part_abs_mean", // mean |(r_a − r_b) / 2| over pairs: the part BT sees
];

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

/// Ranks 1..n with ties given their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    // Unstable: equal values share their average rank whatever their order.
    order.sort_unstable_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut out = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = avg;
        }
        i = j + 1;
    }
    out
}

fn pearson_host(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

fn population_std(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    let m = x.iter().sum::<f64>() / x.len() as f64;
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Metrics of the model rather than of a split, recorded with the train split.
pub const MODEL_NAMES: [&str; 1] = ["head_weight_norm"];

/// Every metric name an evaluation can record.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    NAMES.iter().chain(TRUTH_NAMES.iter()).chain(MODEL_NAMES.iter()).copied()
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
        | "true_pearson"
        | "true_pair_accuracy"
        | "true_spearman"
        | "true_pearson_within"
        | "true_within_prompt_accuracy" => Some(Goal::Max),
        "offset_error" | "ece" => Some(Goal::Min),
        _ => None,
    }
}

/// Metrics of one split, `(name, value)` in [`NAMES`] order; the true-reward metrics are left
/// out when `true_reward` is `None`.
///
/// `r`: rewards of all R responses (host, f64); `true_reward`: true rewards of all R. The
/// split's host indices select its pairs and responses. Computed on the host in f64: one
/// transfer of R rewards per evaluation, then a few passes over P pairs and R_s responses,
/// cheaper at every size this harness meets than ~40 small device kernels. Values are NaN
/// where undefined (a constant reward has no correlation).
pub fn split_metrics(
    r: &[f64],
    split: &SplitTensors,
    true_reward: Option<&[f64]>,
    objective: impl Into<Objective>,
    data_margins: bool,
) -> Vec<(&'static str, f64)> {
    let o = objective.into();
    let margins = split.margins_host.as_deref().filter(|_| data_margins);
    let p = split.pairs_host.len() as f64;
    let (mut pair, mut correct, mut sum, mut sum_abs, mut diff, mut sum_sq, mut sq) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &(a, b)) in split.pairs_host.iter().enumerate() {
        let (ra, rb) = (r[a], r[b]);
        let z = ra - rb - o.margin - margins.map_or(0.0, |m| m[i]);
        pair += softplus(-z);
        correct += f64::from(u8::from(ra - rb > 0.0));
        sum += ra + rb;
        sum_abs += (ra + rb).abs();
        diff += ra - rb;
        sum_sq += (ra + rb).powi(2);
        sq += ra * ra + rb * rb;
    }
    let reg = match o.reg {
        Regularizer::None => 0.0,
        Regularizer::PairSumSq { lambda } => lambda * sum_sq / p,
        Regularizer::BatchSum { lambda } => lambda * p * (sum / (2.0 * p)).powi(2),
        Regularizer::L2 { lambda } => lambda * sq / p,
    };
    let rs: Vec<f64> = split.responses_host.iter().map(|&i| r[i]).collect();
    let n = rs.len() as f64;
    let mean = rs.iter().sum::<f64>() / n;
    let std = (rs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let max_abs = rs.iter().fold(f64::NAN, |m, v| if m.is_nan() || v.abs() > m { v.abs() } else { m });
    let mut values =
        vec![pair / p, reg, pair / p + reg, correct / p, mean, std, max_abs, sum / p, sum_abs / p, diff / p];
    if let Some(t) = true_reward {
        let ts: Vec<f64> = split.responses_host.iter().map(|&i| t[i]).collect();
        values.push(pearson_host(&rs, &ts));
        let agree = split.pairs_host.iter().filter(|&&(a, b)| (r[a] - r[b]) * (t[a] - t[b]) > 0.0).count();
        values.push(agree as f64 / p);
    }
    NAMES.iter().copied().zip(values).collect()
}

/// softplus(x) = log(1 + eˣ), stable for any x: −log σ(z) = softplus(−z).
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::Regularizer;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tch::Tensor;

    fn pearson_slow(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let mut sxy = 0.0;
        let mut sxx = 0.0;
        let mut syy = 0.0;
        for i in 0..x.len() {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx).powi(2);
            syy += (y[i] - my).powi(2);
        }
        sxy / (sxx * syy).sqrt()
    }

    #[test]
    fn pearson_matches_slow_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for n in [2, 3, 17, 500] {
            let x: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 10.0 - 5.0).collect();
            let y: Vec<f64> = x.iter().map(|v| 0.3 * v + rng.random::<f64>()).collect();
            let got = pearson_host(&x, &y);
            assert!((got - pearson_slow(&x, &y)).abs() < 1e-12, "n = {n}");
        }
        assert!(pearson_host(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
    }

    /// Every metric against a plain loop over the same numbers.
    #[test]
    fn split_metrics_match_slow_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n_resp = 40;
        let r: Vec<f64> = (0..n_resp).map(|_| rng.random::<f64>() * 6.0 - 3.0).collect();
        let t: Vec<f64> = (0..n_resp).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
        // The split holds responses 10..30 and pairs among them.
        let responses: Vec<i64> = (10..30).collect();
        let pairs: Vec<(i64, i64)> = (0..25)
            .map(|_| {
                let a = rng.random_range(10..30i64);
                let b = (a - 10 + rng.random_range(1..20i64)) % 20 + 10;
                (a, b)
            })
            .collect();
        let split = host_split(responses.iter().map(|&i| i as usize).collect(), &pairs, None);
        let lambda = 0.05;
        // Rewards as the model gives them: float32 values.
        let rf: Vec<f64> = r.iter().map(|&v| v as f32 as f64).collect();
        let got = split_metrics(&rf, &split, Some(&t), Regularizer::pair_sum_sq(lambda), false);
        let p = pairs.len() as f64;
        let mean = |f: &dyn Fn(f64, f64) -> f64| {
            pairs.iter().map(|&(a, b)| f(rf[a as usize], rf[b as usize])).sum::<f64>() / p
        };
        let rs: Vec<f64> = responses.iter().map(|&i| rf[i as usize]).collect();
        let ts: Vec<f64> = responses.iter().map(|&i| t[i as usize]).collect();
        let m = rs.iter().sum::<f64>() / rs.len() as f64;
        let pair = mean(&|a, b| (1.0 + (b - a).exp()).ln());
        let reg = lambda * mean(&|a, b| (a + b).powi(2));
        let expected = [
            pair,
            reg,
            pair + reg,
            mean(&|a, b| if a > b { 1.0 } else { 0.0 }),
            m,
            (rs.iter().map(|v| (v - m).powi(2)).sum::<f64>() / rs.len() as f64).sqrt(),
            rs.iter().fold(0.0f64, |acc, v| acc.max(v.abs())),
            mean(&|a, b| a + b),
            mean(&|a, b| (a + b).abs()),
            mean(&|a, b| a - b),
            pearson_slow(&rs, &ts),
            pairs
                .iter()
                .map(|&(a, b)| {
                    let (a, b) = (a as usize, b as usize);
                    if (rf[a] - rf[b]) * (t[a] - t[b]) > 0.0 { 1.0 } else { 0.0 }
                })
                .sum::<f64>()
                / p,
        ];
        assert_eq!(got.len(), NAMES.len());
        for ((name, v), e) in got.iter().zip(expected) {
            assert!((v - e).abs() < 1e-9, "{name}: {v} vs {e}");
        }
    }

    fn host_split(responses: Vec<usize>, pairs: &[(i64, i64)], margins: Option<Vec<f64>>) -> SplitTensors {
        SplitTensors {
            chosen: Tensor::new(),
            rejected: Tensor::new(),
            responses: Tensor::new(),
            n_pairs: pairs.len(),
            responses_host: responses,
            pairs_host: pairs.iter().map(|&(a, b)| (a as usize, b as usize)).collect(),
            margins: None,
            margins_host: margins,
        }
    }

    /// The loss terms equal [`crate::loss::pairwise_loss_with_margins`] (LibTorch, float64)
    /// for every regularizer, with a constant and per-pair margins.
    #[test]
    fn loss_terms_match_the_tensor_loss() {
        use crate::loss::{Objective, pairwise_loss_with_margins};
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let r: Vec<f64> = (0..30).map(|_| rng.random::<f64>() * 8.0 - 4.0).collect();
        let pairs: Vec<(i64, i64)> = (0..12).map(|i| (i, 29 - i)).collect();
        let margins: Vec<f64> = (0..12).map(|_| rng.random::<f64>()).collect();
        let split = host_split((0..30).collect(), &pairs, Some(margins.clone()));
        let pick = |side: usize| {
            Tensor::from_slice(
                &pairs.iter().map(|p| r[if side == 0 { p.0 } else { p.1 } as usize]).collect::<Vec<_>>(),
            )
        };
        for reg in [
            Regularizer::None,
            Regularizer::PairSumSq { lambda: 0.3 },
            Regularizer::BatchSum { lambda: 0.3 },
            Regularizer::L2 { lambda: 0.3 },
        ] {
            let o = Objective { reg, margin: 0.4 };
            let got: std::collections::HashMap<_, _> =
                split_metrics(&r, &split, None, o, true).into_iter().collect();
            let terms = pairwise_loss_with_margins(&pick(0), &pick(1), &Tensor::from_slice(&margins), o);
            for (name, t) in
                [("loss_pair", &terms.pair), ("loss_reg", &terms.reg), ("loss_total", &terms.total)]
            {
                assert!((got[name] - t.double_value(&[])).abs() < 1e-12, "{reg:?} {name}");
            }
        }
    }

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

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 5.0]), [2.5, 4.0, 2.5, 1.0]);
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
