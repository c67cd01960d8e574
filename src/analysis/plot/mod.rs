//! Paper figures from the store, declared in each spec (`[[figure]]`) or taken from the
//! default catalogue, written as SVG and 300-dpi PNG with a JSON sidecar.
//!
//! Figures compare regularized and unregularized training; every mean is over the seeds of a
//! cell's grid point (finished runs only), with its band stated in the figure's footer. A
//! figure is laid out top to bottom as its legend (never over data), its panels, and its
//! caption with the footer; the sidecar records what each panel drew.

pub mod ceiling;
pub mod data;
pub mod draw;
pub mod legend;
pub mod reliability;
pub mod render;
pub mod style;
pub mod typeset;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use serde::Serialize;

use crate::experiment::metric::{magnitude, range};
use ceiling::Ceilings;
use data::{Coverage, OrdValue, RunInfo, SpecCell, Statistic, stat};
use draw::{Baseline, HistPanel, LinePanel, Reference, ScatterPanel, Series};
use legend::{Dash, Entry, Swatch};
use style::{DPI, FONT, TICK_PX, color, key_symbol, metric_title, metric_unit, pe};
use typeset::{plain, typeset};

use crate::error::{Error, Result};
use crate::experiment::Spec;
use crate::experiment::figure::{FigureKind, FigureSpec, catalogue, default_x};
use crate::experiment::metric::GRAPH_KINDS;
use crate::store::Store;

/// One written figure.
#[derive(Debug)]
pub struct Written {
    pub svg: PathBuf,
    pub png: PathBuf,
    pub sidecar: PathBuf,
}

/// One figure drawn in memory: what [`render_all`] writes as files, and what a report inlines.
#[derive(Debug)]
pub struct Drawn {
    /// The figure's name, the stem of its files.
    pub name: String,
    /// Width and height in pixels at 300 dpi.
    pub size: (u32, u32),
    /// The SVG document's text, as the `.svg` file holds it.
    pub svg: String,
    /// The sidecar: how the figure was made, from which runs, what it drew (caption, footer,
    /// cells, notes), as the `.json` file holds it.
    pub sidecar: serde_json::Value,
}

impl Drawn {
    /// Writes `<out_dir>/<name>.svg`, `.png` and `.json`, each whole or not at all.
    pub fn write(&self, out_dir: &Path) -> Result<Written> {
        let stem = out_dir.join(&self.name);
        render::write_both(&stem, self.size, &self.svg)?;
        let json = serde_json::to_string_pretty(&self.sidecar).expect("sidecar serializes") + "\n";
        let sidecar = stem.with_extension("json");
        render::write_atomic(&sidecar, json.as_bytes())?;
        Ok(Written { svg: stem.with_extension("svg"), png: stem.with_extension("png"), sidecar })
    }
}

/// The sidecar JSON of a figure: how it was made, from which runs, and what it drew.
#[derive(Debug, Serialize)]
struct Sidecar<'a> {
    figure: &'a FigureSpec,
    experiment: &'a str,
    /// The version and the commit the binary was built from (`0.1.0+abc123def456`, `.dirty`
    /// when built with uncommitted changes), as runs record it.
    rmlab_version: &'static str,
    /// The caption as drawn (`{lines}` filled in).
    caption: String,
    /// The footer as drawn: what each point averages, its band, cells missing, runs left out.
    footer: String,
    query: String,
    band: &'static str,
    run_ids: Vec<i64>,
    seeds: Vec<i64>,
    /// The spec's cells the figure's `where` admits, how many it draws, and each missing one
    /// with its state.
    cells: &'a Coverage,
    legend: Vec<String>,
    panels: Vec<PanelRecord>,
    notes: Vec<String>,
}

/// What one panel drew, in plain text (subscripts as `r_a`).
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PanelRecord {
    Lines {
        title: String,
        y_label: String,
        /// Each line's label and its (x, mean) points.
        series: Vec<(String, Vec<(f64, f64)>)>,
        /// Means of the dashed x = 0 baselines.
        baselines: Vec<f64>,
        /// Values of the dotted identifiable-ceiling references.
        references: Vec<f64>,
        /// The thin grey chance line (accuracy 0.5, pair loss ln 2), when the panel has one.
        chance: Option<f64>,
        /// Whether the y axis is logarithmic (asked for, or a magnitude spanning decades).
        log_y: bool,
    },
    Histogram {
        title: String,
        range: (f64, f64),
        bins: usize,
        y_max: f64,
        n: usize,
    },
    Scatter {
        title: String,
        points: usize,
    },
    Reliability {
        title: String,
        runs: usize,
        /// Mean over runs of the ECE recomputed from their bins.
        ece: Option<f64>,
        bins: Vec<reliability::BinPoint>,
    },
}

/// Renders every figure of `experiment` into `out_dir`, each from exactly the spec's `cells`
/// (the newest finished run of each): runs of other configs stored under the same experiment
/// (an edited spec, another `--set`) are never drawn. `states` is the store's state of each
/// config hash ([`Store::cell_statuses`]), to say why a cell is missing. Fails (with a clear
/// message) when no cell has a finished run; a figure with nothing to show is drawn with a note
/// instead of panels.
pub fn render_all(
    conn: &Connection,
    experiment: &str,
    cells: &[SpecCell],
    states: &HashMap<String, String>,
    figures: &[FigureSpec],
    out_dir: &Path,
) -> Result<Vec<Written>> {
    let drawn = draw_all(conn, experiment, cells, states, figures)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    drawn.iter().map(|d| d.write(out_dir)).collect()
}

/// Draws every figure of `experiment` in memory, as [`render_all`] writes them: from exactly
/// the spec's `cells`, failing the same way when no cell has a finished run.
pub fn draw_all(
    conn: &Connection,
    experiment: &str,
    cells: &[SpecCell],
    states: &HashMap<String, String>,
    figures: &[FigureSpec],
) -> Result<Vec<Drawn>> {
    let (all_runs, coverage) = data::finished_runs(conn, experiment, cells, states, &BTreeMap::new())?;
    if all_runs.is_empty() {
        return Err(Error::file(
            conn.path().filter(|p| !p.is_empty()).unwrap_or("the store"),
            format!(
                "no finished run of experiment `{experiment}` for any of its spec's {} cells ({}): run `rmlab sweep` on the spec (with the same --set) first",
                coverage.cells,
                coverage.missing_by_state()
            ),
        ));
    }
    style::register_font();
    let mut drawn = Vec::new();
    let mut ceilings = Ceilings::new(conn);
    for fig in figures {
        // A list in `where` admits any of its values.
        let filters: BTreeMap<String, Vec<Sql>> = fig
            .filters
            .iter()
            .map(|(k, v)| {
                let values = match v {
                    toml::Value::Array(a) => a.iter().map(toml_to_sql).collect(),
                    v => vec![toml_to_sql(v)],
                };
                (k.clone(), values)
            })
            .collect();
        let (runs, coverage) = data::finished_runs(conn, experiment, cells, states, &filters)?;
        let mut notes = Vec::new();
        let horizon = match fig.kind {
            FigureKind::Final | FigureKind::GraphKinds => horizon(&data::final_steps(conn, &runs)?),
            _ => String::new(),
        };
        let footer = footer(fig, &runs, &coverage, &horizon, &mut notes);
        let fig_built = match fig.kind {
            FigureKind::Curves => curve_panels(conn, fig, &runs, &mut ceilings)?,
            FigureKind::Final | FigureKind::GraphKinds => {
                final_panels(conn, fig, &runs, &mut ceilings, &mut notes)?
            }
            FigureKind::Distribution => distribution_panels(conn, fig, &runs, &mut notes)?,
            FigureKind::LearnedVsTrue => scatter_panels(conn, fig, &runs, &mut notes)?,
            FigureKind::Reliability => {
                let line_keys = line_keys(fig, &runs, true);
                let (panels, rows) = reliability::panels(conn, fig, &runs, &line_keys, &mut notes)?;
                Built { panels: Panels::Reliability(panels), rows, legend: reliability::legend(), line_keys }
            }
        };
        notes.extend(ceilings.take_notes());
        let caption = caption(fig, &fig_built.line_keys);
        let width_px = (fig.width.inches() * DPI).round() as u32;
        let layout = Layout::new(&fig_built, &caption, &footer, width_px);
        let size = (width_px, layout.height());
        let svg = render::svg(size, &|a| draw_figure(a, &fig_built, &layout))?;
        let sidecar = Sidecar {
            figure: fig,
            experiment,
            rmlab_version: concat!(env!("CARGO_PKG_VERSION"), env!("RMLAB_BUILD")),
            caption: plain(&caption),
            footer: plain(&footer),
            query: format!(
                "the newest finished run of each cell of the spec of experiment `{experiment}`{}; metric values from table `{}`",
                if fig.filters.is_empty() { String::new() } else { format!(" with {:?}", fig.filters) },
                match (fig.kind, fig.stat) {
                    (FigureKind::Curves, _) => "metrics",
                    (FigureKind::Final | FigureKind::GraphKinds, Statistic::Final) =>
                        "summaries (final_value)",
                    (FigureKind::Final | FigureKind::GraphKinds, Statistic::Best) => "summaries (best_value)",
                    (FigureKind::Reliability, _) => "summaries (final_value of reliability_*)",
                    _ => "rewards",
                }
            ),
            band: fig.band.describe(),
            run_ids: runs.iter().map(|r| r.id).collect(),
            seeds: runs.iter().map(|r| r.seed).collect::<BTreeSet<_>>().into_iter().collect(),
            cells: &coverage,
            legend: fig_built.legend.iter().map(|e| plain(&e.label)).collect(),
            panels: fig_built.panels.records(),
            notes,
        };
        let sidecar = serde_json::to_value(&sidecar).expect("sidecar serializes");
        drawn.push(Drawn { name: fig.name.clone(), size, svg, sidecar });
    }
    Ok(drawn)
}

fn toml_to_sql(v: &toml::Value) -> Sql {
    match v {
        toml::Value::Integer(i) => Sql::Integer(*i),
        toml::Value::Float(f) => Sql::Real(*f),
        toml::Value::Boolean(b) => Sql::Integer(i64::from(*b)),
        toml::Value::String(s) => Sql::Text(s.clone()),
        other => Sql::Text(other.to_string()),
    }
}

/// The caption as drawn: `{lines}` becomes the symbols of the keys with a line each, and the
/// pair notation is typeset.
fn caption(fig: &FigureSpec, line_keys: &[String]) -> String {
    let lines = if line_keys.is_empty() {
        "configuration".to_string()
    } else {
        line_keys.iter().map(|k| key_symbol(k)).collect::<Vec<_>>().join(", ")
    };
    let text = if fig.caption.is_empty() { fig.name.clone() } else { fig.caption.replace("{lines}", &lines) };
    typeset(&text)
}

/// The line under every figure: what the points and bands are, n, and which runs were left out.
/// ` at step 300`, or ` at steps 120–300` when some runs stopped early; empty without runs.
fn horizon(steps: &BTreeSet<i64>) -> String {
    match (steps.first(), steps.last()) {
        (Some(a), Some(b)) if a == b => format!(" at step {a}"),
        (Some(a), Some(b)) => format!(" at steps {a}–{b} (runs that stopped early end sooner)"),
        _ => String::new(),
    }
}

fn footer(
    fig: &FigureSpec,
    runs: &[RunInfo],
    coverage: &Coverage,
    horizon: &str,
    notes: &mut Vec<String>,
) -> String {
    let seeds: BTreeSet<i64> = runs.iter().map(|r| r.seed).collect();
    let value = match fig.stat {
        Statistic::Final => format!("final value{horizon}"),
        Statistic::Best => format!(
            "best value over its evaluations on the split shown (optimistic: chosen on that split; last evaluation{horizon})"
        ),
    };
    let points = Points::of(fig, runs);
    let mut s = match fig.kind {
        FigureKind::Curves | FigureKind::Final | FigureKind::GraphKinds if points.most < 2 => {
            notes.push("single seed (one run per point): no band drawn".into());
            "One run per point: no band.".to_string()
        }
        FigureKind::Curves => {
            format!(
                "Lines: mean over {} at each step; bands: {} (outlined only where bands overlap).",
                points.describe(),
                fig.band.describe()
            )
        }
        FigureKind::Final | FigureKind::GraphKinds => format!(
            "Points: mean of each run's {value} over {} at each point; bars and band (outlined only where \
             bands overlap): {}.",
            points.describe(),
            fig.band.describe()
        ),
        FigureKind::Distribution => format!(
            "Final rewards, all {} seeds of each panel pooled, {DIST_BINS} bins over each panel's own range; \
             y: fraction of responses per bin, one scale for all panels.",
            seeds.len()
        ),
        FigureKind::Reliability => reliability::footer(fig.band.describe()),
        FigureKind::LearnedVsTrue => {
            "One run per panel (lowest seed). Grey: every response; colour: 6 prompts, each joined by a line."
                .to_string()
        }
    };
    if !points.pooled.is_empty()
        && matches!(fig.kind, FigureKind::Curves | FigureKind::Final | FigureKind::GraphKinds)
    {
        let keys: Vec<String> = points.pooled.iter().map(|k| format!("`{k}`")).collect();
        s.push_str(&format!(
            " Each point pools cells that differ in {} (the figure's lines do not split on it).",
            keys.join(", ")
        ));
        notes.push(format!("points pool cells that differ in {}", keys.join(", ")));
    }
    if !coverage.missing.is_empty() {
        s.push_str(&format!(
            " Shows {} of the spec's {} cells; missing: {}.",
            coverage.shown,
            coverage.cells,
            coverage.missing_by_state()
        ));
        notes.push(format!(
            "{} of {} cells missing ({}); the sidecar's cells.missing lists them",
            coverage.missing.len(),
            coverage.cells,
            coverage.missing_by_state()
        ));
    }
    s
}

/// The runs behind each drawn point (a line's runs at one x): how many, and the keys in which
/// runs of one point differ besides the seed, when a point holds two runs of one seed.
struct Points {
    fewest: usize,
    most: usize,
    /// Swept keys whose values differ within a point holding two runs of one seed.
    pooled: BTreeSet<String>,
}

impl Points {
    fn of(fig: &FigureSpec, runs: &[RunInfo]) -> Points {
        let per_x = matches!(fig.kind, FigureKind::Final | FigureKind::GraphKinds);
        let mut keys = line_keys(fig, runs, per_x);
        if per_x {
            keys.push(fig.x.clone());
        }
        let mut points = Points { fewest: usize::MAX, most: 0, pooled: BTreeSet::new() };
        for members in groups(runs, &keys).values() {
            points.fewest = points.fewest.min(members.len());
            points.most = points.most.max(members.len());
            let seeds: BTreeSet<i64> = members.iter().map(|r| r.seed).collect();
            if seeds.len() < members.len() {
                let swept: BTreeSet<&String> = members.iter().flat_map(|r| &r.swept).collect();
                for k in swept.into_iter().filter(|k| *k != "seed") {
                    let values: BTreeSet<&OrdValue> =
                        members.iter().filter_map(|r| r.params.get(k)).collect();
                    if values.len() > 1 {
                        points.pooled.insert(k.clone());
                    }
                }
            }
        }
        if points.most == 0 {
            points.fewest = 0;
        }
        points
    }

    /// `5 runs` or `3–5 runs`, and whether they are one per seed.
    fn describe(&self) -> String {
        let n = if self.fewest == self.most {
            format!("{} runs", self.most)
        } else {
            format!("{}–{} runs", self.fewest, self.most)
        };
        if self.pooled.is_empty() { format!("{n} (one per seed)") } else { n }
    }
}

/// The y-axis label of a metric: its unit, and the scale when it is a log axis.
fn axis_label(metric: &str, log_y: bool) -> String {
    let unit = metric_unit(metric);
    if log_y { format!("{unit} (log scale)") } else { unit.to_string() }
}

/// How many decades the means of a magnitude must span for its panel to get a log axis
/// unasked: at two, a linear axis flattens the smaller lines onto zero.
const LOG_Y_DECADES: f64 = 2.0;

/// Sets the y scale of each panel, `metrics[i]` being the metric panel `i` shows: log when
/// the figure asks for it (`log_y`), or when the metric is a magnitude whose drawn means, over
/// all of the metric's panels (so its splits share a scale), are positive and span at least
/// [`LOG_Y_DECADES`] decades (max |r| of λ = 0 and λ = 1 runs, say). Means ≤ 0 keep the axis
/// linear, since a log axis would drop them.
fn set_y_scales(fig: &FigureSpec, panels: &mut [LinePanel], metrics: &[&str]) {
    let drawn_means = |p: &LinePanel| -> Vec<f64> {
        p.series
            .iter()
            .flat_map(|s| s.points.iter().filter(|(x, _)| !p.log_x || *x > 0.0).map(|(_, st)| st.mean))
            .chain(p.baselines.iter().map(|b| b.stat.mean))
            .filter(|m| m.is_finite())
            .collect()
    };
    for &metric in metrics {
        let means: Vec<f64> = panels
            .iter()
            .zip(metrics)
            .filter(|(_, m)| **m == metric)
            .flat_map(|(p, _)| drawn_means(p))
            .collect();
        let (lo, hi) =
            means.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &m| (a.min(m), b.max(m)));
        let spans = !means.is_empty() && lo > 0.0 && (hi / lo).log10() >= LOG_Y_DECADES;
        let log_y = fig.log_y.iter().any(|m| m == metric) || (magnitude(metric) && spans);
        for (p, _) in panels.iter_mut().zip(metrics).filter(|(_, m)| **m == metric) {
            p.log_y = log_y;
            p.y_label = axis_label(metric, log_y);
        }
    }
}

fn group_label(keys: &[String], values: &[OrdValue]) -> String {
    keys.iter()
        .zip(values)
        .map(|(k, v)| format!("{} = {}", key_symbol(k), v.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The keys that get a line each: as declared, or else every swept key but the seed (and `x`),
/// so that no swept axis is silently averaged over as if it were a seed.
fn line_keys(fig: &FigureSpec, runs: &[RunInfo], except_x: bool) -> Vec<String> {
    if !fig.lines.is_empty() {
        return fig.lines.clone();
    }
    let swept: BTreeSet<String> = runs.iter().flat_map(|r| r.swept.iter().cloned()).collect();
    swept
        .into_iter()
        .filter(|k| k != "seed" && !(except_x && *k == fig.x) && !fig.filters.contains_key(k))
        .collect()
}

fn groups<'r>(runs: &'r [RunInfo], keys: &[String]) -> BTreeMap<Vec<OrdValue>, Vec<&'r RunInfo>> {
    let mut groups: BTreeMap<Vec<OrdValue>, Vec<&RunInfo>> = BTreeMap::new();
    for r in runs {
        groups.entry(r.key(keys)).or_default().push(r);
    }
    groups
}

/// The identifiable ceiling of `metric` on `split` for each group (mean over its runs), as
/// dotted references: one black line when every group has the same ceiling, else one per group
/// in its colour.
fn references(
    ceilings: &mut Ceilings,
    groups: &BTreeMap<Vec<OrdValue>, Vec<&RunInfo>>,
    split: &str,
    metric: &str,
) -> Result<Vec<Reference>> {
    let mut per_group = Vec::new();
    for (i, members) in groups.values().enumerate() {
        let mut v = Vec::new();
        for r in members {
            if let Some(c) = ceilings.of(r.id, split, metric)? {
                v.push(c);
            }
        }
        if !v.is_empty() {
            per_group.push(Reference { color: color(i), value: v.iter().sum::<f64>() / v.len() as f64 });
        }
    }
    let first = per_group.first().map(|r| r.value);
    if let Some(f) = first
        && per_group.iter().all(|r| (r.value - f).abs() <= 1e-9 * f.abs().max(1.0))
    {
        return Ok(vec![Reference { color: BLACK, value: f }]);
    }
    Ok(per_group)
}

/// The legend entry of the ceiling references drawn in `panels`, if any.
fn ceiling_entry(panels: &[LinePanel]) -> Option<Entry> {
    let refs: Vec<&Reference> = panels.iter().flat_map(|p| &p.references).collect();
    let first = refs.first()?;
    let one_colour = refs.iter().all(|r| r.color == BLACK);
    Some(Entry {
        swatch: Swatch::Line {
            color: if one_colour { first.color } else { RGBColor(90, 90, 90) },
            dash: Dash::Dotted,
            marker: false,
            band: false,
        },
        label: format!(
            "identifiable ceiling: the score of r* − g(x){}",
            if one_colour { "" } else { " (in a line's colour where the lines' ceilings differ)" }
        ),
    })
}

/// A figure's panels and legend, ready to draw.
struct Built {
    panels: Panels,
    rows: usize,
    legend: Vec<Entry>,
    line_keys: Vec<String>,
}

fn curve_panels(
    conn: &Connection,
    fig: &FigureSpec,
    runs: &[RunInfo],
    ceilings: &mut Ceilings,
) -> Result<Built> {
    let lines = line_keys(fig, runs, false);
    let groups = groups(runs, &lines);
    let mut panels = Vec::new();
    for split in &fig.splits {
        for metric in &fig.metrics {
            let curves = data::metric_curves(conn, runs, split, metric)?;
            let mut series = Vec::new();
            for (i, (key, members)) in groups.iter().enumerate() {
                let mut by_step: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
                for r in members {
                    for &(step, v) in curves.get(&r.id).map(Vec::as_slice).unwrap_or(&[]) {
                        by_step.entry(step).or_default().push(v);
                    }
                }
                let points: Vec<(f64, data::Stat)> = by_step
                    .iter()
                    .filter_map(|(s, v)| stat(v, fig.band, range(metric)).map(|st| (*s as f64, st)))
                    .collect();
                series.push(Series {
                    label: format!("{} (n={})", group_label(&lines, key), members.len()),
                    color: color(i),
                    points,
                });
            }
            panels.push(LinePanel {
                title: format!("{} ({split})", metric_title(metric)),
                x_label: if fig.log_x { "training step (log scale)".into() } else { "training step".into() },
                y_label: axis_label(metric, false),
                log_x: fig.log_x,
                log_y: false,
                error_bars: false,
                references: references(ceilings, &groups, split, metric)?,
                series,
                baselines: vec![],
                chance: style::chance(metric),
            });
        }
    }
    let shown: Vec<&str> = fig.splits.iter().flat_map(|_| fig.metrics.iter().map(String::as_str)).collect();
    set_y_scales(fig, &mut panels, &shown);
    let mut legend: Vec<Entry> = panels
        .first()
        .map(|p| {
            p.series
                .iter()
                .map(|s| Entry {
                    swatch: Swatch::Line { color: s.color, dash: Dash::Solid, marker: false, band: true },
                    label: s.label.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    legend.extend(ceiling_entry(&panels));
    // One metric: its splits side by side rather than stacked full-width panels.
    let rows = if fig.metrics.len() == 1 { 1 } else { fig.splits.len() };
    Ok(Built { panels: Panels::Lines(panels), rows, legend, line_keys: lines })
}

/// One line of a final-value figure: some runs, and the metric suffix it reads (`graph_kinds`
/// figures read `m_one_sided`, `m_two_sided` and `m_odd_cycle` for each metric `m`).
struct FinalSource<'r> {
    /// Legend label; `None` for the only line of a figure without `lines`.
    label: Option<String>,
    suffix: Option<&'static str>,
    runs: Vec<&'r RunInfo>,
}

/// `final` and `graph_kinds` figures: per split (a row each) and metric, final (or best)
/// values against `fig.x` on a log axis, x = 0 drawn apart as a dashed baseline with its band,
/// a line per source with error bars over seeds, and the metric's identifiable ceiling.
fn final_panels(
    conn: &Connection,
    fig: &FigureSpec,
    runs: &[RunInfo],
    ceilings: &mut Ceilings,
    notes: &mut Vec<String>,
) -> Result<Built> {
    let lines = line_keys(fig, runs, true);
    let groups = groups(runs, &lines);
    let by_kind = fig.kind == FigureKind::GraphKinds;
    let lines_ref = &lines;
    let sources: Vec<FinalSource> = if by_kind {
        GRAPH_KINDS
            .iter()
            .flat_map(|&kind| {
                let lines = lines_ref;
                groups.iter().map(move |(key, members)| FinalSource {
                    label: Some(if lines.is_empty() {
                        style::graph_kind_components(kind)
                    } else {
                        format!("{}, {}", style::graph_kind_words(kind), group_label(lines, key))
                    }),
                    suffix: Some(kind),
                    runs: members.clone(),
                })
            })
            .collect()
    } else {
        groups
            .iter()
            .map(|(key, members)| FinalSource {
                label: (!lines.is_empty()).then(|| group_label(&lines, key)),
                suffix: None,
                runs: members.clone(),
            })
            .collect()
    };
    let xsym = key_symbol(&fig.x);
    let which = match fig.stat {
        Statistic::Final => "final",
        Statistic::Best => "best",
    };
    let mut missing_baseline = false;
    let mut panels = Vec::new();
    // Per source, from the first panel: n per point and n of the baseline, for the legend.
    let mut counts: Vec<(usize, Option<usize>)> = Vec::new();
    for split in &fig.splits {
        for metric in &fig.metrics {
            let mut values: BTreeMap<Option<&str>, BTreeMap<i64, f64>> = BTreeMap::new();
            let mut series = Vec::new();
            let mut baselines = Vec::new();
            let mut panel_counts = Vec::new();
            for (i, src) in sources.iter().enumerate() {
                let vals = match values.entry(src.suffix) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let name = src.suffix.map_or(metric.clone(), |k| format!("{metric}_{k}"));
                        e.insert(data::summary_values(conn, runs, split, &name, fig.stat)?)
                    }
                };
                let mut by_x: BTreeMap<OrdValue, Vec<f64>> = BTreeMap::new();
                for r in &src.runs {
                    if let (Some(x), Some(v)) = (r.params.get(&fig.x), vals.get(&r.id)) {
                        by_x.entry(x.clone()).or_default().push(*v);
                    }
                }
                let mut points = Vec::new();
                let (mut n_min, mut n_base) = (usize::MAX, None);
                for (x, v) in &by_x {
                    let Some(xv) = x.as_f64() else { continue };
                    let Some(st) = stat(v, fig.band, range(metric)) else { continue };
                    if xv == 0.0 {
                        n_base = Some(st.n);
                        baselines.push(Baseline { color: color(i), stat: st });
                    } else {
                        n_min = n_min.min(st.n);
                        points.push((xv, st));
                    }
                }
                if n_base.is_none() {
                    missing_baseline = true;
                }
                panel_counts.push((if n_min == usize::MAX { 0 } else { n_min }, n_base));
                series.push(Series { label: src.label.clone().unwrap_or_default(), color: color(i), points });
            }
            if counts.is_empty() {
                counts = panel_counts;
            }
            panels.push(LinePanel {
                title: format!("{which} {} ({split})", metric_title(metric)),
                x_label: format!("{xsym} (log scale)"),
                y_label: axis_label(metric, false),
                log_x: true,
                log_y: false,
                error_bars: true,
                references: if by_kind { vec![] } else { references(ceilings, &groups, split, metric)? },
                series,
                baselines,
                chance: style::chance(metric),
            });
        }
    }
    let shown: Vec<&str> = fig.splits.iter().flat_map(|_| fig.metrics.iter().map(String::as_str)).collect();
    set_y_scales(fig, &mut panels, &shown);
    if missing_baseline {
        notes.push(format!("no {xsym} = 0 runs in some lines: no unregularized baseline drawn for them"));
    }
    let unregularized = if fig.x == "loss.lambda" { ", unregularized" } else { "" };
    let mut legend = Vec::new();
    let line = |color, dash, marker, band, label: String| Entry {
        swatch: Swatch::Line { color, dash, marker, band },
        label,
    };
    match sources.first() {
        Some(FinalSource { label: None, .. }) => {
            let (n, n_base) = counts.first().copied().unwrap_or((0, None));
            legend.push(line(color(0), Dash::Solid, true, false, format!("{xsym} > 0 (n={n} per point)")));
            if let Some(nb) = n_base {
                legend.push(line(
                    color(0),
                    Dash::Dashed,
                    false,
                    true,
                    format!("{xsym} = 0{unregularized} (n={nb})"),
                ));
            }
        }
        Some(_) => {
            for (i, (src, (n, n_base))) in sources.iter().zip(&counts).enumerate() {
                let name = src.label.clone().unwrap_or_default();
                // A line with only λ = 0 runs (regularizer = none) is a baseline alone.
                let label = match (n, n_base) {
                    (0, Some(nb)) => format!("{name} ({xsym} = 0 only, n={nb})"),
                    _ => format!("{name} (n={n})"),
                };
                legend.push(line(color(i), Dash::Solid, true, false, label));
            }
            let grey = RGBColor(90, 90, 90);
            legend.push(line(grey, Dash::Solid, true, false, format!("{xsym} > 0")));
            if counts.iter().any(|c| c.1.is_some()) {
                legend.push(line(
                    grey,
                    Dash::Dashed,
                    false,
                    true,
                    format!("{xsym} = 0{unregularized}, in each line's colour"),
                ));
            }
        }
        None => {}
    }
    legend.extend(ceiling_entry(&panels));
    Ok(Built { panels: Panels::Lines(panels), rows: fig.splits.len(), legend, line_keys: lines })
}

/// Bins of each reward histogram.
const DIST_BINS: usize = 30;
/// Most panels in one row of a distribution figure.
const DIST_COLS: usize = 5;

fn distribution_panels(
    conn: &Connection,
    fig: &FigureSpec,
    runs: &[RunInfo],
    notes: &mut Vec<String>,
) -> Result<Built> {
    let split = &fig.splits[0];
    let lambda = default_x();
    // λ last, so that panels of one setting of the other keys sit together, in λ order.
    let mut keys: Vec<String> = line_keys(fig, runs, true);
    keys.push(lambda.clone());
    let lambdas: BTreeSet<OrdValue> =
        runs.iter().map(|r| r.params.get(&lambda).cloned().unwrap_or(OrdValue::Missing)).collect();
    let mut by_key: BTreeMap<Vec<OrdValue>, Vec<f64>> = BTreeMap::new();
    for r in runs {
        let vals = data::rewards(conn, r.id, split)?;
        by_key.entry(r.key(&keys)).or_default().extend(vals.iter().map(|v| v.1));
    }
    let mut panels: Vec<HistPanel> = by_key
        .iter()
        .map(|(k, vals)| {
            let lam = k.last().expect("λ is a key");
            let i = lambdas.iter().position(|l| l == lam).unwrap_or(0);
            let sd = style::significant(population_sd(vals), 3);
            let others = group_label(&keys[..keys.len() - 1], &k[..k.len() - 1]);
            HistPanel {
                title: format!(
                    "{}λ = {} (sd {sd})",
                    if others.is_empty() { String::new() } else { format!("{others}, ") },
                    lam.label()
                ),
                x_label: format!("final reward r ({split})"),
                // λ = 0 in grey, the others in palette order, the same in every figure.
                color: if lam.as_f64() == Some(0.0) { RGBColor(110, 110, 110) } else { color(i) },
                values: vals.clone(),
                bins: DIST_BINS,
                y_max: 1.0,
            }
        })
        .collect();
    let y_max = panels.iter().flat_map(|p| p.fractions()).fold(0.0, f64::max) * 1.08;
    for p in &mut panels {
        p.y_max = y_max.max(1e-9);
    }
    if panels.is_empty() {
        notes.push("no rewards stored for these runs".into());
    }
    let rows = panels.len().div_ceil(DIST_COLS).max(1);
    keys.pop();
    Ok(Built { panels: Panels::Hists(panels), rows, legend: vec![], line_keys: keys })
}

fn population_sd(v: &[f64]) -> f64 {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    crate::eval::stats::population_std(&f)
}

fn scatter_panels(
    conn: &Connection,
    fig: &FigureSpec,
    runs: &[RunInfo],
    notes: &mut Vec<String>,
) -> Result<Built> {
    let split = &fig.splits[0];
    let key = vec![default_x()];
    let others = line_keys(fig, runs, true);
    // The lowest seed of λ = 0 and of the largest λ, at the first setting of the other keys.
    let first_other = runs.iter().map(|r| r.key(&others)).min();
    let eligible: Vec<&RunInfo> = runs.iter().filter(|r| Some(r.key(&others)) == first_other).collect();
    let mut picks: Vec<&RunInfo> = Vec::new();
    let lambdas: BTreeSet<Vec<OrdValue>> = eligible.iter().map(|r| r.key(&key)).collect();
    for lam in [lambdas.first(), lambdas.last()].into_iter().flatten() {
        if let Some(r) = eligible.iter().filter(|r| &r.key(&key) == lam).min_by_key(|r| r.seed)
            && !picks.iter().any(|p| p.id == r.id)
        {
            picks.push(r);
        }
    }
    if !others.is_empty() {
        notes.push(format!(
            "panels show {} only (other settings of {} not drawn)",
            group_label(&others, first_other.as_deref().unwrap_or(&[])),
            others.iter().map(|k| key_symbol(k)).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut panels = Vec::new();
    for r in picks {
        let rows = data::rewards(conn, r.id, split)?;
        let with_truth: Vec<(i64, f64, f64)> =
            rows.iter().filter_map(|(p, y, t)| t.map(|t| (*p, t, *y))).collect();
        if with_truth.is_empty() {
            notes.push(format!("run {} has no true rewards (not synthetic data)", r.id));
            continue;
        }
        let prompts: BTreeSet<i64> = with_truth.iter().map(|x| x.0).collect();
        let highlighted = prompts
            .iter()
            .take(6)
            .enumerate()
            .map(|(i, p)| {
                let mut pts: Vec<(f64, f64)> =
                    with_truth.iter().filter(|x| x.0 == *p).map(|x| (x.1, x.2)).collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (format!("prompt {p}"), color(i), pts)
            })
            .collect();
        let other = group_label(&others, &r.key(&others));
        panels.push(ScatterPanel {
            title: format!(
                "{}λ = {}, seed {} ({split})",
                if other.is_empty() { String::new() } else { format!("{other}, ") },
                r.key(&key)[0].label(),
                r.seed
            ),
            background: with_truth.iter().map(|x| (x.1, x.2)).collect(),
            highlighted,
        });
    }
    Ok(Built { panels: Panels::Scatters(panels), rows: 1, legend: vec![], line_keys: others })
}

/// Height of one row of panels in inches.
const ROW_IN: f64 = 2.4;
/// Left margin of the legend and footer text, in pixels.
const TEXT_LEFT_PX: i32 = 24;
/// Line height of caption and footer text.
const TEXT_LINE_PX: f64 = TICK_PX * 1.35;

/// The panels of one figure.
enum Panels {
    Lines(Vec<LinePanel>),
    Hists(Vec<HistPanel>),
    Scatters(Vec<ScatterPanel>),
    Reliability(Vec<reliability::ReliabilityPanel>),
}

impl Panels {
    fn len(&self) -> usize {
        match self {
            Panels::Lines(p) => p.len(),
            Panels::Hists(p) => p.len(),
            Panels::Scatters(p) => p.len(),
            Panels::Reliability(p) => p.len(),
        }
    }

    fn records(&self) -> Vec<PanelRecord> {
        match self {
            Panels::Lines(ps) => ps
                .iter()
                .map(|p| PanelRecord::Lines {
                    title: plain(&p.title),
                    y_label: p.y_label.clone(),
                    // As drawn: a log axis shows positive values only.
                    series: p
                        .series
                        .iter()
                        .map(|s| {
                            let pts = s.points.iter().map(|(x, st)| (*x, st.mean));
                            let shown = pts.filter(|&(x, y)| (!p.log_x || x > 0.0) && (!p.log_y || y > 0.0));
                            (plain(&s.label), shown.collect())
                        })
                        .collect(),
                    baselines: p.baselines.iter().map(|b| b.stat.mean).collect(),
                    references: p.references.iter().map(|r| r.value).collect(),
                    chance: p.chance.map(|c| c.value),
                    log_y: p.log_y,
                })
                .collect(),
            Panels::Hists(ps) => ps
                .iter()
                .map(|p| PanelRecord::Histogram {
                    title: plain(&p.title),
                    range: p.range().unwrap_or((f64::NAN, f64::NAN)),
                    bins: p.bins,
                    y_max: p.y_max,
                    n: p.values.iter().filter(|v| v.is_finite()).count(),
                })
                .collect(),
            Panels::Scatters(ps) => ps
                .iter()
                .map(|p| PanelRecord::Scatter { title: plain(&p.title), points: p.background.len() })
                .collect(),
            Panels::Reliability(ps) => ps
                .iter()
                .map(|p| {
                    let (title, runs, ece, bins) = reliability::record(p);
                    PanelRecord::Reliability { title, runs, ece, bins }
                })
                .collect(),
        }
    }
}

/// Where everything of a figure goes, in pixels.
struct Layout {
    legend_rows: Vec<Vec<usize>>,
    text_lines: Vec<String>,
    panels_px: u32,
}

impl Layout {
    fn new(built: &Built, caption: &str, footer: &str, width: u32) -> Layout {
        let room = width - 2 * TEXT_LEFT_PX as u32;
        let mut text_lines = wrap(caption, room);
        text_lines.extend(wrap(footer, room));
        Layout {
            legend_rows: legend::rows(&built.legend, width - TEXT_LEFT_PX as u32, TEXT_LEFT_PX),
            text_lines,
            panels_px: (built.rows as f64 * ROW_IN * DPI).round() as u32,
        }
    }

    fn legend_px(&self) -> u32 {
        if self.legend_rows.is_empty() {
            0
        } else {
            (self.legend_rows.len() as f64 * legend::ROW_PX + 16.0) as u32
        }
    }

    fn footer_px(&self) -> u32 {
        (self.text_lines.len() as f64 * TEXT_LINE_PX + 20.0) as u32
    }

    fn height(&self) -> u32 {
        self.legend_px() + self.panels_px + self.footer_px()
    }
}

/// Greedy word wrap of `text` into lines at most `width` pixels wide at the footer's size.
fn wrap(text: &str, width: u32) -> Vec<String> {
    let font: FontDesc = (FONT, TICK_PX).into_font();
    let fits = |s: &str| font.box_size(&plain(s)).map(|(w, _)| w <= width).unwrap_or(true);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
        if fits(&candidate) || line.is_empty() {
            line = candidate;
        } else {
            lines.push(std::mem::take(&mut line));
            line = word.to_string();
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Lays out the legend on top, the panels in `built.rows` rows, the caption and footer below.
fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    built: &Built,
    layout: &Layout,
) -> Result<()> {
    let (_, h) = root.dim_in_pixel();
    let (top, rest) = root.split_vertically(layout.legend_px());
    let (main, foot) = rest.split_vertically(h - layout.legend_px() - layout.footer_px());
    if !layout.legend_rows.is_empty() {
        legend::draw(&top.margin(8, 0, 0, 0), &built.legend, &layout.legend_rows, TEXT_LEFT_PX)?;
    }
    let style: TextStyle = (FONT, TICK_PX).into_font().into();
    for (i, line) in layout.text_lines.iter().enumerate() {
        let y = 6 + (i as f64 * TEXT_LINE_PX) as i32;
        foot.draw(&Text::new(line.clone(), (TEXT_LEFT_PX, y), style.clone())).map_err(pe)?;
    }
    let n = built.panels.len();
    if n == 0 {
        return draw::note(&main, "", "nothing to draw for these runs (see the sidecar JSON's notes)");
    }
    let rows = built.rows.max(1);
    let cols = n.div_ceil(rows);
    let areas = main.split_evenly((rows, cols));
    for (i, area) in areas.iter().enumerate().take(n) {
        match &built.panels {
            Panels::Lines(p) => {
                draw::line_panel(area, &p[i])?;
            }
            Panels::Hists(p) => draw::hist_panel(area, &p[i])?,
            Panels::Scatters(p) => draw::scatter_panel(area, &p[i])?,
            Panels::Reliability(p) => reliability::draw(area, &p[i])?,
        }
    }
    Ok(())
}

/// The spec's cells as figures select them, and the store's state of each config hash it
/// holds (`stale` for a newest run under an older format version), to say why a cell is missing.
pub fn spec_cells(store: &Store, spec: &Spec) -> Result<(Vec<SpecCell>, HashMap<String, String>)> {
    let cells: Vec<SpecCell> = spec.cells()?.iter().map(SpecCell::of).collect();
    let states: HashMap<String, String> = store
        .cell_statuses(&spec.name)?
        .into_iter()
        .map(|(hash, rec)| {
            let state = if rec.format_version == crate::experiment::config::FORMAT_VERSION as i64 {
                rec.status
            } else {
                "stale".into()
            };
            (hash, state)
        })
        .collect();
    Ok((cells, states))
}

/// Draws the figures of each spec (its declared `[[figure]]`s, else the [`catalogue`]) from the
/// store at `db` into `out_dir/<experiment>/`; returns what was written, spec by spec.
pub fn render_specs(db: &Path, specs: &[Spec], out_dir: &Path) -> Result<Vec<Written>> {
    let store = Store::open_read_only(db)?;
    let mut written = Vec::new();
    for spec in specs {
        let figures = if spec.figures.is_empty() { catalogue() } else { spec.figures.clone() };
        let (cells, states) = spec_cells(&store, spec)?;
        written.extend(render_all(
            store.connection(),
            &spec.name,
            &cells,
            &states,
            &figures,
            &out_dir.join(&spec.name),
        )?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel_of(means: &[f64]) -> LinePanel {
        let st = |m: f64| data::Stat { mean: m, band: None, n: 2 };
        let points = means.iter().enumerate().map(|(i, m)| (i as f64 + 1.0, st(*m))).collect();
        LinePanel {
            series: vec![Series { label: String::new(), color: BLACK, points }],
            ..LinePanel::default()
        }
    }

    /// A magnitude's panels go log together when their means span two decades; other
    /// metrics, and magnitudes with a mean at 0, only when the figure asks.
    #[test]
    fn magnitudes_spanning_decades_get_a_log_axis() {
        let mut fig = catalogue().into_iter().find(|f| f.kind == FigureKind::Curves).unwrap();
        let scales = |fig: &FigureSpec, metric: &str, panels: &[&[f64]]| {
            let mut ps: Vec<LinePanel> = panels.iter().map(|m| panel_of(m)).collect();
            let metrics = vec![metric; ps.len()];
            set_y_scales(fig, &mut ps, &metrics);
            ps.iter().map(|p| (p.log_y, p.y_label.contains("log scale"))).collect::<Vec<_>>()
        };
        // 0.1 … 1 in one split and 1 … 20 in the other: 2.3 decades together.
        assert_eq!(scales(&fig, "reward_max_abs", &[&[0.1, 1.0], &[1.0, 20.0]]), [(true, true); 2]);
        assert_eq!(scales(&fig, "reward_max_abs", &[&[0.3, 1.0], &[1.0, 20.0]]), [(false, false); 2]);
        assert_eq!(scales(&fig, "reward_max_abs", &[&[0.0, 1.0], &[1.0, 2000.0]]), [(false, false); 2]);
        assert_eq!(scales(&fig, "loss_pair", &[&[0.001, 1.0]]), [(false, false)]);
        fig.log_y = vec!["loss_pair".into()];
        assert_eq!(scales(&fig, "loss_pair", &[&[0.5, 1.0]]), [(true, true)]);
    }

    #[test]
    fn wrap_keeps_every_word_and_fits() {
        style::register_font();
        let text =
            "Final validation metrics against λ; λ = 0 (unregularized) is the dashed line with its band.";
        let lines = wrap(text, 600);
        assert!(lines.len() > 1, "{lines:?}");
        assert_eq!(lines.join(" "), text);
        let font: FontDesc = (FONT, TICK_PX).into_font();
        assert!(lines.iter().all(|l| font.box_size(l).unwrap().0 <= 600));
        assert_eq!(wrap(text, 100_000), [text]);
    }
}
