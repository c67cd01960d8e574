//! Paper figures from the store, declared in each spec (`[[figure]]`) or taken from the
//! default catalogue, written as SVG and 300-dpi PNG with a JSON sidecar.
//!
//! Figures compare regularized and unregularized training; every mean is over the seeds of a
//! cell's grid point (finished runs only), with its band stated in the figure's footer.

pub mod data;
pub mod draw;
pub mod style;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use rusqlite::Connection;
use rusqlite::types::Value as Sql;
use serde::Serialize;

use data::{OrdValue, RunInfo, stat};
use draw::{Baseline, HistPanel, LinePanel, ScatterPanel, Series};
use style::{FONT, TICK_PX, color, key_symbol, metric_label, pe};

use crate::error::{Error, Result};
use crate::experiment::Spec;
use crate::experiment::figure::{Band, FigureKind, FigureSpec, catalogue, default_x};
use crate::experiment::metric::GRAPH_KINDS;
use crate::store::Store;

/// One written figure.
#[derive(Debug)]
pub struct Written {
    pub svg: PathBuf,
    pub png: PathBuf,
    pub sidecar: PathBuf,
}

/// The sidecar JSON of a figure: how it was made, from which runs.
#[derive(Debug, Serialize)]
struct Sidecar<'a> {
    figure: &'a FigureSpec,
    experiment: &'a str,
    rmlab_version: &'static str,
    query: String,
    band: &'static str,
    run_ids: Vec<i64>,
    seeds: Vec<i64>,
    runs_left_out: &'a BTreeMap<String, i64>,
    notes: Vec<String>,
}

/// Renders every figure of `experiment` into `out_dir`. Fails (with a clear message) when the
/// store has no finished run of the experiment; a figure with nothing to show is drawn with a
/// note instead of panels.
pub fn render_all(
    conn: &Connection,
    experiment: &str,
    figures: &[FigureSpec],
    out_dir: &Path,
) -> Result<Vec<Written>> {
    let (all_runs, _) = data::finished_runs(conn, experiment, &BTreeMap::new())?;
    if all_runs.is_empty() {
        return Err(Error::Input(format!(
            "the store has no finished run of experiment `{experiment}`: run `rmlab sweep` on its spec first"
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut written = Vec::new();
    for fig in figures {
        let filters: BTreeMap<String, Sql> =
            fig.filters.iter().map(|(k, v)| (k.clone(), toml_to_sql(v))).collect();
        let (runs, left_out) = data::finished_runs(conn, experiment, &filters)?;
        let mut notes = Vec::new();
        let footer = footer(fig.kind, &runs, &left_out, fig.band, &mut notes);
        let stem = out_dir.join(&fig.name);
        let (panels, rows) = match fig.kind {
            FigureKind::Curves => (Panels::Lines(curve_panels(conn, fig, &runs)?), fig.splits.len()),
            FigureKind::Final => {
                (Panels::Lines(final_panels(conn, fig, &runs, &mut notes)?), fig.splits.len())
            }
            FigureKind::GraphKinds => {
                (Panels::Lines(graph_kind_panels(conn, fig, &runs, &mut notes)?), fig.splits.len())
            }
            FigureKind::Distribution => {
                (Panels::Hists(distribution_panels(conn, fig, &runs, &mut notes)?), 1)
            }
            FigureKind::LearnedVsTrue => (Panels::Scatters(scatter_panels(conn, fig, &runs, &mut notes)?), 1),
        };
        let size = style::size(fig.width, rows as f64 * ROW_IN + FOOTER_IN);
        let title = if fig.caption.is_empty() { fig.name.clone() } else { fig.caption.clone() };
        style::render_both(&stem, size, &|a| draw_figure(a, &panels, rows, &footer, &title), &|a| {
            draw_figure(a, &panels, rows, &footer, &title)
        })?;
        let sidecar = Sidecar {
            figure: fig,
            experiment,
            rmlab_version: env!("CARGO_PKG_VERSION"),
            query: format!(
                "finished runs of experiment `{experiment}`{}; metric values from table `{}`",
                if fig.filters.is_empty() { String::new() } else { format!(" with {:?}", fig.filters) },
                match fig.kind {
                    FigureKind::Curves => "metrics",
                    FigureKind::Final | FigureKind::GraphKinds => "summaries (final_value)",
                    _ => "rewards",
                }
            ),
            band: fig.band.describe(),
            run_ids: runs.iter().map(|r| r.id).collect(),
            seeds: runs.iter().map(|r| r.seed).collect::<BTreeSet<_>>().into_iter().collect(),
            runs_left_out: &left_out,
            notes,
        };
        let json = serde_json::to_string_pretty(&sidecar).expect("sidecar serializes") + "\n";
        let sidecar_path = stem.with_extension("json");
        style::write_atomic(&sidecar_path, json.as_bytes())?;
        written.push(Written {
            svg: stem.with_extension("svg"),
            png: stem.with_extension("png"),
            sidecar: sidecar_path,
        });
    }
    Ok(written)
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

/// The line under every figure: what the band is, n, and which runs were left out.
fn footer(
    kind: FigureKind,
    runs: &[RunInfo],
    left_out: &BTreeMap<String, i64>,
    band: Band,
    notes: &mut Vec<String>,
) -> String {
    let seeds: BTreeSet<i64> = runs.iter().map(|r| r.seed).collect();
    let mut s = match kind {
        FigureKind::Curves | FigureKind::Final | FigureKind::GraphKinds if seeds.len() < 2 => {
            notes.push("single seed: no band drawn".into());
            "One seed per point: no band.".to_string()
        }
        FigureKind::Curves => format!("Lines: mean over {} seeds; bands: {}.", seeds.len(), band.describe()),
        FigureKind::Final | FigureKind::GraphKinds => {
            format!("Points: mean over {} seeds; bars and shaded band: {}.", seeds.len(), band.describe())
        }
        FigureKind::Distribution => {
            format!("Histograms of final rewards, density, all {} seeds of each λ pooled.", seeds.len())
        }
        FigureKind::LearnedVsTrue => {
            "One run per panel (lowest seed). Grey: every response; colour: 6 prompts, each joined by a line."
                .to_string()
        }
    };
    let out: Vec<String> = left_out.iter().map(|(k, v)| format!("{v} {k}")).collect();
    if !out.is_empty() {
        s.push_str(&format!(" Left out: {} run(s).", out.join(", ")));
        notes.push(format!("runs left out: {}", out.join(", ")));
    }
    s
}

/// A metric's label without its unit, for panel titles.
fn metric_title(metric: &str) -> String {
    let label = metric_label(metric);
    match label.rsplit_once(" (") {
        Some((head, unit)) if unit.ends_with(')') && !head.is_empty() => head.to_string(),
        _ => label,
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

fn curve_panels(conn: &Connection, fig: &FigureSpec, runs: &[RunInfo]) -> Result<Vec<LinePanel>> {
    let lines = line_keys(fig, runs, false);
    let mut groups: BTreeMap<Vec<OrdValue>, Vec<&RunInfo>> = BTreeMap::new();
    for r in runs {
        groups.entry(r.key(&lines)).or_default().push(r);
    }
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
                let points: Vec<(f64, data::Stat)> =
                    by_step.iter().filter_map(|(s, v)| stat(v, fig.band).map(|st| (*s as f64, st))).collect();
                series.push(Series {
                    label: format!("{} (n={})", group_label(&lines, key), members.len()),
                    color: color(i),
                    points,
                });
            }
            panels.push(LinePanel {
                title: format!("{} ({split})", metric_title(metric)),
                x_label: "training step".into(),
                y_label: metric_label(metric),
                log_x: false,
                error_bars: false,
                series,
                baselines: vec![],
                legend: panels.is_empty(),
            });
        }
    }
    Ok(panels)
}

fn final_panels(
    conn: &Connection,
    fig: &FigureSpec,
    runs: &[RunInfo],
    notes: &mut Vec<String>,
) -> Result<Vec<LinePanel>> {
    let lines = line_keys(fig, runs, true);
    let mut groups: BTreeMap<Vec<OrdValue>, Vec<&RunInfo>> = BTreeMap::new();
    for r in runs {
        groups.entry(r.key(&lines)).or_default().push(r);
    }
    let mut missing_baseline = false;
    let mut panels = Vec::new();
    for split in &fig.splits {
        for metric in &fig.metrics {
            let sources: Vec<FinalSource> = groups
                .iter()
                .map(|(key, members)| FinalSource {
                    label: (!lines.is_empty()).then(|| group_label(&lines, key)),
                    metric: metric.clone(),
                    runs: members.clone(),
                })
                .collect();
            let legend = panels.is_empty();
            panels.push(final_panel(conn, fig, split, metric, &sources, legend, &mut missing_baseline)?);
        }
    }
    if missing_baseline {
        let xsym = key_symbol(&fig.x);
        notes.push(format!("no {xsym} = 0 runs in some groups: no unregularized baseline drawn for them"));
    }
    Ok(panels)
}

/// Final metrics by comparison-graph component kind: for each metric `m` of the figure, one
/// panel with a line for `m_bipartite` and one for `m_odd_cycle` (and per value of `lines`).
fn graph_kind_panels(
    conn: &Connection,
    fig: &FigureSpec,
    runs: &[RunInfo],
    notes: &mut Vec<String>,
) -> Result<Vec<LinePanel>> {
    let lines = line_keys(fig, runs, true);
    let mut groups: BTreeMap<Vec<OrdValue>, Vec<&RunInfo>> = BTreeMap::new();
    for r in runs {
        groups.entry(r.key(&lines)).or_default().push(r);
    }
    let mut missing_baseline = false;
    let mut panels = Vec::new();
    for split in &fig.splits {
        for metric in &fig.metrics {
            let mut sources = Vec::new();
            for kind in GRAPH_KINDS {
                for (key, members) in &groups {
                    let what = if kind == "odd_cycle" { "odd-cycle" } else { kind };
                    sources.push(FinalSource {
                        label: Some(if lines.is_empty() {
                            format!("{what} components")
                        } else {
                            format!("{what}, {}", group_label(&lines, key))
                        }),
                        metric: format!("{metric}_{kind}"),
                        runs: members.clone(),
                    });
                }
            }
            let legend = panels.is_empty();
            panels.push(final_panel(conn, fig, split, metric, &sources, legend, &mut missing_baseline)?);
        }
    }
    if missing_baseline {
        let xsym = key_symbol(&fig.x);
        notes.push(format!("no {xsym} = 0 runs in some lines: no unregularized baseline drawn for them"));
    }
    Ok(panels)
}

/// One line of a final-value panel: a metric's final values over some runs, by x.
struct FinalSource<'r> {
    /// Legend label; `None` for the only line of a figure without `lines`.
    label: Option<String>,
    metric: String,
    runs: Vec<&'r RunInfo>,
}

/// A panel of final values against `fig.x` (log axis; x = 0 drawn apart as a dashed
/// baseline), a line per source with error bars over seeds.
fn final_panel(
    conn: &Connection,
    fig: &FigureSpec,
    split: &str,
    metric: &str,
    sources: &[FinalSource],
    legend: bool,
    missing_baseline: &mut bool,
) -> Result<LinePanel> {
    let unregularized = if fig.x == "loss.lambda" { ", unregularized" } else { "" };
    let xsym = key_symbol(&fig.x);
    let mut series = Vec::new();
    let mut baselines = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let members: Vec<RunInfo> = src.runs.iter().map(|r| (*r).clone()).collect();
        let finals = data::final_values(conn, &members, split, &src.metric)?;
        let mut by_x: BTreeMap<OrdValue, Vec<f64>> = BTreeMap::new();
        for r in &src.runs {
            if let (Some(x), Some(v)) = (r.params.get(&fig.x), finals.get(&r.id)) {
                by_x.entry(x.clone()).or_default().push(*v);
            }
        }
        let mut points = Vec::new();
        let mut n_min = usize::MAX;
        for (x, vals) in &by_x {
            let Some(xv) = x.as_f64() else { continue };
            let Some(st) = stat(vals, fig.band) else { continue };
            n_min = n_min.min(st.n);
            if xv == 0.0 {
                baselines.push(Baseline {
                    label: match &src.label {
                        None => format!("{xsym} = 0{unregularized} (n={})", st.n),
                        Some(_) => String::new(),
                    },
                    color: color(i),
                    stat: st,
                });
            } else {
                points.push((xv, st));
            }
        }
        if !by_x.keys().any(|x| x.as_f64() == Some(0.0)) {
            *missing_baseline = true;
        }
        let n = if n_min == usize::MAX { 0 } else { n_min };
        let label = match &src.label {
            None => format!("{xsym} > 0 (n={n} per point)"),
            Some(l) => format!("{l} (n={n})"),
        };
        series.push(Series { label, color: color(i), points });
    }
    let base = metric_label(metric);
    Ok(LinePanel {
        title: format!("final {} ({split})", metric_title(metric)),
        x_label: format!("{xsym} (log scale)"),
        y_label: base,
        log_x: true,
        error_bars: true,
        series,
        baselines,
        legend,
    })
}

fn distribution_panels(
    conn: &Connection,
    fig: &FigureSpec,
    runs: &[RunInfo],
    notes: &mut Vec<String>,
) -> Result<Vec<HistPanel>> {
    let split = &fig.splits[0];
    let key = vec![default_x()];
    let mut by_lambda: BTreeMap<Vec<OrdValue>, Vec<f64>> = BTreeMap::new();
    for r in runs {
        let vals = data::rewards(conn, r.id, split)?;
        by_lambda.entry(r.key(&key)).or_default().extend(vals.iter().map(|v| v.1));
    }
    let zero = vec![OrdValue::Num(0.0)];
    let Some(base) = by_lambda.get(&zero).cloned() else {
        notes.push("no λ = 0 runs: nothing to compare against".into());
        return Ok(vec![]);
    };
    Ok(by_lambda
        .iter()
        .filter(|(k, _)| **k != zero)
        .enumerate()
        .map(|(i, (k, vals))| HistPanel {
            title: format!("λ = 0 vs λ = {} ({split})", k[0].label()),
            x_label: "final reward r (reward units)".into(),
            samples: vec![
                ("λ = 0".into(), RGBColor(110, 110, 110), base.clone()),
                (format!("λ = {}", k[0].label()), color(i + 1), vals.clone()),
            ],
            bins: 40,
        })
        .collect())
}

fn scatter_panels(
    conn: &Connection,
    fig: &FigureSpec,
    runs: &[RunInfo],
    notes: &mut Vec<String>,
) -> Result<Vec<ScatterPanel>> {
    let split = &fig.splits[0];
    let key = vec![default_x()];
    // The lowest seed of λ = 0 and of the largest λ.
    let mut picks: Vec<&RunInfo> = Vec::new();
    let lambdas: BTreeSet<Vec<OrdValue>> = runs.iter().map(|r| r.key(&key)).collect();
    for lam in [lambdas.first(), lambdas.last()].into_iter().flatten() {
        if let Some(r) = runs.iter().filter(|r| &r.key(&key) == lam).min_by_key(|r| r.seed)
            && !picks.iter().any(|p| p.id == r.id)
        {
            picks.push(r);
        }
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
        panels.push(ScatterPanel {
            title: format!("λ = {}, seed {} ({split})", r.key(&key)[0].label(), r.seed),
            background: with_truth.iter().map(|x| (x.1, x.2)).collect(),
            highlighted,
        });
    }
    Ok(panels)
}

/// Height of one row of panels, and of the footer line, in inches.
const ROW_IN: f64 = 2.4;
const FOOTER_IN: f64 = 0.3;

/// The panels of one figure.
enum Panels {
    Lines(Vec<LinePanel>),
    Hists(Vec<HistPanel>),
    Scatters(Vec<ScatterPanel>),
}

impl Panels {
    fn len(&self) -> usize {
        match self {
            Panels::Lines(p) => p.len(),
            Panels::Hists(p) => p.len(),
            Panels::Scatters(p) => p.len(),
        }
    }
}

/// Legend entries of a panel: `(colour, dashed, label)`.
fn legend_entries(p: &LinePanel) -> Vec<(RGBColor, bool, String)> {
    let mut v: Vec<(RGBColor, bool, String)> =
        p.series.iter().map(|s| (s.color, false, s.label.clone())).collect();
    if !p.baselines.is_empty() {
        let x = p.x_label.replace(" (log scale)", "");
        v.push((RGBColor(90, 90, 90), false, format!("solid: {x} > 0")));
        v.push((RGBColor(90, 90, 90), true, format!("dashed: {x} = 0")));
    }
    v
}

/// Lays the panels out in `rows` rows with the caption on top and the footer below.
fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &Panels,
    rows: usize,
    footer: &str,
    title: &str,
) -> Result<()> {
    let (_, h) = root.dim_in_pixel();
    let foot_px = (FOOTER_IN * style::DPI) as u32;
    let (main, foot) = root.split_vertically(h - foot_px);
    let text = |s: &str, y: i32| -> Result<()> {
        foot.draw(&Text::new(s.to_string(), (24, y), (FONT, TICK_PX).into_font())).map_err(pe)
    };
    text(title, 4)?;
    text(footer, 4 + (TICK_PX * 1.3) as i32)?;
    let n = panels.len();
    if n == 0 {
        return draw::note(&main, "", "nothing to draw for these runs (see the sidecar JSON's notes)");
    }
    // Many lines: one legend to the right of all panels instead of one covering a panel.
    let external = match panels {
        Panels::Lines(p) => p.first().filter(|p| p.series.len() > 3).map(legend_entries),
        _ => None,
    };
    let (main, legend_area) = match &external {
        Some(_) => {
            let (w, _) = main.dim_in_pixel();
            let (a, b) = main.split_horizontally(w * 4 / 5);
            (a, Some(b))
        }
        None => (main, None),
    };
    if let (Some(entries), Some(area)) = (&external, &legend_area) {
        draw::legend_strip(area, entries)?;
    }
    let cols = n.div_ceil(rows.max(1));
    let areas = main.split_evenly((rows.max(1), cols));
    for (i, area) in areas.iter().enumerate().take(n) {
        match panels {
            Panels::Lines(p) => {
                let mut panel = p[i].clone();
                if external.is_some() {
                    panel.legend = false;
                }
                draw::line_panel(area, &panel)?;
            }
            Panels::Hists(p) => draw::hist_panel(area, &p[i])?,
            Panels::Scatters(p) => draw::scatter_panel(area, &p[i])?,
        }
    }
    Ok(())
}

/// Draws the figures of each spec (its declared `[[figure]]`s, else the [`catalogue`]) from the
/// store at `db` into `out_dir/<experiment>/`; returns what was written, spec by spec.
pub fn render_specs(db: &Path, specs: &[Spec], out_dir: &Path) -> Result<Vec<Written>> {
    let store = Store::open_read_only(db)?;
    let mut written = Vec::new();
    for spec in specs {
        let figures = if spec.figures.is_empty() { catalogue() } else { spec.figures.clone() };
        written.extend(render_all(store.connection(), &spec.name, &figures, &out_dir.join(&spec.name))?);
    }
    Ok(written)
}
