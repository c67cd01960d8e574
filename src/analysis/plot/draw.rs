//! Drawing panels with plotters, generic over the backend (SVG and bitmap share one code path).

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use super::data::Stat;
use super::style::{FONT, LABEL_PX, TICK_PX, TITLE_PX, pe, tick};
use crate::error::Result;

/// One line: a mean per x with its band.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, Stat)>,
}

/// A horizontal reference across the panel (λ = 0, which a log axis cannot place).
#[derive(Clone, Debug)]
pub struct Baseline {
    pub label: String,
    pub color: RGBColor,
    pub stat: Stat,
}

/// A panel of lines over a numeric x.
#[derive(Clone, Debug, Default)]
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    /// Markers and error bars at each point (few x values) instead of a filled band.
    pub error_bars: bool,
    pub series: Vec<Series>,
    pub baselines: Vec<Baseline>,
    pub legend: bool,
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

/// A chart with the panel title and room for axis labels, the same on every panel.
fn chart_builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.caption(title, font(TITLE_PX))
        .margin(18)
        .x_label_area_size(LABEL_PX * 2.6)
        .y_label_area_size(LABEL_PX * 3.6);
    b
}

/// Draws a panel; `Ok(false)` (and a note in the panel) when it has nothing to show.
pub fn line_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &LinePanel) -> Result<bool> {
    let xs: Vec<f64> =
        p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0)).filter(|x| x.is_finite()).collect();
    let mut ys: Vec<f64> = Vec::new();
    for s in &p.series {
        for (_, st) in &s.points {
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
    ys.retain(|y| y.is_finite());
    if xs.is_empty() || ys.is_empty() {
        note(area, &p.title, "no data")?;
        return Ok(false);
    }
    let (xmin, xmax) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let (ymin, ymax) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
    let (ylo, yhi) = padded(ymin, ymax, 0.06);
    let mut builder = chart_builder(area, &p.title);
    if p.log_x {
        let (lo, hi) = (xmin / 2.0, xmax * 2.0);
        let mut chart = builder.build_cartesian_2d((lo..hi).log_scale(), ylo..yhi).map_err(pe)?;
        mesh(&mut chart, &p.x_label, &p.y_label)?;
        draw_contents(&mut chart, p, lo, hi)?;
        legend(&mut chart, p)?;
    } else {
        let (lo, hi) = padded(xmin, xmax, 0.02);
        let mut chart = builder.build_cartesian_2d(lo..hi, ylo..yhi).map_err(pe)?;
        mesh(&mut chart, &p.x_label, &p.y_label)?;
        draw_contents(&mut chart, p, lo, hi)?;
        legend(&mut chart, p)?;
    }
    Ok(true)
}

/// Axes, tick labels and a light grid, the same on every panel.
fn mesh<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
) -> Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style(font(LABEL_PX))
        .label_style(font(TICK_PX))
        .x_label_formatter(&|x| tick(*x))
        .y_label_formatter(&|y| tick(*y))
        .x_labels(6)
        .y_labels(6)
        .bold_line_style(BLACK.mix(0.08))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(2))
        .draw()
        .map_err(pe)
}

fn draw_contents<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    p: &LinePanel,
    x_lo: f64,
    x_hi: f64,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let stroke = 5;
    for b in &p.baselines {
        if let Some((lo, hi)) = b.stat.band {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x_lo, lo), (x_hi, hi)],
                    b.color.mix(if p.baselines.len() > 1 { 0.07 } else { 0.12 }).filled(),
                )))
                .map_err(pe)?;
        }
        let c = b.color;
        let drawn = chart
            .draw_series(DashedLineSeries::new(
                [(x_lo, b.stat.mean), (x_hi, b.stat.mean)],
                18,
                12,
                c.stroke_width(stroke),
            ))
            .map_err(pe)?;
        if !b.label.is_empty() {
            drawn
                .label(&b.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(stroke)));
        }
    }
    for s in &p.series {
        let c = s.color;
        let pts: Vec<(f64, Stat)> = s.points.iter().filter(|q| q.1.mean.is_finite()).copied().collect();
        if !p.error_bars {
            let upper: Vec<(f64, f64)> =
                pts.iter().filter_map(|(x, st)| st.band.map(|b| (*x, b.1))).collect();
            let lower: Vec<(f64, f64)> =
                pts.iter().rev().filter_map(|(x, st)| st.band.map(|b| (*x, b.0))).collect();
            if upper.len() >= 2 {
                let poly: Vec<(f64, f64)> = upper.into_iter().chain(lower).collect();
                chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled()))).map_err(pe)?;
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
            .map_err(pe)?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(stroke)));
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    p: &LinePanel,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    if p.legend {
        legend_box(chart)?;
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

/// Overlaid density histograms of two samples on a shared binning.
#[derive(Clone, Debug)]
pub struct HistPanel {
    pub title: String,
    pub x_label: String,
    /// `(label, colour, values)`; the first is drawn first (underneath).
    pub samples: Vec<(String, RGBColor, Vec<f64>)>,
    pub bins: usize,
}

pub fn hist_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &HistPanel) -> Result<()> {
    let all: Vec<f64> =
        p.samples.iter().flat_map(|s| s.2.iter().copied()).filter(|v| v.is_finite()).collect();
    if all.is_empty() {
        return note(area, &p.title, "no rewards stored");
    }
    let (lo, hi) = padded(
        all.iter().copied().fold(f64::INFINITY, f64::min),
        all.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        0.02,
    );
    let width = (hi - lo) / p.bins as f64;
    let densities: Vec<Vec<f64>> = p
        .samples
        .iter()
        .map(|(_, _, vals)| {
            let mut counts = vec![0.0; p.bins];
            let n = vals.iter().filter(|v| v.is_finite()).count().max(1) as f64;
            for v in vals.iter().filter(|v| v.is_finite()) {
                let i = (((v - lo) / width) as usize).min(p.bins - 1);
                counts[i] += 1.0 / (n * width);
            }
            counts
        })
        .collect();
    let ymax = densities.iter().flatten().copied().fold(0.0, f64::max) * 1.08;
    let mut chart =
        chart_builder(area, &p.title).build_cartesian_2d(lo..hi, 0.0..ymax.max(1e-9)).map_err(pe)?;
    mesh(&mut chart, &p.x_label, "density")?;
    for ((label, color, _), dens) in p.samples.iter().zip(&densities) {
        let c = *color;
        chart
            .draw_series(dens.iter().enumerate().map(|(i, d)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, *d)], c.mix(0.45).filled())
            }))
            .map_err(pe)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 8), (x + 20, y + 8)], c.mix(0.45).filled()));
    }
    legend_box(&mut chart)
}

/// The legend of the series labelled in a chart, top right, the same on every panel.
fn legend_box<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(font(TICK_PX))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .margin(10)
        .draw()
        .map_err(pe)
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
    let mut chart = chart_builder(area, &p.title).build_cartesian_2d(x0..x1, y0..y1).map_err(pe)?;
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

/// A legend beside the panels: a line sample and a label per entry `(colour, dashed, label)`.
pub fn legend_strip<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(RGBColor, bool, String)],
) -> Result<()> {
    let step = (TICK_PX * 1.5) as i32;
    let mut y = (TITLE_PX * 2.0) as i32;
    for (c, dashed, label) in entries {
        let x0 = 10;
        if *dashed {
            for k in 0..3 {
                let a = x0 + k * 16;
                area.draw(&PathElement::new(vec![(a, y), (a + 9, y)], c.stroke_width(5))).map_err(pe)?;
            }
        } else {
            area.draw(&PathElement::new(vec![(x0, y), (x0 + 41, y)], c.stroke_width(5))).map_err(pe)?;
        }
        area.draw(&Text::new(label.clone(), (x0 + 52, y - (TICK_PX * 0.55) as i32), font(TICK_PX)))
            .map_err(pe)?;
        y += step;
    }
    Ok(())
}
