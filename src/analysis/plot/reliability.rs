//! Reliability diagrams (`kind = "reliability"`): how often the response a model prefers is
//! the labelled winner, against how sure it is, σ(|r_a − r_b|), per confidence bin, a panel
//! per λ (and setting of the other swept keys) and a row per split. Drawn from the bins each
//! run records for its final rewards (`reliability_{k}_{pairs,confidence,correct}`,
//! `eval::calibration`), with the diagonal a calibrated model lies on and the share of the
//! pairs in each bin as grey bars.

use std::collections::{BTreeMap, BTreeSet};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rusqlite::Connection;

use super::data::{self, OrdValue, RunInfo, Stat, Statistic, stat};
use super::draw::{chart_builder, mesh};
use super::legend::{Dash, Entry, Swatch};
use super::style::{FONT, LABEL_PX, color, key_symbol, pe};
use crate::error::Result;
use crate::experiment::figure::{FigureSpec, default_x};
use crate::experiment::metric::{RELIABILITY_BINS, RELIABILITY_PARTS};

/// One run's bins: `(pairs, mean confidence, fraction correct)` each, means NaN when empty.
pub type RunBins = [(f64, f64, f64); RELIABILITY_BINS];

/// One non-empty bin of a panel, the runs of the panel pooled.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BinPoint {
    /// Index of the bin: confidences [0.5 + 0.05 k, 0.5 + 0.05 (k + 1)).
    pub bin: usize,
    /// Pairs in the bin over all runs.
    pub pairs: f64,
    /// Share of all the runs' pairs that fall in the bin.
    pub share: f64,
    /// Mean confidence of the bin's pairs (x).
    pub confidence: f64,
    /// Fraction of the bin's pairs whose preferred response is the labelled winner (y).
    pub correct: f64,
    /// 95 % Wilson interval of `correct` at the bin's mean pair count per run.
    pub interval: (f64, f64),
}

/// Pools the bins of the runs of one setting (its seeds): sums of pairs, confidences and
/// correct answers per bin. A bin's interval is the Wilson interval at its mean pair count per
/// run, one run's sampling error, not at the pooled count: the seeds' pairs coincide (a fixed
/// split) or overlap (a split drawn per seed), so pooling them adds fewer independent labels
/// than it adds pairs, and the pooled count would overstate the precision.
pub fn pool(runs: &[RunBins]) -> Vec<BinPoint> {
    let total: f64 = runs.iter().flat_map(|r| r.iter().map(|b| b.0)).sum();
    (0..RELIABILITY_BINS)
        .filter_map(|k| {
            let (mut n, mut c, mut y) = (0.0, 0.0, 0.0);
            for r in runs {
                let (nk, ck, yk) = r[k];
                if nk > 0.0 {
                    n += nk;
                    c += nk * ck;
                    y += nk * yk;
                }
            }
            (n > 0.0).then(|| BinPoint {
                bin: k,
                pairs: n,
                share: n / total,
                confidence: c / n,
                correct: y / n,
                interval: wilson(y / n, n / runs.len() as f64),
            })
        })
        .collect()
}

/// One run's expected calibration error from its bins: Σ_k n_k |conf_k − correct_k| / Σ n_k
/// (as `label_ece`); NaN without pairs.
pub fn run_ece(bins: &RunBins) -> f64 {
    let n: f64 = bins.iter().map(|b| b.0).sum();
    if n == 0.0 {
        return f64::NAN;
    }
    bins.iter().filter(|b| b.0 > 0.0).map(|b| b.0 * (b.1 - b.2).abs()).sum::<f64>() / n
}

/// 95 % Wilson score interval of a proportion `p` observed over `n` trials (n > 0; a count
/// that need not be whole, as a mean over runs).
pub fn wilson(p: f64, n: f64) -> (f64, f64) {
    let z = 1.959_963_984_540_054;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // The interval holds p̂; at p̂ = 0 or 1 rounding would leave it a hair outside.
    ((centre - half).max(0.0).min(p), (centre + half).min(1.0).max(p))
}

/// A reliability panel: one λ (and setting of the other keys) on one split.
#[derive(Clone, Debug)]
pub struct ReliabilityPanel {
    pub title: String,
    pub color: RGBColor,
    pub bins: Vec<BinPoint>,
    /// Runs pooled.
    pub runs: usize,
    /// `label_ece` recomputed from each run's bins: mean and band over runs.
    pub ece: Option<Stat>,
}

/// The panels of a reliability figure: a row per split of `fig.splits`, a panel per λ and
/// setting of `others` (the swept keys besides λ and the seed) in each, λ last, so panels of
/// one setting of the others sit together. Returns the panels and the rows. Runs without bins
/// (recorded before the bins existed) are left out with a note.
pub fn panels(
    conn: &Connection,
    fig: &FigureSpec,
    runs: &[RunInfo],
    others: &[String],
    notes: &mut Vec<String>,
) -> Result<(Vec<ReliabilityPanel>, usize)> {
    let lambda = default_x();
    let mut keys: Vec<String> = others.to_vec();
    keys.push(lambda.clone());
    let lambdas: BTreeSet<OrdValue> =
        runs.iter().map(|r| r.params.get(&lambda).cloned().unwrap_or(OrdValue::Missing)).collect();
    let mut panels = Vec::new();
    let mut without: BTreeSet<i64> = BTreeSet::new();
    for split in &fig.splits {
        let bins = run_bins(conn, runs, split)?;
        let mut by_key: BTreeMap<Vec<OrdValue>, Vec<RunBins>> = BTreeMap::new();
        for r in runs {
            match bins.get(&r.id) {
                Some(b) => by_key.entry(r.key(&keys)).or_default().push(*b),
                None => {
                    without.insert(r.id);
                }
            }
        }
        for (k, members) in &by_key {
            let lam = k.last().expect("λ is a key");
            let i = lambdas.iter().position(|l| l == lam).unwrap_or(0);
            let setting: Vec<String> =
                others.iter().zip(k).map(|(key, v)| format!("{} = {}", key_symbol(key), v.label())).collect();
            let setting = setting.join(", ");
            let eces: Vec<f64> = members.iter().map(run_ece).collect();
            panels.push(ReliabilityPanel {
                title: format!(
                    "{}λ = {} ({split})",
                    if setting.is_empty() { String::new() } else { format!("{setting}, ") },
                    lam.label()
                ),
                color: if lam.as_f64() == Some(0.0) { RGBColor(110, 110, 110) } else { color(i) },
                bins: pool(members),
                runs: members.len(),
                ece: stat(&eces, fig.band, Some((0.0, 1.0))),
            });
        }
    }
    if !without.is_empty() {
        notes.push(format!(
            "{} of {} runs have no reliability bins (recorded before they existed) and are left out",
            without.len(),
            runs.len()
        ));
    }
    Ok((panels, fig.splits.len().max(1)))
}

/// The final bins of each run on `split` that has them all.
fn run_bins(conn: &Connection, runs: &[RunInfo], split: &str) -> Result<BTreeMap<i64, RunBins>> {
    let mut parts: Vec<BTreeMap<i64, f64>> = Vec::new();
    for k in 0..RELIABILITY_BINS {
        for p in RELIABILITY_PARTS {
            parts.push(data::summary_values(
                conn,
                runs,
                split,
                &format!("reliability_{k}_{p}"),
                Statistic::Final,
            )?);
        }
    }
    let mut out = BTreeMap::new();
    for r in runs {
        let mut bins: RunBins = [(0.0, f64::NAN, f64::NAN); RELIABILITY_BINS];
        let mut complete = true;
        for (k, bin) in bins.iter_mut().enumerate() {
            let get = |j: usize| parts[3 * k + j].get(&r.id).copied();
            match (get(0), get(1), get(2)) {
                (Some(n), Some(c), Some(y)) => *bin = (n, c, y),
                _ => complete = false,
            }
        }
        if complete {
            out.insert(r.id, bins);
        }
    }
    Ok(out)
}

/// The figure's legend: what the points, bars and diagonal are.
pub fn legend() -> Vec<Entry> {
    let grey = RGBColor(90, 90, 90);
    vec![
        Entry {
            swatch: Swatch::Line { color: grey, dash: Dash::Solid, marker: true, band: false },
            label: "fraction of pairs whose preferred response is the labelled winner, at the bin's mean confidence (panel colour)".into(),
        },
        Entry { swatch: Swatch::Patch(RGBColor(200, 200, 200)), label: "share of the pairs in the bin".into() },
        Entry {
            swatch: Swatch::Line { color: BLACK, dash: Dash::Dashed, marker: false, band: false },
            label: "calibrated: fraction = confidence".into(),
        },
    ]
}

/// The figure's footer (subscripts marked).
pub fn footer(band: &str) -> String {
    super::typeset::typeset(&format!(
        "Bins: confidence σ(|r_a − r_b|) of the preferred response, {RELIABILITY_BINS} equal bins over [0.5, 1], from each run's final rewards, \
         all seeds of a panel pooled; bars on points: 95 % Wilson interval at the bin's mean pair count per run (the seeds' pairs overlap, so not at the pooled count); \
         ECE in titles: mean over runs, ± half its band ({band})."
    ))
}

/// The sidecar record of a panel.
pub fn record(p: &ReliabilityPanel) -> (String, usize, Option<f64>, Vec<BinPoint>) {
    (super::typeset::plain(&p.title), p.runs, p.ece.map(|e| e.mean), p.bins.clone())
}

fn font(px: f64) -> TextStyle<'static> {
    (FONT, px).into_font().into()
}

/// Draws one panel: grey bars of each bin's share of the pairs, the dashed diagonal, and the
/// fraction correct at each non-empty bin's mean confidence with its interval, joined.
pub fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &ReliabilityPanel) -> Result<()> {
    let ece = match p.ece {
        Some(Stat { mean, band: Some((lo, hi)), .. }) => {
            format!(": ECE {} ± {}", style_sig(mean), style_sig((hi - lo) / 2.0))
        }
        Some(Stat { mean, .. }) => format!(": ECE {}", style_sig(mean)),
        None => String::new(),
    };
    let title = format!("{}{ece}", p.title);
    let mut chart = chart_builder(area, &title)?.build_cartesian_2d(0.5..1.0, 0.0..1.0).map_err(pe)?;
    mesh(&mut chart, "confidence", "fraction / share of pairs")?;
    let width = 0.5 / RELIABILITY_BINS as f64;
    chart
        .draw_series(p.bins.iter().map(|b| {
            let x0 = 0.5 + b.bin as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width, b.share)], RGBColor(200, 200, 200).filled())
        }))
        .map_err(pe)?;
    chart
        .draw_series(DashedLineSeries::new([(0.5, 0.5), (1.0, 1.0)], 18, 12, BLACK.stroke_width(3)))
        .map_err(pe)?;
    let c = p.color;
    chart
        .draw_series(p.bins.iter().map(|b| {
            ErrorBar::new_vertical(b.confidence, b.interval.0, b.correct, b.interval.1, c.stroke_width(3), 12)
        }))
        .map_err(pe)?;
    chart
        .draw_series(LineSeries::new(p.bins.iter().map(|b| (b.confidence, b.correct)), c.stroke_width(4)))
        .map_err(pe)?;
    chart
        .draw_series(p.bins.iter().map(|b| Circle::new((b.confidence, b.correct), 7, c.filled())))
        .map_err(pe)?;
    if p.bins.is_empty() {
        chart
            .draw_series(std::iter::once(Text::new(
                "no pairs",
                (0.6, 0.9),
                font(LABEL_PX).pos(Pos::new(HPos::Left, VPos::Center)),
            )))
            .map_err(pe)?;
    }
    Ok(())
}

fn style_sig(x: f64) -> String {
    super::style::significant(x, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: (f64, f64, f64) = (0.0, f64::NAN, f64::NAN);

    /// Two runs worked by hand: bin 0 holds 2 pairs (mean confidence 0.52, half right) in the
    /// first and 6 (0.54, 1/3 right) in the second; bin 9 holds 2 pairs (0.98, all right) in
    /// the first only.
    #[test]
    fn pooled_bins_by_hand() {
        let mut a: RunBins = [EMPTY; RELIABILITY_BINS];
        let mut b: RunBins = [EMPTY; RELIABILITY_BINS];
        a[0] = (2.0, 0.52, 0.5);
        a[9] = (2.0, 0.98, 1.0);
        b[0] = (6.0, 0.54, 1.0 / 3.0);
        let got = pool(&[a, b]);
        assert_eq!(got.len(), 2);
        let (b0, b9) = (&got[0], &got[1]);
        assert_eq!((b0.bin, b0.pairs, b9.bin, b9.pairs), (0, 8.0, 9, 2.0));
        assert!((b0.share - 0.8).abs() < 1e-12 && (b9.share - 0.2).abs() < 1e-12);
        // (2 × 0.52 + 6 × 0.54) / 8 = 0.535; (1 + 2) / 8 = 0.375.
        assert!((b0.confidence - 0.535).abs() < 1e-12);
        assert!((b0.correct - 0.375).abs() < 1e-12);
        // Interval at 4 pairs per run, not 8.
        assert_eq!(b0.interval, wilson(0.375, 4.0));
        // ECE: a: (2 × 0.02 + 2 × 0.02) / 4 = 0.02; b: 6 × |0.54 − 1/3| / 6.
        assert!((run_ece(&a) - 0.02).abs() < 1e-12);
        assert!((run_ece(&b) - (0.54 - 1.0 / 3.0)).abs() < 1e-12);
        assert!(run_ece(&[EMPTY; RELIABILITY_BINS]).is_nan());
    }

    /// A run's ECE from its stored bins (means, as recorded) equals `label_ece` computed from
    /// its rewards.
    #[test]
    fn ece_from_bins_matches_the_evaluated_label_ece() {
        use crate::eval::calibration::{Reliability, calibration_metrics};
        let r: Vec<f64> = (0..40).map(|i| ((i * 37 % 23) as f64 - 11.0) * 0.21).collect();
        let pairs: Vec<(usize, usize)> = (0..120).map(|i| (i * 7 % 40, (i * 13 + 5) % 40)).collect();
        let m = Reliability::of(&r, &pairs).metrics();
        let mut bins: RunBins = [EMPTY; RELIABILITY_BINS];
        for (k, bin) in bins.iter_mut().enumerate() {
            *bin = (m[3 * k].1, m[3 * k + 1].1, m[3 * k + 2].1);
        }
        let ece = calibration_metrics(&r, &pairs)[0].1;
        assert!(ece > 0.0);
        assert!((run_ece(&bins) - ece).abs() < 1e-12, "{} vs {ece}", run_ece(&bins));
    }

    /// Wilson's interval against values worked by hand: p̂ = 0.5 over 10 trials gives
    /// (0.5 ± 1.96·√(0.025 + 0.0096)/1.384) = (0.2366, 0.7634); p̂ = 1 over 10 gives
    /// (0.7225, 1).
    #[test]
    fn wilson_interval_by_hand() {
        let (lo, hi) = wilson(0.5, 10.0);
        assert!((lo - 0.236_593).abs() < 1e-5 && (hi - 0.763_407).abs() < 1e-5, "{lo} {hi}");
        assert_eq!(wilson(1.0, 10.0).1, 1.0);
        let (lo, hi) = wilson(0.0, 10.0);
        assert_eq!(lo, 0.0, "the interval holds p̂ = 0 exactly");
        assert!((hi - 0.277_533).abs() < 1e-5, "{hi}");
        let (lo, hi) = wilson(1.0, 10.0);
        assert!((lo - 0.722_467).abs() < 1e-5 && (hi - 1.0).abs() < 1e-12, "{lo} {hi}");
    }
}
