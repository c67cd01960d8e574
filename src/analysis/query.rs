//! Reading the store into polars DataFrames: runs with their params, metric curves, and
//! summaries aggregated over seeds with confidence intervals.
//!
//! Every value a user gives (experiment, `key=value` filters, metric names) is bound as an SQL
//! parameter; no SQL is built from user text. Column names come from the store's own keys.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;
use rusqlite::Connection;
use rusqlite::types::Value as Sql;

use crate::error::{Error, Result};
use crate::eval::stats::Summary;

/// A `key=value` filter on a run's params (`loss.lambda=0.1`, `seed=3`) or its `status`.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    pub key: String,
    pub value: Sql,
}

impl Filter {
    /// Parses `key=value`; the value is read as an integer, then a float (`inf` included),
    /// then text, matching how params are stored.
    pub fn parse(text: &str) -> Result<Filter> {
        let Some((key, value)) = text.split_once('=') else {
            return Err(Error::flag("--where", text, "expected key=value, e.g. loss.lambda=0.1"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(Error::flag("--where", text, "the key is empty"));
        }
        let value = if let Ok(i) = value.parse::<i64>() {
            Sql::Integer(i)
        } else if let Ok(f) = value.parse::<f64>() {
            Sql::Real(f)
        } else {
            Sql::Text(value.to_string())
        };
        Ok(Filter { key: key.to_string(), value })
    }
}

/// Which runs a query reads.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only this experiment (all when `None`).
    pub experiment: Option<String>,
    pub filters: Vec<Filter>,
    /// Of each cell (experiment, config hash), only its newest finished run under the current
    /// format version: reruns (`--force`) and stale results are not counted twice.
    pub latest_only: bool,
}

/// Ids of the selected runs, in id order.
pub(crate) fn run_ids(conn: &Connection, sel: &Selection) -> Result<Vec<i64>> {
    let mut sql = String::from("SELECT id FROM runs r WHERE (?1 IS NULL OR r.experiment = ?1)");
    let mut args: Vec<Sql> = vec![sel.experiment.clone().map_or(Sql::Null, Sql::Text)];
    for f in &sel.filters {
        let (k, v) = (args.len() + 1, args.len() + 2);
        if f.key == "status" {
            sql.push_str(&format!(" AND r.status = ?{v} AND ?{k} IS NOT NULL"));
        } else {
            sql.push_str(&format!(
                " AND r.id IN (SELECT run_id FROM params WHERE key = ?{k} AND value = ?{v})"
            ));
        }
        args.push(Sql::Text(f.key.clone()));
        args.push(f.value.clone());
    }
    if sel.latest_only {
        sql.push_str(&format!(
            " AND r.id IN (SELECT max(id) FROM runs WHERE status = 'finished' AND format_version = {} \
             GROUP BY experiment, config_hash)",
            crate::experiment::config::FORMAT_VERSION
        ));
    }
    sql.push_str(" ORDER BY r.id");
    let mut stmt = conn.prepare(&sql).map_err(Error::on(conn))?;
    let ids = stmt
        .query_map(rusqlite::params_from_iter(args), |r| r.get(0))
        .map_err(Error::on(conn))?
        .collect::<rusqlite::Result<Vec<i64>>>()
        .map_err(Error::on(conn))?;
    Ok(ids)
}

fn polars_err(e: PolarsError) -> Error {
    Error::report(format!("polars: {e}"))
}

/// Fills a temporary table with the selected run ids, so queries join on it instead of
/// binding thousands of parameters.
fn select_into_temp(conn: &Connection, sel: &Selection) -> Result<usize> {
    ids_into_temp(conn, &run_ids(conn, sel)?)
}

/// Fills the temporary table of selected runs with `ids`.
fn ids_into_temp(conn: &Connection, ids: &[i64]) -> Result<usize> {
    conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS sel (id INTEGER PRIMARY KEY); DELETE FROM temp.sel;")
        .map_err(Error::on(conn))?;
    let mut ins = conn.prepare("INSERT INTO temp.sel (id) VALUES (?1)").map_err(Error::on(conn))?;
    for id in ids {
        ins.execute([id]).map_err(Error::on(conn))?;
    }
    Ok(ids.len())
}

/// Param values by key, one per selected run (NULL where a run lacks the key).
type ParamColumns = BTreeMap<String, Vec<Sql>>;

/// Params of the selected runs as typed columns, one row per run: `run_id` first, then the
/// keys in name order (only swept keys when `swept_only`).
fn param_columns(conn: &Connection, swept_only: bool) -> Result<(Vec<i64>, ParamColumns)> {
    let mut ids = Vec::new();
    let mut stmt = conn.prepare("SELECT id FROM temp.sel ORDER BY id").map_err(Error::on(conn))?;
    for id in stmt.query_map([], |r| r.get::<_, i64>(0)).map_err(Error::on(conn))? {
        ids.push(id.map_err(Error::on(conn))?);
    }
    let row_of: std::collections::HashMap<i64, usize> =
        ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut cols: BTreeMap<String, Vec<Sql>> = BTreeMap::new();
    let keys_sql = if swept_only {
        "SELECT p.run_id, p.key, p.value FROM params p JOIN temp.sel s ON s.id = p.run_id WHERE p.swept = 1"
    } else {
        "SELECT p.run_id, p.key, p.value FROM params p JOIN temp.sel s ON s.id = p.run_id"
    };
    let mut stmt = conn.prepare(keys_sql).map_err(Error::on(conn))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Sql>(2)?)));
    for row in rows.map_err(Error::on(conn))? {
        let (id, key, value) = row.map_err(Error::on(conn))?;
        let col = cols.entry(key).or_insert_with(|| vec![Sql::Null; ids.len()]);
        col[row_of[&id]] = value;
    }
    Ok((ids, cols))
}

/// A typed polars column from SQLite values: Int64 if all integers, Float64 if all numbers,
/// else String (numbers written as text).
fn sql_column(name: &str, values: &[Sql]) -> Column {
    let all = |f: fn(&Sql) -> bool| values.iter().all(|v| matches!(v, Sql::Null) || f(v));
    if all(|v| matches!(v, Sql::Integer(_))) {
        let xs: Vec<Option<i64>> =
            values.iter().map(|v| if let Sql::Integer(i) = v { Some(*i) } else { None }).collect();
        Column::new(name.into(), xs)
    } else if all(|v| matches!(v, Sql::Integer(_) | Sql::Real(_))) {
        let xs: Vec<Option<f64>> = values
            .iter()
            .map(|v| match v {
                Sql::Integer(i) => Some(*i as f64),
                Sql::Real(f) => Some(*f),
                _ => None,
            })
            .collect();
        Column::new(name.into(), xs)
    } else {
        let xs: Vec<Option<String>> = values
            .iter()
            .map(|v| match v {
                Sql::Null => None,
                Sql::Integer(i) => Some(i.to_string()),
                Sql::Real(f) => Some(f.to_string()),
                Sql::Text(t) => Some(t.clone()),
                Sql::Blob(b) => Some(format!("<{} bytes>", b.len())),
            })
            .collect();
        Column::new(name.into(), xs)
    }
}

/// Runs joined with their params: one row per run, columns `run_id`, `experiment`, `status`,
/// `seed`, `wall_seconds`, `device`, `threads`, `config_hash`, `uid`, then one typed column per param
/// key (all keys, or the swept ones).
pub fn runs(conn: &Connection, sel: &Selection, swept_only: bool) -> Result<DataFrame> {
    select_into_temp(conn, sel)?;
    let (ids, params) = param_columns(conn, swept_only)?;
    let mut meta: Vec<[Sql; 8]> = Vec::with_capacity(ids.len());
    let mut stmt = conn
        .prepare(
            "SELECT r.experiment, r.status, r.seed, r.wall_seconds, r.device, r.threads, r.config_hash, r.uid
             FROM runs r JOIN temp.sel s ON s.id = r.id ORDER BY r.id",
        )
        .map_err(Error::on(conn))?;
    let rows = stmt.query_map([], |r| {
        Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?])
    });
    for row in rows.map_err(Error::on(conn))? {
        meta.push(row.map_err(Error::on(conn))?);
    }
    let mut columns = vec![Column::new("run_id".into(), ids.clone())];
    for (i, name) in
        ["experiment", "status", "seed", "wall_seconds", "device", "threads", "config_hash", "uid"]
            .iter()
            .enumerate()
    {
        let values: Vec<Sql> = meta.iter().map(|m| m[i].clone()).collect();
        columns.push(sql_column(name, &values));
    }
    for (key, values) in &params {
        if key != "seed" {
            columns.push(sql_column(key, values));
        }
    }
    DataFrame::new(ids.len(), columns).map_err(polars_err)
}

/// Metric curves in long form: `run_id`, swept param columns, `split`, `metric`, `step`,
/// `value`, for the given metrics (all when empty) and split (all when `None`).
pub fn curves(
    conn: &Connection,
    sel: &Selection,
    metrics: &[String],
    split: Option<&str>,
) -> Result<DataFrame> {
    select_into_temp(conn, sel)?;
    let (ids, params) = param_columns(conn, true)?;
    let row_of: std::collections::HashMap<i64, usize> =
        ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let names = serde_json::to_string(metrics).expect("strings serialize");
    let mut stmt = conn
        .prepare(
            "SELECT m.run_id, m.split, m.name, m.step, m.value FROM metrics m JOIN temp.sel s ON s.id = m.run_id
             WHERE (?1 IS NULL OR m.split = ?1)
               AND (json_array_length(?2) = 0 OR m.name IN (SELECT value FROM json_each(?2)))
             ORDER BY m.run_id, m.split, m.name, m.step",
        )
        .map_err(Error::on(conn))?;
    let (mut run, mut sp, mut nm, mut st, mut va) = (vec![], vec![], vec![], vec![], vec![]);
    let rows = stmt.query_map(rusqlite::params![split, names], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<f64>>(4)?,
        ))
    });
    for row in rows.map_err(Error::on(conn))? {
        let (a, b, c, d, e) = row.map_err(Error::on(conn))?;
        run.push(a);
        sp.push(b);
        nm.push(c);
        st.push(d);
        va.push(e);
    }
    let n = run.len();
    let mut columns = vec![Column::new("run_id".into(), run.clone())];
    for (key, values) in &params {
        let expanded: Vec<Sql> = run.iter().map(|id| values[row_of[id]].clone()).collect();
        columns.push(sql_column(key, &expanded));
    }
    columns.push(Column::new("split".into(), sp));
    columns.push(Column::new("metric".into(), nm));
    columns.push(Column::new("step".into(), st));
    columns.push(Column::new("value".into(), va));
    DataFrame::new(n, columns).map_err(polars_err)
}

/// Which value of each run a summary aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// The value at the last evaluation.
    Final,
    /// The best value over evaluations (losses: lowest; accuracies, correlations: highest).
    Best,
}

/// Final (or best) metric values of finished runs, aggregated over runs by experiment and
/// `group_by` keys (default: every swept key except `seed`): per group, split and metric, `n`, `mean`, `std`
/// (sample, n − 1), `sem` = std/√n, and a 95 % confidence interval `ci95_lo`, `ci95_hi` from
/// Student's t with n − 1 degrees of freedom (null when n = 1).
///
/// A group never pools two runs of one seed as if they were seeds: when runs of one seed fall
/// into one group (cells of an edited spec beside the old ones, a `--set` sweep beside the
/// spec's, a `--group-by` that leaves out a swept key), the keys in which they differ are added
/// to the grouping, and a note returned beside the frame says so. Reruns of one cell
/// (`all_runs`) differ in nothing and stay pooled, with a note.
pub fn summary(
    conn: &Connection,
    sel: &Selection,
    group_by: &[String],
    metrics: &[String],
    split: Option<&str>,
    stat: Stat,
) -> Result<(DataFrame, Vec<String>)> {
    let mut sel = sel.clone();
    if !sel.filters.iter().any(|f| f.key == "status") {
        sel.filters.push(Filter { key: "status".into(), value: Sql::Text("finished".into()) });
    }
    check_metrics(metrics)?;
    select_into_temp(conn, &sel)?;
    summarize_selected(conn, group_by, metrics, split, stat)
}

/// [`summary`] of exactly the runs `ids` (finished or not, as given): a report's table of a
/// spec's cells, each by the run its figures draw.
pub fn summary_of_runs(
    conn: &Connection,
    ids: &[i64],
    group_by: &[String],
    metrics: &[String],
    split: Option<&str>,
    stat: Stat,
) -> Result<(DataFrame, Vec<String>)> {
    check_metrics(metrics)?;
    ids_into_temp(conn, ids)?;
    summarize_selected(conn, group_by, metrics, split, stat)
}

/// [`summary`] of the runs in the temporary selection.
fn summarize_selected(
    conn: &Connection,
    group_by: &[String],
    metrics: &[String],
    split: Option<&str>,
    stat: Stat,
) -> Result<(DataFrame, Vec<String>)> {
    let (ids, params) = param_columns(conn, false)?;
    let swept: BTreeSet<String> = {
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT p.key FROM params p JOIN temp.sel s ON s.id = p.run_id WHERE p.swept = 1",
            )
            .map_err(Error::on(conn))?;
        let keys = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(Error::on(conn))?;
        keys.collect::<rusqlite::Result<_>>().map_err(Error::on(conn))?
    };
    let axes: Vec<String> = if group_by.is_empty() {
        swept.into_iter().filter(|k| k != "seed").collect()
    } else {
        group_by.to_vec()
    };
    for a in &axes {
        if !params.contains_key(a) && !ids.is_empty() {
            let known: Vec<&String> = params.keys().collect();
            return Err(Error::flag(
                "--group-by",
                a,
                format!(
                    "no such param in the selected runs; known: {}",
                    known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let experiments: std::collections::HashMap<i64, String> = {
        let mut stmt = conn
            .prepare("SELECT r.id, r.experiment FROM runs r JOIN temp.sel s ON s.id = r.id")
            .map_err(Error::on(conn))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(Error::on(conn))?;
        rows.collect::<rusqlite::Result<_>>().map_err(Error::on(conn))?
    };
    let (axes, notes) = split_pooled(&ids, &params, &experiments, axes);
    let row_of: std::collections::HashMap<i64, usize> =
        ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let value_col = match stat {
        Stat::Final => "final_value",
        Stat::Best => "best_value",
    };
    let names = serde_json::to_string(metrics).expect("strings serialize");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT m.run_id, m.split, m.name, m.{value_col} FROM summaries m JOIN temp.sel s ON s.id = m.run_id
             WHERE (?1 IS NULL OR m.split = ?1)
               AND (json_array_length(?2) = 0 OR m.name IN (SELECT value FROM json_each(?2)))"
        ))
        .map_err(Error::on(conn))?;
    let (mut run, mut sp, mut nm, mut va) = (vec![], vec![], vec![], vec![]);
    let rows = stmt.query_map(rusqlite::params![split, names], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, Option<f64>>(3)?))
    });
    for row in rows.map_err(Error::on(conn))? {
        let (a, b, c, d) = row.map_err(Error::on(conn))?;
        run.push(a);
        sp.push(b);
        nm.push(c);
        va.push(d);
    }
    let n = run.len();
    let mut columns = vec![Column::new(
        "experiment".into(),
        run.iter().map(|id| experiments[id].clone()).collect::<Vec<String>>(),
    )];
    for key in &axes {
        let expanded: Vec<Sql> = run.iter().map(|id| params[key][row_of[id]].clone()).collect();
        columns.push(sql_column(key, &expanded));
    }
    columns.push(Column::new("split".into(), sp));
    columns.push(Column::new("metric".into(), nm));
    columns.push(Column::new("value".into(), va));
    let long = DataFrame::new(n, columns).map_err(polars_err)?;

    let mut keys: Vec<Expr> = vec![col("experiment")];
    keys.extend(axes.iter().map(|a| col(a.as_str())));
    keys.push(col("split"));
    keys.push(col("metric"));
    let grouped = long
        .lazy()
        .group_by(keys.clone())
        .agg([col("value").alias("values")])
        .sort_by_exprs(keys, SortMultipleOptions::default().with_nulls_last(true))
        .collect()
        .map_err(polars_err)?;
    Ok((with_statistics(grouped)?, notes))
}

/// The grouping `axes` extended by every param in which two runs of one seed in one group
/// (per experiment) differ, and a note for each addition and for reruns left pooled.
fn split_pooled(
    ids: &[i64],
    params: &ParamColumns,
    experiments: &std::collections::HashMap<i64, String>,
    mut axes: Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let Some(seeds) = params.get("seed") else { return (axes, notes) };
    // Groups of row indices by experiment and axis values; rows of one seed repeated in one.
    let pooled = |axes: &[String]| -> Vec<Vec<usize>> {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (row, id) in ids.iter().enumerate() {
            let values: Vec<String> =
                axes.iter().map(|a| params.get(a).map_or("∅".into(), |c| format!("{:?}", c[row]))).collect();
            groups
                .entry(format!("{}\u{1f}{}", experiments[id], values.join("\u{1f}")))
                .or_default()
                .push(row);
        }
        groups
            .into_values()
            .filter(|rows| {
                let distinct: BTreeSet<String> = rows.iter().map(|&r| format!("{:?}", seeds[r])).collect();
                distinct.len() < rows.len()
            })
            .collect()
    };
    let groups = pooled(&axes);
    if groups.is_empty() {
        return (axes, notes);
    }
    let mut differ: BTreeSet<String> = BTreeSet::new();
    for rows in &groups {
        for (key, column) in params {
            if key == "seed" || axes.contains(key) {
                continue;
            }
            let values: BTreeSet<String> = rows.iter().map(|&r| format!("{:?}", column[r])).collect();
            if values.len() > 1 {
                differ.insert(key.clone());
            }
        }
    }
    if !differ.is_empty() {
        let keys: Vec<String> = differ.iter().map(|k| format!("`{k}`")).collect();
        notes.push(format!(
            "{} group(s) held runs of one seed that differ in {}: split by {} rather than pooled as seeds",
            groups.len(),
            keys.join(", "),
            if differ.len() == 1 { "it" } else { "them" }
        ));
        axes.extend(differ);
    }
    let reruns = pooled(&axes);
    if !reruns.is_empty() {
        notes.push(format!(
            "{} group(s) pool reruns of one cell (same config and seed) as if they were seeds",
            reruns.len()
        ));
    }
    (axes, notes)
}

/// Replaces the list column `values` of a grouped frame by its [`Summary`]: `n` (finite
/// values), `mean`, `std`, `sem`, `ci95_lo`, `ci95_hi`, and `n_nonfinite`, the values left out
/// as NaN (stored as NULL) or ±inf, as every figure leaves them out.
fn with_statistics(mut df: DataFrame) -> Result<DataFrame> {
    let lists = df.column("values").map_err(polars_err)?.list().map_err(polars_err)?.clone();
    let (mut n, mut mean, mut std, mut sem, mut lo, mut hi) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut nonfinite = Vec::new();
    for list in lists.amortized_iter().map(|s| s.map(|s| s.as_ref().clone())) {
        let values: Vec<f64> = match list {
            Some(series) => series.f64().map_err(polars_err)?.iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
            None => Vec::new(),
        };
        let s = Summary::of(&values);
        n.push(s.map_or(0, |s| s.n as i64));
        nonfinite.push(s.map_or(values.len(), |s| s.n_nonfinite) as i64);
        mean.push(s.map(|s| s.mean));
        std.push(s.and_then(|s| s.std));
        sem.push(s.and_then(|s| s.sem));
        lo.push(s.and_then(|s| s.ci95).map(|c| c.0));
        hi.push(s.and_then(|s| s.ci95).map(|c| c.1));
    }
    df = df.drop("values").map_err(polars_err)?;
    for column in [
        Column::new("n".into(), n),
        Column::new("mean".into(), mean),
        Column::new("std".into(), std),
        Column::new("sem".into(), sem),
        Column::new("ci95_lo".into(), lo),
        Column::new("ci95_hi".into(), hi),
        Column::new("n_nonfinite".into(), nonfinite),
    ] {
        df.with_column(column).map_err(polars_err)?;
    }
    Ok(df)
}

/// Which frame `rmlab query` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// One row per run with its params ([`runs`]).
    Runs,
    /// Metric values at every evaluation, long form ([`curves`]).
    Curves,
    /// Final (or best) values aggregated over seeds ([`summary`]).
    Summary,
}

/// A query as the command line states it.
#[derive(Clone, Debug)]
pub struct QueryRequest {
    pub kind: QueryKind,
    pub experiment: Option<String>,
    /// `key=value` filters, as typed.
    pub filters: Vec<String>,
    pub group_by: Vec<String>,
    pub metrics: Vec<String>,
    pub split: Option<String>,
    pub stat: Stat,
    /// Runs: every param, not only the swept ones.
    pub all_params: bool,
    /// Curves, summary: every finished run, not only the newest of each cell.
    pub all_runs: bool,
    /// The frame is for reading (an aligned table): columns that say nothing there are dropped.
    pub for_reading: bool,
}

/// Answers `req` from the store at `db`: checks the experiment and split it names, runs the
/// query, and for reading drops what a table does not need (the experiment column when one
/// was asked for; hash, device and threads of runs).
pub fn answer(db: &std::path::Path, req: &QueryRequest) -> Result<(DataFrame, Vec<String>)> {
    let store = crate::store::Store::open_read_only(db)?;
    let conn = store.connection();
    let sel = Selection {
        experiment: req.experiment.clone(),
        filters: req.filters.iter().map(|f| Filter::parse(f)).collect::<Result<_>>()?,
        // Runs lists every run; curves and summaries count each cell once.
        latest_only: req.kind != QueryKind::Runs && !req.all_runs,
    };
    check_experiment(conn, db, req.experiment.as_deref())?;
    if let Some(s) = &req.split {
        // Evaluation files are splits of their own, named in their specs: the store knows them.
        let mut known: Vec<String> = ["train", "val", "test"].into_iter().map(String::from).collect();
        let mut stmt = conn
            .prepare("SELECT DISTINCT split FROM summaries ORDER BY split")
            .map_err(|err| Error::sqlite(db, err))?;
        let stored = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|err| Error::sqlite(db, err))?;
        for split in stored {
            let split = split.map_err(|err| Error::sqlite(db, err))?;
            if !known.contains(&split) {
                known.push(split);
            }
        }
        if !known.contains(s) {
            return Err(Error::flag(
                "--split",
                s,
                format!("no such split; expected one of {}", known.join(", ")),
            ));
        }
    }
    if req.kind != QueryKind::Runs {
        check_metrics(&req.metrics)?;
    }
    check_filter_keys(conn, req.experiment.as_deref(), &sel.filters)?;
    let mut notes = Vec::new();
    if req.kind == QueryKind::Summary {
        notes.extend(left_out(conn, &sel)?);
    }
    let mut df = match req.kind {
        QueryKind::Runs => runs(conn, &sel, !req.all_params)?,
        QueryKind::Curves => curves(conn, &sel, &req.metrics, req.split.as_deref())?,
        QueryKind::Summary => {
            let (df, pooled) =
                summary(conn, &sel, &req.group_by, &req.metrics, req.split.as_deref(), req.stat)?;
            notes.extend(pooled);
            df
        }
    };
    if req.for_reading
        && req.experiment.is_some()
        && df.get_column_names().iter().any(|c| c.as_str() == "experiment")
    {
        // One experiment was asked for: the column says nothing.
        df = df.drop("experiment").map_err(polars_err)?;
    }
    if req.kind == QueryKind::Runs && req.for_reading && !req.all_params {
        // The id columns a reader needs; the rest (hash, device, threads) are in csv/json output.
        let keep: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !["config_hash", "uid", "device", "threads"].contains(&c.as_str()))
            .collect();
        df = df.select(keep).map_err(polars_err)?;
    }
    Ok((df, notes))
}

/// Refuses metric names that no run records.
fn check_metrics(metrics: &[String]) -> Result<()> {
    for m in metrics {
        if !crate::experiment::metric::all_names().any(|n| n == m) {
            let known: Vec<&str> = crate::experiment::metric::all_names().collect();
            return Err(Error::flag("--metrics", m, format!("unknown metric; known: {}", known.join(", "))));
        }
    }
    Ok(())
}

/// Refuses `--where` keys that no selected run has (a misspelt key would select nothing).
pub(crate) fn check_filter_keys(
    conn: &Connection,
    experiment: Option<&str>,
    filters: &[Filter],
) -> Result<()> {
    if filters.iter().all(|f| f.key == "status") {
        return Ok(());
    }
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT p.key FROM params p JOIN runs r ON r.id = p.run_id
             WHERE ?1 IS NULL OR r.experiment = ?1 ORDER BY p.key",
        )
        .map_err(Error::on(conn))?;
    let known: Vec<String> = stmt
        .query_map([experiment], |r| r.get(0))
        .map_err(Error::on(conn))?
        .collect::<rusqlite::Result<_>>()
        .map_err(Error::on(conn))?;
    for f in filters {
        if f.key != "status" && !known.contains(&f.key) {
            let hint = if known.is_empty() {
                "the store has no runs".to_string()
            } else {
                format!("known: status, {}", known.join(", "))
            };
            return Err(Error::flag("--where", &f.key, format!("no selected run has this key; {hint}")));
        }
    }
    Ok(())
}

/// What a summary leaves out: cells (experiment, config hash) of the selection without a
/// finished run under the current format version, counted by the status of their newest run.
fn left_out(conn: &Connection, sel: &Selection) -> Result<Vec<String>> {
    let all = Selection {
        latest_only: false,
        filters: sel.filters.iter().filter(|f| f.key != "status").cloned().collect(),
        ..sel.clone()
    };
    let ids = run_ids(conn, &all)?;
    let mut stmt = conn
        .prepare("SELECT experiment, config_hash, status, format_version FROM runs WHERE id = ?1")
        .map_err(Error::on(conn))?;
    // Per cell: (has a current finished run, status of its newest run); ids ascend.
    let mut cells: BTreeMap<(String, String), (bool, String)> = BTreeMap::new();
    for id in ids {
        let (e, h, status, version): (String, String, String, i64) = stmt
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(Error::on(conn))?;
        let current = version == crate::experiment::config::FORMAT_VERSION as i64;
        let entry = cells.entry((e, h)).or_insert((false, String::new()));
        entry.0 |= current && status == "finished";
        entry.1 = if current { status } else { "stale".into() };
    }
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (finished, status) in cells.values() {
        if !finished {
            *by_status.entry(status.clone()).or_default() += 1;
        }
    }
    if by_status.is_empty() {
        return Ok(vec![]);
    }
    let total: usize = by_status.values().sum();
    let parts: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    Ok(vec![format!(
        "{total} of {} cells left out of the summary, having no finished run: {}",
        cells.len(),
        parts.join(", ")
    )])
}

/// `--experiment`, when given, names an experiment of the store `db`: bad input otherwise.
pub(crate) fn check_experiment(
    conn: &Connection,
    db: &std::path::Path,
    experiment: Option<&str>,
) -> Result<()> {
    let Some(e) = experiment else { return Ok(()) };
    let known: bool = conn
        .query_row("SELECT count(*) > 0 FROM experiments WHERE name = ?1", [e], |r| r.get(0))
        .map_err(|err| Error::sqlite(db, err))?;
    if !known {
        return Err(Error::flag("--experiment", e, format!("no such experiment in {}", db.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_typed_values() {
        assert_eq!(Filter::parse("seed=3").unwrap().value, Sql::Integer(3));
        assert_eq!(
            Filter::parse("loss.lambda = 0.1").unwrap(),
            Filter { key: "loss.lambda".into(), value: Sql::Real(0.1) }
        );
        assert_eq!(Filter::parse("data.beta=inf").unwrap().value, Sql::Real(f64::INFINITY));
        assert_eq!(Filter::parse("status=finished").unwrap().value, Sql::Text("finished".into()));
        assert!(Filter::parse("lambda").is_err());
        assert!(Filter::parse("=3").is_err());
    }
}
