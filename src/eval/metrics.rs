//! Evaluation statistics of one split: loss terms, accuracy, reward magnitudes, calibration
//! against the labels, agreement with the true reward.
//!
//! Everything is computed on the host in float64 from one transfer of the rewards.

use super::calibration::calibration_metrics;
use super::stats::pearson_host;
use crate::data::SplitTensors;
use crate::experiment::metric::NAMES;
use crate::objective::Objective;

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
    objective: &Objective,
    data_margins: bool,
) -> Vec<(&'static str, f64)> {
    let margins = split.margins_host.as_deref().filter(|_| data_margins);
    let p = split.pairs_host.len() as f64;
    let (loss_pair, loss_reg) = objective.loss_host(
        split.pairs_host.iter().enumerate().map(|(i, &(a, b))| (r[a], r[b], margins.map_or(0.0, |m| m[i]))),
    );
    let (mut correct, mut sum, mut sum_abs, mut diff) = (0.0, 0.0, 0.0, 0.0);
    for &(a, b) in &split.pairs_host {
        let (ra, rb) = (r[a], r[b]);
        correct += f64::from(u8::from(ra - rb > 0.0));
        sum += ra + rb;
        sum_abs += (ra + rb).abs();
        diff += ra - rb;
    }
    let rs: Vec<f64> = split.responses_host.iter().map(|&i| r[i]).collect();
    let n = rs.len() as f64;
    let mean = rs.iter().sum::<f64>() / n;
    let std = (rs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let max_abs = rs.iter().fold(f64::NAN, |m, v| if m.is_nan() || v.abs() > m { v.abs() } else { m });
    let mut values = vec![
        loss_pair,
        loss_reg,
        loss_pair + loss_reg,
        correct / p,
        mean,
        std,
        max_abs,
        sum / p,
        sum_abs / p,
        diff / p,
    ];
    values.extend(calibration_metrics(r, &split.pairs_host).into_iter().map(|(_, v)| v));
    if let Some(t) = true_reward {
        let ts: Vec<f64> = split.responses_host.iter().map(|&i| t[i]).collect();
        values.push(pearson_host(&rs, &ts));
        let agree = split.pairs_host.iter().filter(|&&(a, b)| (r[a] - r[b]) * (t[a] - t[b]) > 0.0).count();
        values.push(agree as f64 / p);
    }
    NAMES.iter().copied().zip(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::Regularizer;
    use crate::testing::pearson_slow;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tch::Tensor;

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
        let pairs_usize: Vec<(usize, usize)> = pairs.iter().map(|&(a, b)| (a as usize, b as usize)).collect();
        let lambda = 0.05;
        // Rewards as the model gives them: float32 values.
        let rf: Vec<f64> = r.iter().map(|&v| v as f32 as f64).collect();
        let got = split_metrics(&rf, &split, Some(&t), &Objective::pair_sum_sq(lambda), false);
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
            crate::eval::calibration::tests::ece_slow(&rf, &pairs_usize),
            mean(&|a, b| (1.0 / (1.0 + (b - a).exp()) - 1.0).powi(2)),
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
            pair_kind_host: None,
        }
    }

    /// The loss terms equal [`Objective::loss`] (LibTorch, float64) for every regularizer,
    /// with a constant and per-pair margins.
    #[test]
    fn loss_terms_match_the_tensor_loss() {
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
        for reg in [Regularizer::None, Regularizer::PairSumSq, Regularizer::BatchSum, Regularizer::L2] {
            let o = Objective::penalty(reg, 0.3).with_margin(0.4);
            let got: std::collections::HashMap<_, _> =
                split_metrics(&r, &split, None, &o, true).into_iter().collect();
            let terms = o.loss(&pick(0), &pick(1), Some(&Tensor::from_slice(&margins)));
            for (name, t) in
                [("loss_pair", &terms.pair), ("loss_reg", &terms.reg), ("loss_total", &terms.total)]
            {
                assert!((got[name] - t.double_value(&[])).abs() < 1e-12, "{reg:?} {name}");
            }
        }
    }
}
