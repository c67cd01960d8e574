//! Evaluation statistics of one split: loss terms, accuracy, reward magnitudes, agreement
//! with the true reward.
//!
//! Everything is computed on the device in float64 and read back to the host in one transfer.

use tch::{Kind, Tensor};

use crate::data::SplitTensors;
use crate::loss::{Objective, pairwise_loss, pairwise_loss_with_margins};

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
/// [`TRUTH_NAMES`] order; NaN where undefined.
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

    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let mut bins = [(0usize, 0.0f64, 0.0f64); 10];
    let (mut off, mut spread) = (0.0, 0.0);
    for &(a, b) in s.pairs {
        let p = sigmoid(r[a] - r[b]);
        let dt = s.true_reward[a] - s.true_reward[b];
        let p_bt = if s.beta.is_infinite() {
            if dt > 0.0 {
                1.0
            } else if dt < 0.0 {
                0.0
            } else {
                0.5
            }
        } else {
            sigmoid(s.beta * dt)
        };
        let p_true = s.flip + (1.0 - 2.0 * s.flip) * p_bt;
        let bin = ((p * 10.0) as usize).min(9);
        bins[bin].0 += 1;
        bins[bin].1 += p;
        bins[bin].2 += p_true;
        off += ((r[a] + r[b]) / 2.0).abs();
        spread += ((r[a] - r[b]) / 2.0).abs();
    }
    let n = s.pairs.len() as f64;
    let ece = if s.pairs.is_empty() {
        f64::NAN
    } else {
        bins.iter().filter(|b| b.0 > 0).map(|b| (b.1 - b.2).abs() / n).sum()
    };
    let v = [spearman, pearson_within, within, offset_error, ece, off / n, spread / n];
    TRUTH_NAMES.iter().copied().zip(v).collect()
}

/// Ranks 1..n with ties given their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
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

/// Number of metrics that need the true reward (the last ones of [`NAMES`]).
const N_TRUE: usize = 2;

/// Metrics of one split, `(name, value)` in [`NAMES`] order; the true-reward metrics are left
/// out when `true_all` is `None`.
///
/// `r_all`: rewards of all R responses, `[R]`; `true_all`: true rewards, `[R]`. The split's
/// index tensors select its pairs and responses. Values are NaN where undefined (a constant
/// reward has no correlation).
pub fn split_metrics(
    r_all: &Tensor,
    split: &SplitTensors,
    true_all: Option<&Tensor>,
    objective: impl Into<Objective>,
    data_margins: bool,
) -> Vec<(&'static str, f64)> {
    let r_all = r_all.to_kind(Kind::Double);
    let r_a = r_all.index_select(0, &split.chosen);
    let r_b = r_all.index_select(0, &split.rejected);
    let r = r_all.index_select(0, &split.responses);
    let terms = match &split.margins {
        Some(m) if data_margins => {
            pairwise_loss_with_margins(&r_a, &r_b, &m.to_kind(Kind::Double), objective)
        }
        _ => pairwise_loss(&r_a, &r_b, objective),
    };
    let sum = &r_a + &r_b;
    let diff = &r_a - &r_b;
    let mut values = vec![
        terms.pair,
        terms.reg,
        terms.total,
        diff.gt(0.0).to_kind(Kind::Double).mean(None),
        r.mean(None),
        r.std(false),
        r.abs().max(),
        sum.mean(None),
        sum.abs().mean(None),
        diff.mean(None),
    ];
    if let Some(t_all) = true_all {
        let t_all = t_all.to_kind(Kind::Double);
        let t = t_all.index_select(0, &split.responses);
        let t_diff = t_all.index_select(0, &split.chosen) - t_all.index_select(0, &split.rejected);
        values.push(pearson(&r, &t));
        values.push((diff * t_diff).gt(0.0).to_kind(Kind::Double).mean(None));
    }
    let host = Vec::<f64>::try_from(Tensor::stack(&values, 0).to_device(tch::Device::Cpu))
        .expect("a float64 vector converts to Vec<f64>");
    let names = if true_all.is_some() { &NAMES[..] } else { &NAMES[..NAMES.len() - N_TRUE] };
    names.iter().copied().zip(host).collect()
}

/// Pearson correlation of two `[N]` tensors: a scalar, NaN if either is constant.
pub fn pearson(x: &Tensor, y: &Tensor) -> Tensor {
    let xc = x - x.mean(None);
    let yc = y - y.mean(None);
    (&xc * &yc).sum(None) / ((&xc * &xc).sum(None) * (&yc * &yc).sum(None)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::Regularizer;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

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
            let got = pearson(&Tensor::from_slice(&x), &Tensor::from_slice(&y)).double_value(&[]);
            assert!((got - pearson_slow(&x, &y)).abs() < 1e-12, "n = {n}");
        }
        let c = Tensor::from_slice(&[1.0f64, 1.0, 1.0]);
        assert!(pearson(&c, &Tensor::from_slice(&[1.0f64, 2.0, 3.0])).double_value(&[]).is_nan());
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
        let split = SplitTensors {
            chosen: Tensor::from_slice(&pairs.iter().map(|p| p.0).collect::<Vec<_>>()),
            rejected: Tensor::from_slice(&pairs.iter().map(|p| p.1).collect::<Vec<_>>()),
            responses: Tensor::from_slice(&responses),
            n_pairs: pairs.len(),
            responses_host: vec![],
            pairs_host: vec![],
            margins: None,
        };
        let lambda = 0.05;
        let got = split_metrics(
            &Tensor::from_slice(&r).to_kind(Kind::Float),
            &split,
            Some(&Tensor::from_slice(&t)),
            Regularizer::pair_sum_sq(lambda),
            false,
        );
        let rf: Vec<f64> = r.iter().map(|&v| v as f32 as f64).collect(); // as the model gives them
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
