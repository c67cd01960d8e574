//! What a figure shows, read from the store: lines of means with bands, baselines, rewards.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use rusqlite::types::Value as Sql;

use crate::error::{Error, Result};
use crate::eval::stats::Summary;
pub use crate::experiment::figure::{Band, Statistic};

/// Mean over runs with a band; no band when n < 2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub band: Option<(f64, f64)>,
    pub n: usize,
}

/// Mean and band of the finite values ([`Summary::of`]: NaN and inf are left out, as in
/// every table), the band cut to `range`, the values the metric can take
/// ([`crate::experiment::metric::range`]).
pub fn stat(values: &[f64], band: Band, range: Option<(f64, f64)>) -> Option<Stat> {
    let s = Summary::of(values)?;
    let band = match band {
        Band::Ci95 => s.ci95,
        Band::Sem => s.sem.map(|sem| (s.mean - sem, s.mean + sem)),
    };
    let band = match range {
        Some((low, high)) => band.map(|(lo, hi)| (lo.max(low), hi.min(high))),
        None => band,
    };
    Some(Stat { mean: s.mean, band, n: s.n })
}

/// The values of some param keys for a run, as a sortable key.
pub type GroupKey = Vec<OrdValue>;

/// A param value that sorts numbers numerically, then text.
#[derive(Clone, Debug, PartialEq)]
pub enum OrdValue {
    Num(f64),
    Text(String),
    Missing,
}

impl Eq for OrdValue {}
impl PartialOrd for OrdValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use OrdValue::*;
        match (self, other) {
            (Num(a), Num(b)) => a.total_cmp(b),
            (Num(_), _) => std::cmp::Ordering::Less,
            (_, Num(_)) => std::cmp::Ordering::Greater,
            (Text(a), Text(b)) => a.cmp(b),
            (Text(_), Missing) => std::cmp::Ordering::Less,
            (Missing, Text(_)) => std::cmp::Ordering::Greater,
            (Missing, Missing) => std::cmp::Ordering::Equal,
        }
    }
}

impl OrdValue {
    fn of(v: &Sql) -> OrdValue {
        match v {
            Sql::Integer(i) => OrdValue::Num(*i as f64),
            Sql::Real(f) => OrdValue::Num(*f),
            Sql::Text(t) => OrdValue::Text(t.clone()),
            _ => OrdValue::Missing,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        if let OrdValue::Num(x) = self { Some(*x) } else { None }
    }

    /// Legend text: ∞, 0.001, `mlp`.
    pub fn label(&self) -> String {
        match self {
            OrdValue::Num(x) if x.is_infinite() => "∞".into(),
            OrdValue::Num(x) => super::style::tick(*x),
            OrdValue::Text(t) => t.clone(),
            OrdValue::Missing => "—".into(),
        }
    }
}

/// A run selected for a figure, with the param values the figure groups by.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub id: i64,
    pub seed: i64,
    pub params: BTreeMap<String, OrdValue>,
    /// Keys the sweep set for this run, `seed` included.
    pub swept: BTreeSet<String>,
}

/// A cell of the spec a figure is drawn for: its identity, label and params (the flattened
/// config, as the store keeps them), so `where` filters select cells as they select runs.
#[derive(Clone, Debug)]
pub struct SpecCell {
    pub hash: String,
    pub label: String,
    pub params: BTreeMap<String, Sql>,
}

impl SpecCell {
    pub fn of(cell: &crate::experiment::Cell) -> SpecCell {
        SpecCell {
            hash: cell.hash.clone(),
            label: cell.label(),
            params: crate::store::flatten_config(&cell.config).into_iter().collect(),
        }
    }

    fn matches(&self, filters: &BTreeMap<String, Vec<Sql>>) -> bool {
        filters
            .iter()
            .all(|(k, values)| self.params.get(k).is_some_and(|p| values.iter().any(|v| sql_eq(p, v))))
    }
}

/// Which of a figure's cells it shows: the spec's cells that its `where` admits, and those of
/// them without a finished run under the current format version, with the state of each
/// (`running`, `failed`, `stale`, `not run`, …).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Coverage {
    /// Cells of the spec the figure's `where` admits.
    pub cells: usize,
    /// Of those, the cells drawn (each by its newest finished run).
    pub shown: usize,
    /// `(cell label, state)` of each cell not drawn, in the spec's order.
    pub missing: Vec<(String, String)>,
}

impl Coverage {
    /// Missing cells counted by state, in state order: `3 running, 69 not run`.
    pub fn missing_by_state(&self) -> String {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, state) in &self.missing {
            *by.entry(state.as_str()).or_default() += 1;
        }
        by.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ")
    }
}

/// The newest finished run (current format version) of each of the spec's `cells` that
/// `filters` admit (a param matches one of its key's values): exactly the spec's cells, so
/// runs of an edited spec or of another `--set` are never pooled with them. `states` gives the
/// recorded state of each config hash, for the cells without such a run.
pub fn finished_runs(
    conn: &Connection,
    experiment: &str,
    cells: &[SpecCell],
    states: &std::collections::HashMap<String, String>,
    filters: &BTreeMap<String, Vec<Sql>>,
) -> Result<(Vec<RunInfo>, Coverage)> {
    let sql_err = Error::on(conn);
    let mut newest: std::collections::HashMap<String, (i64, i64)> = Default::default();
    {
        let mut stmt = conn
            // The newest finished run of each cell under the current format version: reruns
            // and stale results are not counted twice.
            .prepare(&format!(
                "SELECT config_hash, max(id), seed FROM runs WHERE experiment = ?1 AND status = 'finished'
                 AND format_version = {} GROUP BY config_hash",
                crate::experiment::config::FORMAT_VERSION
            ))
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([experiment], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(sql_err)?;
        for row in rows {
            let (hash, id, seed) = row.map_err(sql_err)?;
            newest.insert(hash, (id, seed));
        }
    }
    let mut coverage = Coverage::default();
    let mut ids = Vec::new();
    for cell in cells.iter().filter(|c| c.matches(filters)) {
        coverage.cells += 1;
        match newest.get(&cell.hash) {
            Some(&(id, seed)) => ids.push((id, seed)),
            None => {
                let state = states.get(&cell.hash).cloned().unwrap_or_else(|| "not run".into());
                coverage.missing.push((cell.label.clone(), state));
            }
        }
    }
    coverage.shown = ids.len();
    ids.sort_unstable();
    let mut runs = Vec::new();
    let mut pstmt =
        conn.prepare("SELECT key, value, swept FROM params WHERE run_id = ?1").map_err(sql_err)?;
    for (id, seed) in ids {
        let rows: Vec<(String, Sql, bool)> = pstmt
            .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Sql>(1)?, r.get::<_, bool>(2)?)))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err)?;
        let swept: BTreeSet<String> = rows.iter().filter(|r| r.2).map(|r| r.0.clone()).collect();
        let params: BTreeMap<String, Sql> = rows.into_iter().map(|(k, v, _)| (k, v)).collect();
        runs.push(RunInfo {
            id,
            seed,
            params: params.iter().map(|(k, v)| (k.clone(), OrdValue::of(v))).collect(),
            swept,
        });
    }
    Ok((runs, coverage))
}

fn sql_eq(a: &Sql, b: &Sql) -> bool {
    match (a, b) {
        (Sql::Integer(x), Sql::Real(y)) | (Sql::Real(y), Sql::Integer(x)) => *x as f64 == *y,
        _ => a == b,
    }
}

impl RunInfo {
    /// The values of `keys` for this run.
    pub fn key(&self, keys: &[String]) -> GroupKey {
        keys.iter().map(|k| self.params.get(k).cloned().unwrap_or(OrdValue::Missing)).collect()
    }
}

/// Metric values per run: `(run id, step) → value` for one split and metric.
pub fn metric_curves(
    conn: &Connection,
    runs: &[RunInfo],
    split: &str,
    metric: &str,
) -> Result<BTreeMap<i64, Vec<(i64, f64)>>> {
    let sql_err = Error::on(conn);
    let mut stmt = conn
        .prepare(
            "SELECT step, value FROM metrics WHERE run_id = ?1 AND split = ?2 AND name = ?3 ORDER BY step",
        )
        .map_err(sql_err)?;
    let mut out = BTreeMap::new();
    for r in runs {
        let rows: Vec<(i64, Option<f64>)> = stmt
            .query_map(rusqlite::params![r.id, split, metric], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err)?;
        out.insert(r.id, rows.into_iter().map(|(s, v)| (s, v.unwrap_or(f64::NAN))).collect());
    }
    Ok(out)
}

/// Final or best value of one metric per run (summaries table, the columns `rmlab query
/// summary --stat final|best` reads).
pub fn summary_values(
    conn: &Connection,
    runs: &[RunInfo],
    split: &str,
    metric: &str,
    stat: Statistic,
) -> Result<BTreeMap<i64, f64>> {
    let sql_err = Error::on(conn);
    let column = match stat {
        Statistic::Final => "final_value",
        Statistic::Best => "best_value",
    };
    let mut stmt = conn
        .prepare(&format!("SELECT {column} FROM summaries WHERE run_id = ?1 AND split = ?2 AND name = ?3"))
        .map_err(sql_err)?;
    let mut out = BTreeMap::new();
    for r in runs {
        let v: Option<Option<f64>> = stmt
            .query_row(rusqlite::params![r.id, split, metric], |row| row.get(0))
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(sql_err)?;
        if let Some(v) = v {
            out.insert(r.id, v.unwrap_or(f64::NAN));
        }
    }
    Ok(out)
}

/// The steps the runs' final values were taken at (their last evaluation; earlier for a run
/// stopped early), distinct and in order: a figure of final values states its horizon.
pub fn final_steps(conn: &Connection, runs: &[RunInfo]) -> Result<BTreeSet<i64>> {
    let sql_err = Error::on(conn);
    let mut stmt =
        conn.prepare("SELECT DISTINCT final_step FROM summaries WHERE run_id = ?1").map_err(sql_err)?;
    let mut steps = BTreeSet::new();
    for r in runs {
        let rows = stmt.query_map([r.id], |row| row.get::<_, i64>(0)).map_err(sql_err)?;
        for step in rows {
            steps.insert(step.map_err(sql_err)?);
        }
    }
    Ok(steps)
}

/// Final rewards of one run: `(prompt, reward, true reward)` for the responses of a split.
pub fn rewards(conn: &Connection, run: i64, split: &str) -> Result<Vec<(i64, f64, Option<f64>)>> {
    let sql_err = Error::on(conn);
    let mut stmt = conn
        .prepare("SELECT prompt, reward, true_reward FROM rewards WHERE run_id = ?1 AND split = ?2 ORDER BY response")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(rusqlite::params![run, split], |r| Ok((r.get(0)?, r.get::<_, Option<f64>>(1)?, r.get(2)?)))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<(i64, Option<f64>, Option<f64>)>>>()
        .map_err(sql_err)?;
    Ok(rows.into_iter().filter_map(|(p, r, t)| r.map(|r| (p, r, t))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_matches_hand_computation() {
        // values 1, 2, 3: mean 2, sd 1, sem 1/√3, t(2) = 4.3027
        let s = stat(&[1.0, 2.0, 3.0], Band::Ci95, None).unwrap();
        assert_eq!((s.mean, s.n), (2.0, 3));
        let (lo, hi) = s.band.unwrap();
        assert!((hi - 2.0 - 4.302_652_7 / 3f64.sqrt()).abs() < 1e-5 && (2.0 - lo - (hi - 2.0)).abs() < 1e-12);
        let s = stat(&[1.0, 2.0, 3.0], Band::Sem, None).unwrap();
        assert!((s.band.unwrap().1 - 2.0 - 1.0 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(stat(&[5.0, f64::NAN], Band::Ci95, None).unwrap(), Stat { mean: 5.0, band: None, n: 1 });
        assert!(stat(&[], Band::Ci95, None).is_none());
        // Two accuracies of 0.7 and 1.0: mean 0.85, t-interval 0.85 ± 12.706 · 0.15 = (−1.06, 2.76),
        // cut to [0, 1].
        let s = stat(&[0.7, 1.0], Band::Ci95, Some((0.0, 1.0))).unwrap();
        assert!((s.mean - 0.85).abs() < 1e-12);
        assert_eq!(s.band, Some((0.0, 1.0)));
        let wide = stat(&[0.7, 1.0], Band::Ci95, None).unwrap().band.unwrap();
        assert!(
            (wide.0 - (0.85 - 12.706_204_736 * 0.15)).abs() < 1e-6
                && (wide.1 - (0.85 + 12.706_204_736 * 0.15)).abs() < 1e-6
        );
    }

    #[test]
    fn values_sort_numerically_before_text() {
        let mut v =
            vec![OrdValue::Text("b".into()), OrdValue::Num(10.0), OrdValue::Missing, OrdValue::Num(2.0)];
        v.sort();
        assert_eq!(
            v,
            [OrdValue::Num(2.0), OrdValue::Num(10.0), OrdValue::Text("b".into()), OrdValue::Missing]
        );
    }
}
