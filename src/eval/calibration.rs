//! Calibration of the model's pair probability σ(r_a − r_b) against the observed preference
//! labels (every data set, real ones included): the empirical expected calibration error, the
//! Brier score, and the reliability bins a reliability diagram is drawn from.
//!
//! `truth.rs`'s `ece` measures the same probability against the true P(a ≻ b), which only
//! synthetic data know; here each labelled pair is one Bernoulli observation that the chosen
//! response a beats the rejected b.
//!
//! Pairwise predictions are folded, as top-label calibration (Guo et al., 2017) does for
//! classifiers: a pair's *confidence* is c = max(p, 1 − p) = σ(|r_a − r_b|), the probability
//! the model gives to the response it prefers, and it is *correct* when that response is the
//! labelled winner (y = 1 if r_a > r_b, 0 if r_a < r_b, ½ for a tie, whose p = ½ is right
//! half the time whichever way the pair was labelled). Folding is needed because every
//! labelled pair has y = 1 with p for its winner: binning p itself would measure only
//! 1 − mean p, never over-confidence against under-confidence. Folding loses nothing:
//! binning both orientations of every pair, (p, 1) and (1 − p, 0), in 2M equal bins over
//! [0, 1] gives the same ECE (each folded bin and its mirror carry the same error), which
//! [`tests`] check.

use crate::experiment::metric::{CALIBRATION_NAMES, RELIABILITY_BINS, reliability_names};

/// The logistic function, without overflow for large |x|.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) }
}

/// The bin of a confidence c ∈ [½, 1]: M equal-width bins over [½, 1], the last one closed
/// (c = 1 where float64 σ saturates, |r_a − r_b| > 37). NaN goes to bin 0 (and makes the
/// sums NaN).
fn bin_of(c: f64) -> usize {
    (((c - 0.5) * 2.0 * RELIABILITY_BINS as f64) as usize).min(RELIABILITY_BINS - 1)
}

/// Confidence and correctness of one pair with reward difference d = r_a − r_b (a labelled
/// the winner).
fn folded(d: f64) -> (f64, f64) {
    let y = if d > 0.0 {
        1.0
    } else if d < 0.0 {
        0.0
    } else if d == 0.0 {
        0.5
    } else {
        f64::NAN
    };
    (sigmoid(d.abs()), y)
}

/// Sums over the pairs of each of the [`RELIABILITY_BINS`] confidence bins.
#[derive(Clone, Debug, PartialEq)]
pub struct Reliability {
    /// Pairs in each bin.
    pub pairs: [usize; RELIABILITY_BINS],
    /// Sum of the confidences c of each bin's pairs.
    pub confidence: [f64; RELIABILITY_BINS],
    /// Sum of the correctness y of each bin's pairs.
    pub correct: [f64; RELIABILITY_BINS],
}

impl Reliability {
    /// The bins of the pairs `(a, b)` (a labelled the winner) under rewards `r` (all
    /// responses; pairs index into it).
    pub fn of(r: &[f64], pairs: &[(usize, usize)]) -> Reliability {
        let mut out = Reliability {
            pairs: [0; RELIABILITY_BINS],
            confidence: [0.0; RELIABILITY_BINS],
            correct: [0.0; RELIABILITY_BINS],
        };
        for &(a, b) in pairs {
            let (c, y) = folded(r[a] - r[b]);
            let k = bin_of(c);
            out.pairs[k] += 1;
            out.confidence[k] += c;
            out.correct[k] += y;
        }
        out
    }

    /// Expected calibration error: Σ_k (n_k / P) |mean c − mean y| over non-empty bins
    /// = Σ_k |Σ c − Σ y| / P; NaN without pairs.
    pub fn ece(&self) -> f64 {
        let n: usize = self.pairs.iter().sum();
        if n == 0 {
            return f64::NAN;
        }
        (0..RELIABILITY_BINS).map(|k| (self.confidence[k] - self.correct[k]).abs()).sum::<f64>() / n as f64
    }

    /// `(name, value)` in [`reliability_names`] order: for each bin its pair count, mean
    /// confidence and fraction correct (both NaN for an empty bin).
    pub fn metrics(&self) -> Vec<(&'static str, f64)> {
        let values = (0..RELIABILITY_BINS).flat_map(|k| {
            let n = self.pairs[k] as f64;
            [n, self.confidence[k] / n, self.correct[k] / n]
        });
        reliability_names().iter().copied().zip(values).collect()
    }
}

/// `label_ece` and `label_brier` of the pairs `(a, b)` (a labelled the winner) under rewards
/// `r`, in [`CALIBRATION_NAMES`] order: the ECE of [`Reliability::ece`], and the Brier score
/// mean (p − 1)² = mean σ(r_b − r_a)² with p = σ(r_a − r_b) the probability given to the
/// label (orientation-free: the reversed pair has (1 − p − 0)², the same). NaN without pairs
/// or with a NaN reward.
pub fn calibration_metrics(r: &[f64], pairs: &[(usize, usize)]) -> Vec<(&'static str, f64)> {
    let brier = pairs.iter().map(|&(a, b)| sigmoid(r[b] - r[a]).powi(2)).sum::<f64>() / pairs.len() as f64;
    let ece = Reliability::of(r, pairs).ece();
    CALIBRATION_NAMES.iter().copied().zip([ece, brier]).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// ECE the unfolded way: both orientations of every pair, (p, 1) and (1 − p, 0), in 2M
    /// equal bins over [0, 1] (the last closed), Σ_bins (n_b / 2P) |mean p − mean y|.
    pub(crate) fn ece_slow(r: &[f64], pairs: &[(usize, usize)]) -> f64 {
        let m = 2 * RELIABILITY_BINS;
        let mut bins: Vec<Vec<(f64, f64)>> = vec![Vec::new(); m];
        for &(a, b) in pairs {
            let p = 1.0 / (1.0 + (r[b] - r[a]).exp());
            for (q, y) in [(p, 1.0), (1.0 - p, 0.0)] {
                let edge = (0..m).find(|&k| q < (k + 1) as f64 / m as f64).unwrap_or(m - 1);
                bins[edge].push((q, y));
            }
        }
        let total = 2.0 * pairs.len() as f64;
        bins.iter()
            .filter(|b| !b.is_empty())
            .map(|b| {
                let n = b.len() as f64;
                let mp = b.iter().map(|x| x.0).sum::<f64>() / n;
                let my = b.iter().map(|x| x.1).sum::<f64>() / n;
                n / total * (mp - my).abs()
            })
            .sum()
    }

    fn brier_slow(r: &[f64], pairs: &[(usize, usize)]) -> f64 {
        let p: Vec<f64> = pairs.iter().map(|&(a, b)| 1.0 / (1.0 + (-(r[a] - r[b])).exp())).collect();
        p.iter().map(|p| (p - 1.0) * (p - 1.0)).sum::<f64>() / p.len() as f64
    }

    /// Four pairs worked by hand. Differences 2, −1, 0.1, 3: confidences σ(2) = 0.880797,
    /// σ(1) = 0.731059, σ(0.1) = 0.524979, σ(3) = 0.952574 in bins 7, 4, 0, 9, the second
    /// wrong. ECE = (0.119203 + 0.731059 + 0.475021 + 0.047426) / 4.
    #[test]
    fn four_pairs_match_hand_computed_values() {
        let r = [2.0, 0.0, -1.0, 0.1, 3.0];
        let pairs = [(0, 1), (2, 1), (3, 1), (4, 1)];
        let rel = Reliability::of(&r, &pairs);
        let mut expected_pairs = [0; RELIABILITY_BINS];
        for k in [7, 4, 0, 9] {
            expected_pairs[k] = 1;
        }
        assert_eq!(rel.pairs, expected_pairs);
        assert_eq!(rel.correct[4], 0.0);
        assert_eq!(rel.correct[7], 1.0);
        let (s2, s1, s01, s3): (f64, f64, f64, f64) = (
            0.880_797_077_977_882_3,
            0.731_058_578_630_004_9,
            0.524_979_187_478_939_7,
            0.952_574_126_822_433_4,
        );
        let ece = ((1.0 - s2) + s1 + (1.0 - s01) + (1.0 - s3)) / 4.0;
        // Brier: (1 − p)² with p = σ(d): σ(−2)², σ(1)², σ(−0.1)², σ(−3)².
        let brier = ((1.0 - s2).powi(2) + s1 * s1 + (1.0 - s01).powi(2) + (1.0 - s3).powi(2)) / 4.0;
        let m = calibration_metrics(&r, &pairs);
        assert_eq!(m[0].0, "label_ece");
        assert_eq!(m[1].0, "label_brier");
        assert!((m[0].1 - ece).abs() < 1e-12, "{} vs {ece}", m[0].1);
        assert!((m[1].1 - brier).abs() < 1e-12, "{} vs {brier}", m[1].1);
        let bins: std::collections::HashMap<_, _> = rel.metrics().into_iter().collect();
        assert_eq!(bins["reliability_4_pairs"], 1.0);
        assert!((bins["reliability_4_confidence"] - s1).abs() < 1e-12);
        assert_eq!(bins["reliability_4_correct"], 0.0);
        assert_eq!(bins["reliability_1_pairs"], 0.0);
        assert!(bins["reliability_1_confidence"].is_nan() && bins["reliability_1_correct"].is_nan());
    }

    /// A tie has confidence ½ and counts half correct: perfectly calibrated, Brier ¼. A model
    /// certain and right scores 0; certain and wrong, 1 (σ saturates at 1 in float64).
    #[test]
    fn ties_and_certainty() {
        let m = calibration_metrics(&[1.5, 1.5], &[(0, 1)]);
        assert_eq!((m[0].1, m[1].1), (0.0, 0.25));
        let right = calibration_metrics(&[100.0, 0.0], &[(0, 1)]);
        assert_eq!(right[0].1, 0.0);
        assert!(right[1].1 < 1e-80, "σ(−100)² ≈ 1.4e-87: {}", right[1].1);
        let wrong = calibration_metrics(&[0.0, 100.0], &[(0, 1)]);
        assert_eq!((wrong[0].1, wrong[1].1), (1.0, 1.0));
        assert_eq!(Reliability::of(&[0.0, 100.0], &[(0, 1)]).pairs[RELIABILITY_BINS - 1], 1);
        let none = calibration_metrics(&[0.0], &[]);
        assert!(none[0].1.is_nan() && none[1].1.is_nan());
        let nan = calibration_metrics(&[f64::NAN, 0.0, 1.0], &[(0, 1), (2, 1)]);
        assert!(nan[0].1.is_nan() && nan[1].1.is_nan());
    }

    /// On random rewards, including some ties, the folded ECE equals the unfolded one over
    /// both orientations, and the Brier score the plain mean; the bins hold every pair.
    #[test]
    fn folded_ece_and_brier_match_slow_references() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for scale in [0.3, 2.0, 8.0] {
            // Rewards on a grid of 1/4, so that some pairs tie exactly.
            let r: Vec<f64> = (0..60).map(|_| (rng.random::<f64>() * 8.0 * scale).round() / 4.0).collect();
            let pairs: Vec<(usize, usize)> =
                (0..200).map(|_| (rng.random_range(0..60), rng.random_range(0..60))).collect();
            let m = calibration_metrics(&r, &pairs);
            let (ece, brier) = (ece_slow(&r, &pairs), brier_slow(&r, &pairs));
            assert!((m[0].1 - ece).abs() < 1e-12, "scale {scale}: ECE {} vs {ece}", m[0].1);
            assert!((m[1].1 - brier).abs() < 1e-12, "scale {scale}: Brier {} vs {brier}", m[1].1);
            assert!(ece > 0.0);
            let rel = Reliability::of(&r, &pairs);
            assert_eq!(rel.pairs.iter().sum::<usize>(), pairs.len());
            for k in 0..RELIABILITY_BINS {
                let n = rel.pairs[k] as f64;
                let lo = 0.5 + 0.5 * k as f64 / RELIABILITY_BINS as f64;
                assert!(n == 0.0 || rel.confidence[k] / n >= lo - 1e-15, "bin {k}");
                assert!(n == 0.0 || rel.confidence[k] / n <= lo + 0.5 / RELIABILITY_BINS as f64 + 1e-15);
            }
        }
    }
}
