//! How figures look: sizes for paper columns, the bundled font, a colour-blind-safe palette,
//! labels with symbols and units, and writing SVG and 300-dpi PNG from one drawing function.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
pub use crate::experiment::figure::Width;

/// Pixels per inch of the PNG output (and the unit of every size below).
pub const DPI: f64 = 300.0;

/// Font family name the bundled DejaVu Sans is registered under.
pub const FONT: &str = "sans-serif";

/// Text sizes in pixels at 300 dpi: 8 pt titles and axis labels, 7 pt ticks and legends.
pub const TITLE_PX: f64 = 8.0 / 72.0 * DPI;
pub const LABEL_PX: f64 = 7.5 / 72.0 * DPI;
pub const TICK_PX: f64 = 6.5 / 72.0 * DPI;

/// Okabe & Ito's palette, distinguishable with the common colour-vision deficiencies.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];

/// Colour of the i-th series.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Pixel size of a figure `w` inches wide with `rows` panel rows of `row_in` inches.
pub fn size(width: Width, height_in: f64) -> (u32, u32) {
    ((width.inches() * DPI).round() as u32, (height_in * DPI).round() as u32)
}

static FONT_ONCE: Once = Once::new();

/// Registers the bundled DejaVu Sans (Bitstream Vera licence, assets/fonts/) with plotters.
/// Machines without system fonts render text the same way as any other.
pub fn register_font() {
    FONT_ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
        plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .unwrap_or_else(|_| panic!("the bundled font is a valid TTF"));
    });
}

/// Converts a plotting error.
pub fn pe<E: std::fmt::Display>(e: E) -> Error {
    Error::Run(format!("plotting: {e}"))
}

/// Draws the same figure as `<stem>.svg` and as `<stem>.png` (300 dpi, pHYs set), each written
/// to a temporary name and renamed, so no half-written figure is left behind.
pub fn render_both(
    stem: &Path,
    size: (u32, u32),
    draw: &dyn Fn(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
    draw_png: &dyn Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        draw(&root)?;
        root.present().map_err(pe)?;
    }
    let mut pixels = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        draw_png(&root)?;
        root.present().map_err(pe)?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, size.0, size.1);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let per_metre = (DPI / 0.0254).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: per_metre,
            yppu: per_metre,
            unit: png::Unit::Meter,
        }));
        let mut w = enc.write_header().map_err(pe)?;
        w.write_image_data(&pixels).map_err(pe)?;
    }
    write_atomic(&stem.with_extension("svg"), svg.as_bytes())?;
    write_atomic(&stem.with_extension("png"), &png_bytes)
}

/// Writes `path` through a temporary file in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp =
        path.with_extension(format!("{}.part", path.extension().and_then(|e| e.to_str()).unwrap_or("tmp")));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// A config key as a reader knows it: λ, β, ε, …
pub fn key_symbol(key: &str) -> String {
    match key {
        "loss.lambda" => "λ".into(),
        "data.beta" => "β".into(),
        "data.flip" => "ε".into(),
        "data.pairs_per_prompt" => "pairs/prompt".into(),
        "data.responses_per_prompt" => "responses/prompt".into(),
        "data.offset_scale" => "offset sd".into(),
        "seed" => "seed".into(),
        other => other.rsplit('.').next().unwrap_or(other).replace('_', " "),
    }
}

/// Axis label of a metric, with its unit.
pub fn metric_label(name: &str) -> String {
    match name {
        "loss_pair" => "BT loss −log σ(r_a − r_b) (nats)".into(),
        "loss_reg" => "regularizer λ·(r_a + r_b)² (nats)".into(),
        "loss_total" => "total loss (nats)".into(),
        "accuracy" => "pair accuracy (labels)".into(),
        "reward_mean" => "mean r (reward units)".into(),
        "reward_std" => "std r (reward units)".into(),
        "reward_max_abs" => "max |r| (reward units)".into(),
        "pair_sum_mean" => "mean (r_a + r_b) (reward units)".into(),
        "pair_sum_abs_mean" => "mean |r_a + r_b| (reward units)".into(),
        "pair_diff_mean" => "mean (r_a − r_b) (reward units)".into(),
        "true_pearson" => "Pearson r vs true r*".into(),
        "true_pair_accuracy" => "pair accuracy vs true r*".into(),
        "true_spearman" => "Spearman r vs true r*".into(),
        "true_pearson_within" => "Pearson, prompt-centred r vs r*".into(),
        "true_within_prompt_accuracy" => "within-prompt accuracy vs r*".into(),
        "offset_error" => "offset error vs g(x) (reward units)".into(),
        "ece" => "ECE of σ(r_a − r_b) vs true P".into(),
        "offset_part_abs_mean" => "offset part |r_a + r_b|/2 (reward units)".into(),
        "spread_part_abs_mean" => "spread part |r_a − r_b|/2 (reward units)".into(),
        "head_weight_norm" => "head weight norm ‖w‖".into(),
        "pair_diff_abs_mean" => "spread |r_a − r_b| (reward units)".into(),
        other => match graph_kind(other) {
            // `m_bipartite`, `m_odd_cycle`: the label of `m`, the kind before its unit.
            Some((base, kind)) => {
                let label = metric_label(base);
                match label.rsplit_once(" (") {
                    Some((head, unit)) if unit.ends_with(')') => format!("{head}, {kind} ({unit}"),
                    _ => format!("{label}, {kind}"),
                }
            }
            None => other.replace('_', " "),
        },
    }
}

/// `(base metric, kind in words)` of a metric by comparison-graph component kind.
fn graph_kind(name: &str) -> Option<(&str, &'static str)> {
    name.strip_suffix("_bipartite")
        .map(|b| (b, "bipartite"))
        .or_else(|| name.strip_suffix("_odd_cycle").map(|b| (b, "odd cycle")))
}

/// A short tick label: 4 significant digits at most, no trailing zeros.
pub fn tick(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-3..1e5).contains(&a) {
        let e = a.log10().floor() as i32;
        let m = x / 10f64.powi(e);
        return if (m - m.round()).abs() < 1e-9 {
            format!("{}e{e}", m.round())
        } else {
            format!("{m:.1}e{e}")
        };
    }
    let s = format!("{:.*}", (3 - a.log10().floor() as i32).max(0) as usize, x);
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A parameter value in a legend: `inf`, `0.001`, `[64]`.
pub fn value_label(v: &toml::Value) -> String {
    match v {
        toml::Value::Float(f) if f.is_infinite() => "∞".into(),
        toml::Value::Float(f) => tick(*f),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        for (x, s) in [
            (0.0, "0"),
            (0.001, "0.001"),
            (0.5, "0.5"),
            (1.0, "1"),
            (12.5, "12.5"),
            (1234.0, "1234"),
            (1e-4, "1e-4"),
            (2.5e6, "2.5e6"),
            (-3.0, "-3"),
        ] {
            assert_eq!(tick(x), s, "{x}");
        }
    }
}
