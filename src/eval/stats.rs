//! Statistics shared by every stage that reports numbers: correlations and ranks for metrics,
//! and the summary of a metric over seeds (mean, sd, standard error, 95 % CI) that tables
//! (`analysis::query`) and figures (`analysis::plot`) both use, so that they cannot disagree.

/// Summary of one metric over the runs (seeds) of a grid point. Only finite values count:
/// NaN (a correlation of constant rewards, a diverged run's loss) and ±inf are left out and
/// counted in `n_nonfinite`, the same way in every table and figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Finite values summarised.
    pub n: usize,
    /// Values left out as NaN or infinite.
    pub n_nonfinite: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); `None` for n < 2.
    pub std: Option<f64>,
    /// Standard error of the mean, std/√n; `None` for n < 2.
    pub sem: Option<f64>,
    /// 95 % confidence interval of the mean, Student's t with n − 1 degrees of freedom;
    /// `None` for n < 2.
    pub ci95: Option<(f64, f64)>,
}

impl Summary {
    /// The summary of the finite values; `None` when there is none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = v.len();
        if n == 0 {
            return None;
        }
        let mean = v.iter().sum::<f64>() / n as f64;
        let std =
            (n >= 2).then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        let sem = std.map(|sd| sd / (n as f64).sqrt());
        let ci95 = sem.map(|sem| {
            let half = t95(n as i64 - 1) * sem;
            (mean - half, mean + half)
        });
        Some(Summary { n, n_nonfinite: values.len() - n, mean, std, sem, ci95 })
    }
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (two-sided 95 % interval).
pub fn t95(df: i64) -> f64 {
    distrs::StudentsT::ppf(0.975, df as f64)
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

pub fn pearson_host(x: &[f64], y: &[f64]) -> f64 {
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

pub fn population_std(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    let m = x.iter().sum::<f64>() / x.len() as f64;
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pearson_slow;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

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

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 5.0]), [2.5, 4.0, 2.5, 1.0]);
    }

    #[test]
    fn t_quantiles_match_tables() {
        // Standard t-table values, two-sided 95 %.
        for (df, t) in [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045), (1000, 1.962)] {
            assert!((t95(df) - t).abs() < 1e-3, "df = {df}: {}", t95(df));
        }
    }

    #[test]
    fn summary_matches_hand_computation_and_leaves_out_nonfinite_values() {
        // values 1, 2, 3: mean 2, sd 1, sem 1/√3, t(2) = 4.3027
        let s = Summary::of(&[1.0, 2.0, 3.0, f64::INFINITY, f64::NAN]).unwrap();
        assert_eq!((s.mean, s.n, s.n_nonfinite, s.std), (2.0, 3, 2, Some(1.0)));
        assert!((s.sem.unwrap() - 1.0 / 3f64.sqrt()).abs() < 1e-12);
        let (lo, hi) = s.ci95.unwrap();
        assert!((hi - 2.0 - 4.302_652_7 / 3f64.sqrt()).abs() < 1e-5 && (2.0 - lo - (hi - 2.0)).abs() < 1e-12);
        let one = Summary::of(&[5.0, f64::NAN]).unwrap();
        assert_eq!((one.n, one.std, one.ci95), (1, None, None));
        assert!(Summary::of(&[f64::NEG_INFINITY]).is_none());
    }
}
