//! Drawing panels with plotters: lines with bands or error bars, baselines, reference lines,
//! histograms, scatter plots. Legends are the figure's ([`super::legend`]), never inside a
//! panel.

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::data::Stat;
use super::legend::Dash;
use super::style::{BAND_EDGE, BAND_FILL, Chance, FONT, LABEL_PX, TICK_PX, TITLE_PX, axis_tick, pe};
use crate::error::Result;

/// One line: a mean per x with its band.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, Stat)>,
}

/// A horizontal line with its band across the panel (λ = 0, which a log axis cannot place).
#[derive(Clone, Debug)]
pub struct Baseline {
    pub color: RGBColor,
    pub stat: Stat,
}

/// A horizontal reference value without a band (an identifiable ceiling), dotted.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub color: RGBColor,
    pub value: f64,
}

/// A panel of lines over a numeric x.
#[derive(Clone, Debug, Default)]
pub struct LinePanel {
    /// Title (subscripts marked).
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    /// A log y axis: values ≤ 0 are left out and band ends below the axis are cut at it.
    pub log_y: bool,
    /// Markers and error bars at each point (few x values) instead of a filled band.
    pub error_bars: bool,
    pub series: Vec<Series>,
    pub baselines: Vec<Baseline>,
    pub references: Vec<Reference>,
    /// What a model that knows nothing scores (accuracy 0.5, a pair loss of ln 2), drawn as a
    /// thin grey line labelled at its right end, and always inside the y range.
    pub chance: Option<Chance>,
}

fn font(px: f64) -> TextStyle<'static> {
    (FONT, px).into_font().into()
}

fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-12 {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * frac;
    (lo - d, hi + d)
}

/// Height of a panel's title strip, in pixels.
const TITLE_STRIP_PX: f64 = TITLE_PX * 1.6;

/// Draws the panel title centred in a strip at the top of `area` and returns a chart builder
/// on the rest, with room for axis labels, the same on every panel. The top margin keeps the
/// highest y tick label (centred on the frame's top edge) clear of the title.
pub(super) fn chart_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
) -> Result<ChartBuilder<'a, 'b, DB>> {
    let (w, _) = area.dim_in_pixel();
    let style = font(TITLE_PX).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(title.to_string(), (w as i32 / 2, (TITLE_STRIP_PX * 0.55) as i32), style))
        .map_err(pe)?;
    let mut b = ChartBuilder::on(area);
    b.margin(18)
        .margin_top(TITLE_STRIP_PX + TICK_PX * 0.7)
        .x_label_area_size(LABEL_PX * 2.6)
        .y_label_area_size(LABEL_PX * 3.6);
    Ok(b)
}

/// Draws a panel; `Ok(false)` (and a note in the panel) when it has nothing to show.
pub fn line_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &LinePanel) -> Result<bool> {
    let xs: Vec<f64> = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.0))
        .filter(|x| x.is_finite() && (!p.log_x || *x > 0.0))
        .collect();
    let mut ys: Vec<f64> = Vec::new();
    for s in &p.series {
        for (x, st) in &s.points {
            if p.log_x && *x <= 0.0 {
                continue;
            }
            ys.push(st.mean);
            if let Some((lo, hi)) = st.band {
                ys.extend([lo, hi]);
            }
        }
    }
    for b in &p.baselines {
        ys.push(b.stat.mean);
        if let Some((lo, hi)) = b.stat.band {
            ys.extend([lo, hi]);
        }
    }
    ys.extend(p.references.iter().map(|r| r.value));
    ys.extend(p.chance.map(|c| c.value));
    ys.retain(|y| y.is_finite() && (!p.log_y || *y > 0.0));
    if xs.is_empty() || ys.is_empty() {
        note(area, &p.title, "no data")?;
        return Ok(false);
    }
    let (xmin, xmax) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let (ymin, ymax) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
    let (ylo, yhi) = if p.log_y { (ymin / 1.25, ymax * 1.25) } else { padded(ymin, ymax, 0.06) };
    // Points at each end sit a little inside the frame (a factor, on a log axis).
    let pad = if p.error_bars { 2.5 } else { 1.15 };
    let (xlo, xhi) = if p.log_x { (xmin / pad, xmax * pad) } else { padded(xmin, xmax, 0.02) };
    let mut builder = chart_builder(area, &p.title)?;
    let frame = Frame { x_lo: xlo, x_hi: xhi, y_floor: if p.log_y { ylo } else { f64::NEG_INFINITY } };
    let (xlog, ylog) = ((xlo..xhi).log_scale(), (ylo..yhi).log_scale());
    match (p.log_x, p.log_y) {
        (true, true) => {
            let mut chart = builder
                .build_cartesian_2d(
                    xlog.with_key_points(log_ticks(xlo, xhi)),
                    ylog.with_key_points(log_ticks(ylo, yhi)),
                )
                .map_err(pe)?;
            mesh(&mut chart, &p.x_label, &p.y_label)?;
            draw_contents(&mut chart, p, frame)?;
        }
        (true, false) => {
            let mut chart = builder
                .build_cartesian_2d(xlog.with_key_points(log_ticks(xlo, xhi)), ylo..yhi)
                .map_err(pe)?;
            mesh(&mut chart, &p.x_label, &p.y_label)?;
            draw_contents(&mut chart, p, frame)?;
        }
        (false, true) => {
            let mut chart = builder
                .build_cartesian_2d(xlo..xhi, ylog.with_key_points(log_ticks(ylo, yhi)))
                .map_err(pe)?;
            mesh(&mut chart, &p.x_label, &p.y_label)?;
            draw_contents(&mut chart, p, frame)?;
        }
        (false, false) => {
            let mut chart = builder.build_cartesian_2d(xlo..xhi, ylo..yhi).map_err(pe)?;
            mesh(&mut chart, &p.x_label, &p.y_label)?;
            draw_contents(&mut chart, p, frame)?;
        }
    }
    Ok(true)
}

/// Tick values of a log axis over [lo, hi] (lo > 0): powers of ten, or 1-3, 1-2-5 or 1-2-3-5
/// within each decade, the sparsest that gives at least three ticks; on a range too narrow for
/// any of them, evenly spaced round values.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let ladders: [&[f64]; 4] = [&[1.0], &[1.0, 3.0], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 5.0]];
    let mut best = Vec::new();
    for ladder in ladders {
        let mut ticks = Vec::new();
        for e in (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32) {
            for m in ladder {
                // Dividing by an exact power of ten keeps 0.3 exactly 0.3.
                let t = if e >= 0 { m * 10f64.powi(e) } else { m / 10f64.powi(-e) };
                if t >= lo * (1.0 - 1e-12) && t <= hi * (1.0 + 1e-12) {
                    ticks.push(t);
                }
            }
        }
        best = ticks;
        if best.len() >= 3 {
            return best;
        }
    }
    if best.len() >= 2 {
        return best;
    }
    // Steps 5, 2, 1 × 10^k from the range's order of magnitude down, the first giving three.
    let top = (hi - lo).log10().ceil() as i32;
    for e in (top - 3..=top).rev() {
        for m in [5.0, 2.0, 1.0] {
            let step = if e >= 0 { m * 10f64.powi(e) } else { m / 10f64.powi(-e) };
            let (a, b) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
            if b - a + 1 >= 3 {
                return (a..=b).map(|i| i as f64 * step).collect();
            }
        }
    }
    best
}

/// The x extent of a chart, and the lowest y it can show (band ends below it are cut there;
/// −∞ on a linear axis).
#[derive(Clone, Copy)]
struct Frame {
    x_lo: f64,
    x_hi: f64,
    y_floor: f64,
}

/// Axes, tick labels and a light grid, the same on every panel.
pub(super) fn mesh<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (x_span, y_span) = {
        let (x, y) = (chart.x_range(), chart.y_range());
        (x.end - x.start, y.end - y.start)
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style(font(LABEL_PX))
        .label_style(font(TICK_PX))
        .x_label_formatter(&|x| axis_tick(*x, x_span))
        .y_label_formatter(&|y| axis_tick(*y, y_span))
        .x_labels(6)
        .y_labels(6)
        .bold_line_style(BLACK.mix(0.08))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(pe)
}

/// A horizontal line from `x_lo` to `x_hi` at `y`, stroked as `dash`.
fn hline<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    (x_lo, x_hi, y): (f64, f64, f64),
    dash: Dash,
    style: ShapeStyle,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    match dash.pattern() {
        None => {
            chart.draw_series(LineSeries::new([(x_lo, y), (x_hi, y)], style)).map_err(pe)?;
        }
        Some((on, off)) => {
            chart.draw_series(DashedLineSeries::new([(x_lo, y), (x_hi, y)], on, off, style)).map_err(pe)?;
        }
    }
    Ok(())
}

/// Whether two bands of a panel share some y at some x: two filled series bands at a common
/// x, a baseline's band and a series band anywhere, or two baselines. Translucent fills there
/// mix into a grey that belongs to no line, so the panel draws band edges only.
pub fn bands_overlap(p: &LinePanel) -> bool {
    let meets = |a: (f64, f64), b: (f64, f64)| a.0 <= b.1 && b.0 <= a.1;
    let bands: Vec<Vec<(f64, (f64, f64))>> = if p.error_bars {
        vec![]
    } else {
        p.series
            .iter()
            .map(|s| s.points.iter().filter_map(|(x, st)| st.band.map(|b| (*x, b))).collect())
            .collect()
    };
    let base: Vec<(f64, f64)> = p.baselines.iter().filter_map(|b| b.stat.band).collect();
    for (i, a) in bands.iter().enumerate() {
        for b in &bands[i + 1..] {
            if a.iter().any(|(x, ba)| b.iter().any(|(y, bb)| x == y && meets(*ba, *bb))) {
                return true;
            }
        }
        if a.iter().any(|(_, ba)| base.iter().any(|bb| meets(*ba, *bb))) {
            return true;
        }
    }
    base.iter().enumerate().any(|(i, a)| base[i + 1..].iter().any(|b| meets(*a, *b)))
}

fn draw_contents<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    p: &LinePanel,
    frame: Frame,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let (x_lo, x_hi) = (frame.x_lo, frame.x_hi);
    let cut = |y: f64| y.max(frame.y_floor);
    // A log axis shows positive values only.
    let shown = |y: f64| y.is_finite() && (frame.y_floor == f64::NEG_INFINITY || y > 0.0);
    let stroke = 5;
    let fill = !bands_overlap(p);
    let edge = |c: RGBColor| c.mix(BAND_EDGE).stroke_width(2);
    for b in &p.baselines {
        if !shown(b.stat.mean) {
            continue;
        }
        if let Some((lo, hi)) = b.stat.band.map(|(lo, hi)| (cut(lo), hi)) {
            if fill {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x_lo, lo), (x_hi, hi)],
                        b.color.mix(BAND_FILL).filled(),
                    )))
                    .map_err(pe)?;
            }
            for y in [lo, hi].into_iter().filter(|y| shown(*y)) {
                hline(chart, (x_lo, x_hi, y), Dash::Solid, edge(b.color))?;
            }
        }
        hline(chart, (x_lo, x_hi, b.stat.mean), Dash::Dashed, b.color.stroke_width(stroke))?;
    }
    if let Some(c) = p.chance.filter(|c| shown(c.value)) {
        hline(chart, (x_lo, x_hi, c.value), Dash::Solid, RGBColor(150, 150, 150).stroke_width(2))?;
        let style =
            font(TICK_PX * 0.8).color(&RGBColor(110, 110, 110)).pos(Pos::new(HPos::Right, VPos::Bottom));
        chart.draw_series(std::iter::once(Text::new(c.label, (x_hi, c.value), style))).map_err(pe)?;
    }
    for r in p.references.iter().filter(|r| shown(r.value)) {
        hline(chart, (x_lo, x_hi, r.value), Dash::Dotted, r.color.stroke_width(4))?;
    }
    for s in &p.series {
        let c = s.color;
        let pts: Vec<(f64, Stat)> = s
            .points
            .iter()
            .filter(|q| shown(q.1.mean) && (!p.log_x || q.0 > 0.0))
            .map(|&(x, st)| (x, Stat { band: st.band.map(|(lo, hi)| (cut(lo), hi)), ..st }))
            .collect();
        if !p.error_bars {
            let upper: Vec<(f64, f64)> =
                pts.iter().filter_map(|(x, st)| st.band.map(|b| (*x, b.1))).collect();
            let lower: Vec<(f64, f64)> =
                pts.iter().rev().filter_map(|(x, st)| st.band.map(|b| (*x, b.0))).collect();
            if upper.len() >= 2 {
                if fill {
                    let poly: Vec<(f64, f64)> = upper.iter().chain(&lower).copied().collect();
                    chart
                        .draw_series(std::iter::once(Polygon::new(poly, c.mix(BAND_FILL).filled())))
                        .map_err(pe)?;
                }
                for e in [upper, lower] {
                    chart.draw_series(LineSeries::new(e, edge(c))).map_err(pe)?;
                }
            }
        } else {
            chart
                .draw_series(pts.iter().filter_map(|(x, st)| {
                    st.band.map(|(lo, hi)| ErrorBar::new_vertical(*x, lo, st.mean, hi, c.stroke_width(3), 14))
                }))
                .map_err(pe)?;
            chart
                .draw_series(pts.iter().map(|(x, st)| Circle::new((*x, st.mean), 7, c.filled())))
                .map_err(pe)?;
        }
        chart
            .draw_series(LineSeries::new(pts.iter().map(|(x, st)| (*x, st.mean)), c.stroke_width(stroke)))
            .map_err(pe)?;
    }
    Ok(())
}

/// A panel that only says why it is empty.
pub fn note<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str, text: &str) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(title.to_string(), (20, 20), font(TITLE_PX))).map_err(pe)?;
    area.draw(&Text::new(text.to_string(), (w as i32 / 4, h as i32 / 2), font(LABEL_PX))).map_err(pe)?;
    Ok(())
}

/// A histogram of one sample over its own range, as the fraction of values per bin, on a y
/// scale shared with the figure's other panels.
#[derive(Clone, Debug)]
pub struct HistPanel {
    pub title: String,
    pub x_label: String,
    pub color: RGBColor,
    pub values: Vec<f64>,
    pub bins: usize,
    /// Upper end of the y axis, the same on every panel.
    pub y_max: f64,
}

impl HistPanel {
    /// The range binned: the finite values' range, padded by 2 %.
    pub fn range(&self) -> Option<(f64, f64)> {
        let v: Vec<f64> = self.values.iter().copied().filter(|v| v.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(padded(lo, hi, 0.02))
    }

    /// The fraction of the finite values in each of `bins` equal bins over [`Self::range`].
    pub fn fractions(&self) -> Vec<f64> {
        let Some((lo, hi)) = self.range() else { return vec![] };
        let width = (hi - lo) / self.bins as f64;
        let finite: Vec<f64> = self.values.iter().copied().filter(|v| v.is_finite()).collect();
        let mut out = vec![0.0; self.bins];
        for v in &finite {
            out[(((v - lo) / width) as usize).min(self.bins - 1)] += 1.0 / finite.len() as f64;
        }
        out
    }
}

pub fn hist_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &HistPanel) -> Result<()> {
    let Some((lo, hi)) = p.range() else {
        return note(area, &p.title, "no rewards stored");
    };
    let width = (hi - lo) / p.bins as f64;
    let mut chart = chart_builder(area, &p.title)?.build_cartesian_2d(lo..hi, 0.0..p.y_max).map_err(pe)?;
    mesh(&mut chart, &p.x_label, "fraction of responses")?;
    let c = p.color;
    chart
        .draw_series(p.fractions().iter().enumerate().map(|(i, f)| {
            let x0 = lo + i as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width, *f)], c.mix(0.55).filled())
        }))
        .map_err(pe)?;
    Ok(())
}

/// One highlighted prompt: label, colour and its responses' (true, learned) points.
pub type Highlight = (String, RGBColor, Vec<(f64, f64)>);

/// Learned against true reward: every response as a grey dot, a few prompts highlighted in
/// colour with their responses joined, so a prompt's offset shows as a shift of its points.
#[derive(Clone, Debug)]
pub struct ScatterPanel {
    pub title: String,
    pub background: Vec<(f64, f64)>,
    /// `(label, colour, points sorted by x)` per highlighted prompt.
    pub highlighted: Vec<Highlight>,
}

pub fn scatter_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &ScatterPanel) -> Result<()> {
    let pts: Vec<(f64, f64)> =
        p.background.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    if pts.is_empty() {
        return note(area, &p.title, "no rewards with a true value");
    }
    let (x0, x1) = padded(
        pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min),
        pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max),
        0.04,
    );
    let (y0, y1) = padded(
        pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
        0.04,
    );
    let mut chart = chart_builder(area, &p.title)?.build_cartesian_2d(x0..x1, y0..y1).map_err(pe)?;
    mesh(&mut chart, "true reward r* (units of r*)", "learned reward r (reward units)")?;
    chart
        .draw_series(
            pts.iter().map(|&(x, y)| Circle::new((x, y), 3, RGBColor(150, 150, 150).mix(0.5).filled())),
        )
        .map_err(pe)?;
    for (_, c, line) in &p.highlighted {
        let c = *c;
        chart.draw_series(LineSeries::new(line.iter().copied(), c.stroke_width(3))).map_err(pe)?;
        chart.draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 7, c.filled()))).map_err(pe)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_the_sparsest_ladder_with_three_ticks() {
        assert_eq!(log_ticks(0.0005, 2.0), [0.001, 0.01, 0.1, 1.0]);
        assert_eq!(log_ticks(80.0, 50_000.0), [100.0, 1000.0, 10_000.0]);
        assert_eq!(log_ticks(0.25, 4.0), [0.3, 1.0, 3.0]);
        let narrow = log_ticks(0.6, 1.9);
        assert_eq!(narrow.len(), 7, "{narrow:?}");
        assert!((narrow[0] - 0.6).abs() < 1e-12 && (narrow[6] - 1.8).abs() < 1e-12, "{narrow:?}");
        assert_eq!(log_ticks(0.011, 0.55), [0.03, 0.1, 0.3]);
        assert_eq!(log_ticks(0.15, 0.9), [0.2, 0.3, 0.5]);
    }

    fn band_series(band: (f64, f64)) -> Series {
        let st = Stat { mean: (band.0 + band.1) / 2.0, band: Some(band), n: 3 };
        Series { label: String::new(), color: BLACK, points: vec![(1.0, st), (2.0, st)] }
    }

    #[test]
    fn bands_overlap_where_they_share_a_y_at_an_x() {
        let panel = |series: Vec<Series>, baselines: Vec<(f64, f64)>, error_bars: bool| LinePanel {
            series,
            baselines: baselines
                .into_iter()
                .map(|b| Baseline {
                    color: BLACK,
                    stat: Stat { mean: (b.0 + b.1) / 2.0, band: Some(b), n: 3 },
                })
                .collect(),
            error_bars,
            ..LinePanel::default()
        };
        let (low, high, mid) = ((0.1, 0.2), (0.3, 0.4), (0.15, 0.35));
        assert!(!bands_overlap(&panel(vec![band_series(low), band_series(high)], vec![], false)));
        assert!(bands_overlap(&panel(vec![band_series(low), band_series(mid)], vec![], false)));
        // Bands at different x never meet.
        let mut moved = band_series(mid);
        moved.points.iter_mut().for_each(|p| p.0 += 10.0);
        assert!(!bands_overlap(&panel(vec![band_series(low), moved], vec![], false)));
        // Error bars are not fills; baselines still are.
        assert!(!bands_overlap(&panel(vec![band_series(low), band_series(mid)], vec![], true)));
        assert!(bands_overlap(&panel(vec![], vec![low, mid], true)));
        assert!(!bands_overlap(&panel(vec![], vec![low, high], true)));
        assert!(bands_overlap(&panel(vec![band_series(high)], vec![mid], false)));
        assert!(!bands_overlap(&panel(vec![band_series(high)], vec![low], false)));
    }

    #[test]
    fn histogram_fractions_by_hand() {
        // Values 0, 1, 1, 3 over [−0.06, 3.06] in 4 bins of 0.78: bins 0, 1, 1, 3.
        let p = HistPanel {
            title: String::new(),
            x_label: String::new(),
            color: BLACK,
            values: vec![0.0, 1.0, 1.0, 3.0, f64::NAN],
            bins: 4,
            y_max: 1.0,
        };
        let (lo, hi) = p.range().unwrap();
        assert!((lo + 0.06).abs() < 1e-12 && (hi - 3.06).abs() < 1e-12);
        assert_eq!(p.fractions(), [0.25, 0.5, 0.0, 0.25]);
    }
}
