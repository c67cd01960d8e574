//! How figures look: sizes for paper columns, the bundled font, a colour-blind-safe palette,
//! and labels with symbols and units.

use std::sync::Once;

use plotters::prelude::*;

use super::typeset::{sub, typeset};
use crate::error::Error;
pub use crate::experiment::figure::Width;
use crate::experiment::metric::GRAPH_KINDS;

/// Pixels per inch of the PNG output (and the unit of every size below).
pub const DPI: f64 = 300.0;

/// Font family name the bundled DejaVu Sans is registered under.
pub const FONT: &str = "sans-serif";

/// The bundled font, for plotters' text measurements and the rasterizer.
pub const FONT_BYTES: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

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
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
            .unwrap_or_else(|_| panic!("the bundled font is a valid TTF"));
    });
}

/// Converts a plotting error.
pub fn pe<E: std::fmt::Display>(e: E) -> Error {
    Error::report(format!("plotting: {e}"))
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
        "model.kind" => "model".into(),
        "seed" => "seed".into(),
        other => other.rsplit('.').next().unwrap_or(other).replace('_', " "),
    }
}

/// What a metric is, in symbols (subscripts marked): a panel's title.
pub fn metric_title(name: &str) -> String {
    let (a, b) = (sub("a"), sub("b"));
    match name {
        "loss_pair" => format!("BT loss −log σ(r{a} − r{b})"),
        "loss_reg" => format!("regularizer λ·(r{a} + r{b})²"),
        "loss_total" => "total loss".into(),
        "accuracy" => "pair accuracy".into(),
        "reward_mean" => "mean r".into(),
        "reward_std" => "std of r".into(),
        "reward_max_abs" => "max |r|".into(),
        "pair_sum_mean" => format!("mean (r{a} + r{b})"),
        "pair_sum_abs_mean" => format!("mean |r{a} + r{b}|"),
        "pair_diff_mean" => format!("mean (r{a} − r{b})"),
        "true_pearson" => "Pearson corr. of r and r*".into(),
        "true_pair_accuracy" => "pair accuracy vs r*".into(),
        "true_spearman" => "Spearman corr. of r and r*".into(),
        "true_pearson_within" => "Pearson, prompt-centred".into(),
        "true_within_prompt_accuracy" => "within-prompt order vs r*".into(),
        "offset_error" => "offset error vs g(x)".into(),
        "ece" => format!("ECE of σ(r{a} − r{b})"),
        "label_ece" => format!("ECE of σ(r{a} − r{b}) vs labels"),
        "label_brier" => format!("Brier score of σ(r{a} − r{b})"),
        "offset_part_abs_mean" => format!("offset part |r{a} + r{b}|/2"),
        "spread_part_abs_mean" => format!("spread part |r{a} − r{b}|/2"),
        "head_weight_norm" => "head weight norm ‖w‖".into(),
        "pair_diff_abs_mean" => format!("spread |r{a} − r{b}|"),
        other => match graph_kind(other) {
            // `m_one_sided`, `m_two_sided`, `m_odd_cycle`: what `m` is, then the kind.
            Some((base, kind)) => format!("{}, {kind}", metric_title(base)),
            None => typeset(&other.replace('_', " ")),
        },
    }
}

/// `(base metric, kind in words)` of a metric by comparison-graph component kind.
fn graph_kind(name: &str) -> Option<(&str, &'static str)> {
    GRAPH_KINDS
        .iter()
        .find_map(|&k| name.strip_suffix(k)?.strip_suffix('_').map(|b| (b, graph_kind_words(k))))
}

/// A comparison-graph component kind (a suffix of `GRAPH_KINDS`) in words, for titles: which
/// side the winners of a bipartite component sit on is what matters.
pub fn graph_kind_words(kind: &str) -> &'static str {
    match kind {
        "one_sided" => "one-sided bipartite",
        "two_sided" => "two-sided bipartite",
        "odd_cycle" => "odd cycle",
        _ => "unknown kind",
    }
}

/// The components of a kind, in words, for legends.
pub fn graph_kind_components(kind: &str) -> String {
    match kind {
        "odd_cycle" => "components with an odd cycle".into(),
        other => format!("{} components", graph_kind_words(other)),
    }
}

/// The unit or kind of a metric's values: its y-axis label (plain text).
pub fn metric_unit(name: &str) -> &'static str {
    if let Some((base, _)) = graph_kind(name) {
        return metric_unit(base);
    }
    match name {
        n if n.starts_with("loss_") => "nats",
        "accuracy" | "true_pair_accuracy" => "fraction of pairs",
        "true_within_prompt_accuracy" => "fraction of response pairs",
        "true_pearson" | "true_spearman" | "true_pearson_within" => "correlation",
        "ece" | "label_ece" => "probability",
        "label_brier" => "squared error",
        "head_weight_norm" => "norm",
        _ => "reward units",
    }
}

/// Opacity of a band's fill, drawn only where no two bands of a panel overlap.
pub const BAND_FILL: f64 = 0.18;
/// Opacity of a band's edges, drawn always: overlapping bands stay told apart by them.
pub const BAND_EDGE: f64 = 0.55;

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

/// A panel's chance level and its label.
#[derive(Clone, Copy, Debug)]
pub struct Chance {
    pub value: f64,
    pub label: &'static str,
}

/// The chance level of a metric, where one is read against: accuracies (pairwise and against
/// the truth, per graph kind too) at 0.5, the Bradley–Terry pair loss at ln 2 (a model that
/// says 50/50 to every pair).
pub fn chance(metric: &str) -> Option<Chance> {
    if metric.contains("accuracy") {
        Some(Chance { value: 0.5, label: "chance 0.5" })
    } else if metric == "loss_pair" {
        Some(Chance { value: std::f64::consts::LN_2, label: "ln 2: chance" })
    } else {
        None
    }
}

/// A tick label on an axis spanning `span`: a value within a billionth of the span of 0 is the
/// zero tick that floating-point steps missed (2.8e-17 on a [−1, 1] axis), written `0`.
pub fn axis_tick(x: f64, span: f64) -> String {
    tick(if x.abs() <= 1e-9 * span.abs() { 0.0 } else { x })
}

/// `x` rounded to `digits` significant digits, without trailing zeros: 18.2, 0.482, 4.01.
pub fn significant(x: f64, digits: i32) -> String {
    if x == 0.0 || !x.is_finite() {
        return tick(x);
    }
    let decimals = (digits - 1 - x.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.decimals$}");
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

    /// Every metric has a unit without underscores (y labels are plain text) and a title
    /// whose only underscores are none: subscripts are marked, not written.
    #[test]
    fn metric_labels_are_typeset() {
        for name in crate::experiment::metric::all_names() {
            assert!(!metric_unit(name).contains('_'), "{name}");
            assert!(!metric_title(name).contains('_'), "{name}: {}", metric_title(name));
        }
        assert_eq!(super::super::typeset::plain(&metric_title("pair_sum_abs_mean")), "mean |r_a + r_b|");
        for k in GRAPH_KINDS {
            assert_ne!(graph_kind_words(k), "unknown kind", "{k}");
        }
        assert_eq!(
            super::super::typeset::plain(&metric_title("pair_diff_abs_mean_two_sided")),
            "spread |r_a − r_b|, two-sided bipartite"
        );
        assert_eq!(metric_title("accuracy_one_sided"), "pair accuracy, one-sided bipartite");
        assert_eq!(graph_kind_components("odd_cycle"), "components with an odd cycle");
    }

    #[test]
    fn significant_digits() {
        for (x, s) in [
            (18.16, "18.2"),
            (0.4817, "0.482"),
            (4.01, "4.01"),
            (2.063, "2.06"),
            (1234.6, "1235"),
            (0.0, "0"),
        ] {
            assert_eq!(significant(x, 3), s, "{x}");
        }
    }

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

    #[test]
    fn a_zero_tick_missed_by_rounding_is_written_zero() {
        assert_eq!(axis_tick(2.8e-17, 2.0), "0");
        assert_eq!(axis_tick(-3e-12, 10.0), "0");
        assert_eq!(axis_tick(0.25, 2.0), "0.25");
        // On an axis that small, a small value is a real tick.
        assert_eq!(axis_tick(2e-9, 1e-8), "2e-9");
    }
}
