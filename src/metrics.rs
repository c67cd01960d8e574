//! Evaluation statistics of one split: loss terms, accuracy, reward magnitudes, agreement
//! with the true reward.
//!
//! Everything is computed on the device in float64 and read back to the host in one transfer.

use tch::{Kind, Tensor};

use crate::data::SplitTensors;
use crate::loss::{Regularizer, pairwise_loss};

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
        "accuracy" | "true_pearson" | "true_pair_accuracy" => Some(Goal::Max),
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
    reg: &Regularizer,
) -> Vec<(&'static str, f64)> {
    let r_all = r_all.to_kind(Kind::Double);
    let r_a = r_all.index_select(0, &split.chosen);
    let r_b = r_all.index_select(0, &split.rejected);
    let r = r_all.index_select(0, &split.responses);
    let terms = pairwise_loss(&r_a, &r_b, reg);
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
        };
        let lambda = 0.05;
        let got = split_metrics(
            &Tensor::from_slice(&r).to_kind(Kind::Float),
            &split,
            Some(&Tensor::from_slice(&t)),
            &Regularizer::pair_sum_sq(lambda),
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
}
