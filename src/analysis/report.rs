//! `rmlab report`: one self-contained HTML page per experiment, readable from disk with no
//! server and no network: its figures inline as SVG, its summary tables with 95 % confidence
//! intervals, the spec's cells run and missing, the resolved config (what every cell shares,
//! once, and the keys in which cells differ), and where the runs came from.
//!
//! The page shows exactly what `rmlab plot` draws and `rmlab query summary` counts: the spec's
//! cells (with its `--set` overrides), each by its newest finished run under the current format
//! version. It is built in two steps, [`Report::gather`] (the store read back) and
//! [`Report::html`] (the page), so that what the page says is a value tests can hold beside the
//! page. Every string on the page is escaped by the template (maud), whatever the spec or store
//! holds; the only markup not made by the template is the figures' SVG, whose text plotters
//! escapes. The page is deterministic: the same store and spec give the same bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use maud::{DOCTYPE, Markup, PreEscaped, html};
use polars::prelude::{AnyValue, DataFrame};
use rusqlite::types::Value as Sql;

use super::output::number;
use super::plot::{self, data::SpecCell};
use super::query::{self, Stat};
use crate::error::{Error, Result};
use crate::experiment::Spec;
use crate::experiment::figure::catalogue;
use crate::store::Store;

/// Most rows a table of cells lists; the rest are counted in a line under it.
pub const MAX_ROWS: usize = 1000;

/// One figure as the page shows it.
#[derive(Clone, Debug)]
pub struct Figure {
    pub name: String,
    /// The SVG document as `rmlab plot` writes it (caption and footer drawn in it).
    pub svg: String,
    /// What the figure's sidecar notes (single seeds, missing cells, pooled keys, …).
    pub notes: Vec<String>,
}

/// A value in a table: its text, and the number it shows, exactly, where it is one.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub text: String,
    pub exact: Option<f64>,
}

impl Value {
    fn text(s: impl Into<String>) -> Value {
        Value { text: s.into(), exact: None }
    }

    fn number(x: f64) -> Value {
        Value { text: number(x), exact: Some(x) }
    }

    fn of_sql(v: &Sql) -> Value {
        match v {
            Sql::Null => Value::text(""),
            Sql::Integer(i) => Value { text: i.to_string(), exact: Some(*i as f64) },
            Sql::Real(f) => Value::number(*f),
            Sql::Text(t) => Value::text(t.clone()),
            Sql::Blob(b) => Value::text(format!("<{} bytes>", b.len())),
        }
    }

    fn of_any(v: AnyValue) -> Value {
        match v {
            AnyValue::Null => Value::text(""),
            AnyValue::Float64(x) => Value::number(x),
            AnyValue::Float32(x) => Value::number(x as f64),
            AnyValue::Int64(i) => Value { text: i.to_string(), exact: Some(i as f64) },
            AnyValue::Int32(i) => Value { text: i.to_string(), exact: Some(i as f64) },
            AnyValue::UInt32(i) => Value { text: i.to_string(), exact: Some(i as f64) },
            AnyValue::String(s) => Value::text(s),
            AnyValue::StringOwned(s) => Value::text(s.to_string()),
            other => Value::text(other.to_string()),
        }
    }
}

/// A table: its columns (a name for programs, a heading for people) and rows.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// `(name, heading)` of each column.
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<Value>>,
}

/// The summary over seeds of one split.
#[derive(Clone, Debug)]
pub struct SplitSummary {
    pub split: String,
    /// One row per metric and group: the grouping keys, `n`, `mean`, `std`, `sem`,
    /// `ci95_lo`, `ci95_hi`, `n_nonfinite`, as `rmlab query summary` gives them.
    pub table: Table,
}

/// A spec cell and what the store holds of it.
#[derive(Clone, Debug)]
pub struct CellRow {
    pub label: String,
    pub hash: String,
    /// `finished`, or why the cell is not shown: `running`, `failed`, `stale`, `not run`, …
    pub state: String,
    /// Values of the keys in which the spec's cells differ ([`Configs::differing`]).
    pub values: Vec<Value>,
    /// The run shown, for a finished cell.
    pub run: Option<RunRow>,
}

/// Where a run came from, as the store's `runs` table records it.
#[derive(Clone, Debug, Default)]
pub struct RunRow {
    pub id: i64,
    pub uid: String,
    pub config_hash: String,
    pub seed: i64,
    pub wall_seconds: Option<f64>,
    pub device: Option<String>,
    pub threads: Option<i64>,
    pub host: Option<String>,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub rmlab_version: Option<String>,
    pub torch_version: Option<String>,
    pub engine: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

/// The resolved configs of the spec's cells: what all share, and the keys in which they differ.
#[derive(Clone, Debug, Default)]
pub struct Configs {
    /// `(key, value)` of every config key with one value in all cells.
    pub shared: Vec<(String, Value)>,
    /// Keys with more than one value across the cells (the seed and the swept keys, and
    /// anything they change).
    pub differing: Vec<String>,
}

/// Everything the page shows, read from the store.
#[derive(Clone, Debug)]
pub struct Report {
    pub experiment: String,
    pub description: String,
    /// The spec file as given, with its `--set` overrides.
    pub spec_path: String,
    pub overrides: Vec<String>,
    /// The store as given.
    pub store: String,
    /// The rmlab that made the page (version and commit).
    pub made_by: String,
    pub figures: Vec<Figure>,
    /// The summary over seeds, one table per split (validation first).
    pub summaries: Vec<SplitSummary>,
    /// What the summary says it did (groups split, reruns pooled).
    pub summary_notes: Vec<String>,
    pub configs: Configs,
    /// Every cell of the spec, in the spec's order.
    pub cells: Vec<CellRow>,
}

impl Report {
    /// Reads what the page shows of `spec` from the store at `db`: the figures `rmlab plot`
    /// draws (the spec's `[[figure]]`s, else the catalogue), and the summary, cells, configs and
    /// provenance of the newest finished run of each of the spec's cells. Fails as `rmlab plot`
    /// does when no cell has a finished run.
    pub fn gather(db: &Path, spec: &Spec) -> Result<Report> {
        let store = Store::open_read_only(db)?;
        let conn = store.connection();
        let (cells, states) = plot::spec_cells(&store, spec)?;
        let figures = if spec.figures.is_empty() { catalogue() } else { spec.figures.clone() };
        let drawn = plot::draw_all(conn, &spec.name, &cells, &states, &figures)?;
        let (runs, _) = plot::data::finished_runs(conn, &spec.name, &cells, &states, &BTreeMap::new())?;
        let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        let run_rows = run_rows(conn, &ids)?;
        let (frame, summary_notes) = query::summary_of_runs(conn, &ids, &[], &[], None, Stat::Final)?;
        let configs = configs(&cells);
        let by_hash: HashMap<&str, &RunRow> = run_rows.iter().map(|r| (r.config_hash.as_str(), r)).collect();
        let cell_rows = cells
            .iter()
            .map(|c| {
                // A cell with a finished run is shown by it even when a newer run of it (a
                // `--force` rerun) is running or failed, as figures show it.
                let run = by_hash.get(c.hash.as_str()).map(|r| (*r).clone());
                let state = match &run {
                    Some(_) => "finished".to_string(),
                    None => states.get(&c.hash).cloned().unwrap_or_else(|| "not run".into()),
                };
                CellRow {
                    label: c.label.clone(),
                    hash: c.hash.clone(),
                    state,
                    values: configs
                        .differing
                        .iter()
                        .map(|k| c.params.get(k).map_or(Value::text(""), Value::of_sql))
                        .collect(),
                    run,
                }
            })
            .collect();
        Ok(Report {
            experiment: spec.name.clone(),
            description: spec.description.clone(),
            spec_path: spec.path.display().to_string(),
            overrides: spec.overrides.clone(),
            store: db.display().to_string(),
            made_by: concat!(env!("CARGO_PKG_VERSION"), env!("RMLAB_BUILD")).to_string(),
            figures: drawn
                .into_iter()
                .map(|d| Figure {
                    notes: d.sidecar["notes"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|n| n.as_str().map(String::from)).collect())
                        .unwrap_or_default(),
                    name: d.name,
                    svg: d.svg,
                })
                .collect(),
            summaries: split_summaries(&frame)?,
            summary_notes,
            configs,
            cells: cell_rows,
        })
    }

    /// The cells with a finished run, and the count of those without one by state
    /// (`2 not run, 1 failed`).
    pub fn coverage(&self) -> (usize, String) {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for c in self.cells.iter().filter(|c| c.run.is_none()) {
            *by.entry(c.state.as_str()).or_default() += 1;
        }
        let shown = self.cells.iter().filter(|c| c.run.is_some()).count();
        (shown, by.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", "))
    }

    /// The page: one HTML document with its style inline, no script, no reference outside it.
    pub fn html(&self) -> String {
        let (shown, missing) = self.coverage();
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "rmlab report: " (self.experiment) }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    header {
                        h1 { "Experiment " code { (self.experiment) } }
                        @if !self.description.is_empty() { p.description { (self.description) } }
                        dl.facts {
                            dt { "Spec" } dd { code { (self.spec_path) } }
                            @if !self.overrides.is_empty() {
                                dt { "Overrides" } dd { @for o in &self.overrides { code { "--set " (o) } " " } }
                            }
                            dt { "Store" } dd { code { (self.store) } }
                            dt { "Cells" } dd id="coverage" {
                                (self.cells.len()) " in the spec; " (shown) " with a finished run, shown"
                                @if !missing.is_empty() { "; missing: " (missing) }
                            }
                            dt { "Report by" } dd { "rmlab " (self.made_by) }
                        }
                        p.scope {
                            "Everything below is drawn from the newest finished run of each of the spec's cells under \
                             the current format version, as " code { "rmlab plot" } " and " code { "rmlab query summary" }
                            " count them: runs of other configs stored under the same experiment name are not shown."
                        }
                        nav {
                            a href="#figures" { "Figures" } " · " a href="#summary" { "Summary" } " · "
                            a href="#cells" { "Cells" } " · " a href="#config" { "Config" } " · "
                            a href="#provenance" { "Provenance" }
                        }
                    }
                    section id="figures" {
                        h2 { "Figures" }
                        @for f in &self.figures {
                            figure.plot id={ "figure-" (f.name) } data-figure=(f.name) {
                                h3 { code { (f.name) } }
                                (PreEscaped(inline_svg(&f.svg)))
                                @if !f.notes.is_empty() {
                                    figcaption { ul.notes { @for n in &f.notes { li { (n) } } } }
                                }
                            }
                        }
                    }
                    section id="summary" {
                        h2 { "Summary over seeds" }
                        p {
                            "Each run's value at its last evaluation, over the runs of each group (one per seed): n \
                             finite values, mean, sample standard deviation, standard error, and a 95 % confidence \
                             interval from Student's t with n − 1 degrees of freedom (none when n = 1). NaN and ±inf \
                             values are left out and counted in the last column. The same numbers as "
                            code { "rmlab query summary -e " (self.experiment) } " over these runs."
                        }
                        @if !self.summary_notes.is_empty() {
                            ul.notes { @for n in &self.summary_notes { li { (n) } } }
                        }
                        @for (i, s) in self.summaries.iter().enumerate() {
                            details open[i == 0] {
                                summary { "Split " code { (s.split) } " (" (s.table.rows.len()) " rows)" }
                                (table(&s.table, "summary", Some(&s.split)))
                            }
                        }
                    }
                    section id="cells" {
                        h2 { "Cells" }
                        (self.missing_cells())
                        (self.run_cells())
                    }
                    section id="config" {
                        h2 { "Resolved config" }
                        @if self.configs.differing.is_empty() {
                            p { "All cells share one config." }
                        } @else {
                            p {
                                "The cells differ only in " @for (i, k) in self.configs.differing.iter().enumerate() {
                                    @if i > 0 { ", " } code { (k) }
                                } " (their values are in the tables of cells above); every other key has one value in \
                                 all " (self.cells.len()) " cells:"
                            }
                        }
                        (table(&shared_table(&self.configs), "config", None))
                    }
                    section id="provenance" {
                        h2 { "Provenance" }
                        p { "Of the " (shown) " runs shown, as the store records them (the CPU model is not recorded; \
                             the device is):" }
                        (table(&self.provenance(), "provenance", None))
                    }
                }
            }
        };
        page.into_string()
    }

    fn missing_cells(&self) -> Markup {
        let missing: Vec<&CellRow> = self.cells.iter().filter(|c| c.run.is_none()).collect();
        let mut t = Table { columns: key_columns(&self.configs), rows: vec![] };
        t.columns.push(("config_hash".into(), "config hash".into()));
        t.columns.push(("state".into(), "state".into()));
        for c in missing.iter().take(MAX_ROWS) {
            let mut row = c.values.clone();
            row.push(Value::text(c.hash.clone()));
            row.push(Value::text(c.state.clone()));
            t.rows.push(row);
        }
        html! {
            h3 { "Without a finished run (" (missing.len()) ")" }
            @if missing.is_empty() {
                p { "Every cell of the spec has a finished run." }
            } @else {
                (table(&t, "missing", None))
                (more(missing.len()))
            }
        }
    }

    fn run_cells(&self) -> Markup {
        let run: Vec<(&CellRow, &RunRow)> =
            self.cells.iter().filter_map(|c| c.run.as_ref().map(|r| (c, r))).collect();
        let mut t = Table { columns: key_columns(&self.configs), rows: vec![] };
        for (name, heading) in [
            ("run_id", "run"),
            ("wall_seconds", "wall s"),
            ("device", "device"),
            ("engine", "engine"),
            ("host", "host"),
            ("git_commit", "commit"),
            ("ended_at", "ended"),
        ] {
            t.columns.push((name.into(), heading.into()));
        }
        let opt = |s: &Option<String>| Value::text(s.clone().unwrap_or_default());
        for (c, r) in run.iter().take(MAX_ROWS) {
            let mut row = c.values.clone();
            row.extend([
                Value { text: r.id.to_string(), exact: Some(r.id as f64) },
                r.wall_seconds.map_or(Value::text(""), Value::number),
                opt(&r.device),
                opt(&r.engine),
                opt(&r.host),
                Value::text(commit(r)),
                opt(&r.ended_at),
            ]);
            t.rows.push(row);
        }
        html! {
            h3 { "With a finished run, shown (" (run.len()) ")" }
            (table(&t, "runs", None))
            (more(run.len()))
        }
    }

    /// Each provenance field's distinct values over the runs shown, with their counts, and the
    /// wall time.
    pub fn provenance(&self) -> Table {
        let runs: Vec<&RunRow> = self.cells.iter().filter_map(|c| c.run.as_ref()).collect();
        let mut t = Table {
            columns: vec![("field".into(), "field".into()), ("values".into(), "values (runs)".into())],
            rows: vec![],
        };
        let fields: [(&str, &Field); 7] = [
            ("git commit", &commit),
            ("rmlab version", &|r| r.rmlab_version.clone().unwrap_or_default()),
            ("LibTorch", &|r| r.torch_version.clone().unwrap_or_default()),
            ("device", &|r| r.device.clone().unwrap_or_default()),
            ("threads", &|r| r.threads.map(|t| t.to_string()).unwrap_or_default()),
            ("engine", &|r| r.engine.clone().unwrap_or_default()),
            ("host", &|r| r.host.clone().unwrap_or_default()),
        ];
        for (name, get) in fields {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for r in &runs {
                let v = get(r);
                *counts.entry(if v.is_empty() { "(not recorded)".into() } else { v }).or_default() += 1;
            }
            let text = counts.iter().map(|(v, n)| format!("{v} ({n})")).collect::<Vec<_>>().join(", ");
            t.rows.push(vec![Value::text(name), Value::text(text)]);
        }
        let walls: Vec<f64> = runs.iter().filter_map(|r| r.wall_seconds).filter(|w| w.is_finite()).collect();
        let total: f64 = walls.iter().sum();
        let (lo, hi) =
            walls.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &w| (a.min(w), b.max(w)));
        t.rows.push(vec![
            Value::text("wall time"),
            Value::text(if walls.is_empty() {
                "(not recorded)".into()
            } else {
                format!(
                    "{} s in all over {} runs; {}–{} s a run",
                    number(total),
                    walls.len(),
                    number(lo),
                    number(hi)
                )
            }),
        ]);
        let started = runs.iter().filter_map(|r| r.started_at.as_deref()).min();
        let ended = runs.iter().filter_map(|r| r.ended_at.as_deref()).max();
        if let (Some(a), Some(b)) = (started, ended) {
            t.rows.push(vec![Value::text("runs between"), Value::text(format!("{a} and {b}"))]);
        }
        t
    }

    /// Writes the page to `out`, whole or not at all.
    pub fn write(&self, out: &Path) -> Result<()> {
        super::output::emit(self.html().as_bytes(), Some(out))
    }
}

/// How the provenance table reads one field of a run.
type Field = dyn Fn(&RunRow) -> String;

/// Where `rmlab report` writes by default: `results/reports/<experiment>.html`.
pub fn default_out(experiment: &str) -> PathBuf {
    Path::new("results/reports").join(format!("{experiment}.html"))
}

/// `abcdef123456` (12 hex digits of the commit), `+dirty` for uncommitted changes.
fn commit(r: &RunRow) -> String {
    match &r.git_commit {
        None => String::new(),
        Some(c) => format!(
            "{}{}",
            c.chars().take(12).collect::<String>(),
            if r.git_dirty == Some(true) { "+dirty" } else { "" }
        ),
    }
}

/// The columns of the keys in which cells differ.
fn key_columns(configs: &Configs) -> Vec<(String, String)> {
    configs.differing.iter().map(|k| (k.clone(), k.clone())).collect()
}

fn shared_table(configs: &Configs) -> Table {
    Table {
        columns: vec![("key".into(), "key".into()), ("value".into(), "value".into())],
        rows: configs
            .shared
            .iter()
            .map(|(k, v)| {
                // A key without a value (`data.path` of synthetic data) says so.
                let v = if v.text.is_empty() { Value::text("(none)") } else { v.clone() };
                vec![Value::text(k.clone()), v]
            })
            .collect(),
    }
}

fn more(n: usize) -> Markup {
    html! {
        @if n > MAX_ROWS {
            p.more { "… and " (n - MAX_ROWS) " more (" code { "rmlab status" } " lists every cell)." }
        }
    }
}

/// A table whose cells carry what programs need: each heading its column's name
/// (`data-column`), each number its exact value (`data-value`, Rust's shortest form that reads
/// back to the same float).
fn table(t: &Table, class: &str, split: Option<&str>) -> Markup {
    html! {
        div.scroll {
            table class=(class) data-split=[split] {
                thead { tr { @for (name, heading) in &t.columns { th data-column=(name) { (heading) } } } }
                tbody {
                    @for row in &t.rows {
                        tr {
                            @for v in row {
                                @match v.exact {
                                    Some(x) => { td.num data-value=(x) { (v.text) } }
                                    None => { td { (v.text) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The SVG element of a figure's document, for inlining: anything before `<svg` (an XML
/// declaration) dropped; the pixel size kept as the viewBox, so the page's style scales it.
fn inline_svg(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

/// Config keys shared by every cell, and those that differ, from the cells' flattened configs.
fn configs(cells: &[SpecCell]) -> Configs {
    let mut values: BTreeMap<&str, Vec<&Sql>> = BTreeMap::new();
    for c in cells {
        for (k, v) in &c.params {
            values.entry(k.as_str()).or_default().push(v);
        }
    }
    let mut out = Configs::default();
    for (k, vs) in values {
        let distinct: BTreeSet<String> = vs.iter().map(|v| format!("{v:?}")).collect();
        if distinct.len() == 1 && vs.len() == cells.len() {
            out.shared.push((k.to_string(), Value::of_sql(vs[0])));
        } else {
            out.differing.push(k.to_string());
        }
    }
    // The seed last: the swept keys read first, as in cell labels.
    if let Some(i) = out.differing.iter().position(|k| k == "seed") {
        let seed = out.differing.remove(i);
        out.differing.push(seed);
    }
    out
}

/// The runs table's record of each of `ids`.
fn run_rows(conn: &rusqlite::Connection, ids: &[i64]) -> Result<Vec<RunRow>> {
    let mut stmt = conn
        .prepare(
            "SELECT id, uid, config_hash, seed, wall_seconds, device, threads, host, git_commit, git_dirty,
                    rmlab_version, torch_version, engine, started_at, ended_at FROM runs WHERE id = ?1",
        )
        .map_err(Error::on(conn))?;
    ids.iter()
        .map(|id| {
            stmt.query_row([id], |r| {
                Ok(RunRow {
                    id: r.get(0)?,
                    uid: r.get(1)?,
                    config_hash: r.get(2)?,
                    seed: r.get(3)?,
                    wall_seconds: r.get(4)?,
                    device: r.get(5)?,
                    threads: r.get(6)?,
                    host: r.get(7)?,
                    git_commit: r.get(8)?,
                    git_dirty: r.get(9)?,
                    rmlab_version: r.get(10)?,
                    torch_version: r.get(11)?,
                    engine: r.get(12)?,
                    started_at: r.get(13)?,
                    ended_at: r.get(14)?,
                })
            })
            .map_err(Error::on(conn))
        })
        .collect()
}

/// Splits in the order a reader wants them: validation, test, training, then evaluation files.
fn split_rank(split: &str) -> (usize, &str) {
    (["val", "test", "train"].iter().position(|s| *s == split).unwrap_or(3), split)
}

/// The summary frame as one table per split, rows by metric, then by group as the frame
/// orders them.
fn split_summaries(frame: &DataFrame) -> Result<Vec<SplitSummary>> {
    let pe = |e: polars::prelude::PolarsError| Error::report(format!("polars: {e}"));
    let names: Vec<String> = frame.get_column_names().iter().map(|c| c.to_string()).collect();
    let text = |name: &str, i: usize| -> Result<String> {
        Ok(Value::of_any(frame.column(name).map_err(pe)?.get(i).map_err(pe)?).text)
    };
    let mut rows_by_split: BTreeMap<(usize, String), Vec<usize>> = BTreeMap::new();
    for i in 0..frame.height() {
        let split = text("split", i)?;
        rows_by_split.entry((split_rank(&split).0, split)).or_default().push(i);
    }
    // Metric first, then the grouping keys, then the statistics, as the frame has them.
    let mut shown: Vec<&String> = names.iter().filter(|c| *c == "metric").collect();
    shown.extend(names.iter().filter(|c| !["experiment", "split", "metric"].contains(&c.as_str())));
    let heading = |c: &str| match c {
        "std" => "sd".to_string(),
        "ci95_lo" => "95 % CI low".into(),
        "ci95_hi" => "95 % CI high".into(),
        "n_nonfinite" => "left out (NaN, ±inf)".into(),
        other => other.to_string(),
    };
    let mut out = Vec::new();
    for ((_, split), mut rows) in rows_by_split {
        let mut metric_of = HashMap::new();
        for &i in &rows {
            metric_of.insert(i, text("metric", i)?);
        }
        rows.sort_by(|a, b| metric_of[a].cmp(&metric_of[b]));
        let mut table =
            Table { columns: shown.iter().map(|c| (c.to_string(), heading(c))).collect(), rows: vec![] };
        for i in rows {
            let row = shown
                .iter()
                .map(|c| Ok(Value::of_any(frame.column(c).map_err(pe)?.get(i).map_err(pe)?)))
                .collect::<Result<Vec<Value>>>()?;
            table.rows.push(row);
        }
        out.push(SplitSummary { split, table });
    }
    Ok(out)
}

/// The page's style: system fonts, tables that scroll inside their own box, figures scaled to
/// the page's width.
const STYLE: &str = "
body { font-family: 'DejaVu Sans', sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em 2em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
code { font-family: 'DejaVu Sans Mono', monospace; font-size: 0.92em; }
.description { font-size: 1.1em; margin-top: 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dl.facts dt { font-weight: bold; }
dl.facts dd { margin: 0; }
.scope { color: #555; }
nav a { color: #1f5fa8; }
figure.plot { margin: 1.5em 0; }
figure.plot svg { display: block; width: 100%; height: auto; border: 1px solid #eee; }
ul.notes { color: #664; font-size: 0.92em; }
.scroll { overflow-x: auto; max-height: 40em; overflow-y: auto; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.4em 0; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 0.15em 0.6em; text-align: left; vertical-align: top; }
th { position: sticky; top: 0; background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
details { margin: 0.6em 0; }
summary { cursor: pointer; font-weight: bold; }
.more { color: #555; }
";

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let hostile = "<script>alert(1)</script> & \"quoted\" 'single'";
        let run = RunRow {
            id: 7,
            config_hash: "abc".into(),
            seed: 0,
            wall_seconds: Some(1.25),
            git_commit: Some("0123456789abcdef0123".into()),
            git_dirty: Some(true),
            host: Some(hostile.into()),
            ..RunRow::default()
        };
        Report {
            experiment: "exp<1>".into(),
            description: hostile.into(),
            spec_path: "experiments/x.toml".into(),
            overrides: vec![format!("name={hostile}")],
            store: "r.sqlite".into(),
            made_by: "0.1.0+test".into(),
            figures: vec![Figure {
                name: "f<&>".into(),
                svg: "<svg viewBox=\"0 0 10 10\" xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"10\" height=\"10\"/></svg>".into(),
                notes: vec![hostile.into()],
            }],
            summaries: vec![SplitSummary {
                split: "val".into(),
                table: Table {
                    columns: vec![("metric".into(), "metric".into()), ("mean".into(), "mean".into())],
                    rows: vec![vec![Value::text(hostile), Value::number(0.123456789)]],
                },
            }],
            summary_notes: vec![],
            configs: Configs {
                shared: vec![("data.path".into(), Value::text(hostile))],
                differing: vec!["seed".into()],
            },
            cells: vec![
                CellRow {
                    label: "seed=0".into(),
                    hash: "abc".into(),
                    state: "finished".into(),
                    values: vec![Value::number(0.0)],
                    run: Some(run),
                },
                CellRow {
                    label: "seed=1".into(),
                    hash: "def".into(),
                    state: hostile.into(),
                    values: vec![Value::number(1.0)],
                    run: None,
                },
            ],
        }
    }

    #[test]
    fn every_string_is_escaped_and_nothing_outside_the_page_is_referenced() {
        let page = report().html();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("<script"), "a spec's or store's text is never markup");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;"));
        assert!(page.contains("exp&lt;1&gt;"));
        assert!(page.contains("data-figure=\"f&lt;&amp;&gt;\""));
        // The only address on the page is the SVG namespace, which is a name, not a fetch.
        let without_ns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(!without_ns.contains("http"), "{without_ns}");
        for attr in ["src=", "<link", "@import", "url("] {
            assert!(!page.contains(attr), "{attr}");
        }
        // Anchors stay on the page.
        for href in page.match_indices("href=\"").map(|(i, _)| &page[i + 6..]) {
            assert!(href.starts_with('#'), "{}", &href[..20]);
        }
    }

    #[test]
    fn numbers_carry_their_exact_value_and_show_four_digits() {
        let page = report().html();
        assert!(page.contains("<td class=\"num\" data-value=\"0.123456789\">0.1235</td>"), "{page}");
        assert!(page.contains("0123456789ab+dirty"));
        assert!(!page.contains("0123456789abcdef0123"));
        assert_eq!(report().coverage(), (1, format!("1 {}", report().cells[1].state)));
    }

    #[test]
    fn configs_separate_shared_keys_from_differing_ones_seed_last() {
        let cell = |hash: &str, seed: i64, lambda: f64| SpecCell {
            hash: hash.into(),
            label: String::new(),
            params: [
                ("seed".to_string(), Sql::Integer(seed)),
                ("loss.lambda".to_string(), Sql::Real(lambda)),
                ("train.steps".to_string(), Sql::Integer(100)),
                ("model.hidden".to_string(), Sql::Text("[16]".into())),
            ]
            .into_iter()
            .collect(),
        };
        let c = configs(&[cell("a", 0, 0.0), cell("b", 1, 0.0), cell("c", 0, 0.1)]);
        assert_eq!(c.differing, ["loss.lambda", "seed"]);
        let shared: Vec<(&str, &str)> = c.shared.iter().map(|(k, v)| (k.as_str(), v.text.as_str())).collect();
        assert_eq!(shared, [("model.hidden", "[16]"), ("train.steps", "100")]);
        // A key one cell lacks is not shared.
        let mut odd = cell("d", 0, 0.0);
        odd.params.remove("train.steps");
        let c = configs(&[cell("a", 0, 0.0), odd]);
        assert!(c.differing.contains(&"train.steps".to_string()));
    }

    #[test]
    fn splits_read_validation_first() {
        let mut splits = vec!["train", "holdout", "val", "test"];
        splits.sort_by_key(|s| split_rank(s));
        assert_eq!(splits, ["val", "test", "train", "holdout"]);
    }
}
