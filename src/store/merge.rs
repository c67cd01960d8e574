//! Merging stores: copies the runs of other store files into one, each run at most once.
//!
//! Runs are identified across files by their `uid`, so merging the same file twice adds
//! nothing; a run of a cell that already has a finished run in the target is not copied either. Only runs that ended (`finished`, `diverged`, `failed`) are copied: a `running`
//! run in a source is a run whose process was killed or is still writing it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

use super::{SCHEMA_VERSION, Store, at};
use crate::error::{Error, Result};

/// What a merge did, per source.
#[derive(Debug, Default)]
pub struct MergeReport {
    /// `(source, runs copied, runs already present, runs skipped as still running)`.
    pub sources: Vec<(PathBuf, usize, usize, usize)>,
}

const RUN_COLUMNS: &str =
    "experiment, config_hash, config_json, format_version, seed, status, error, diverged_step,
    started_at, ended_at, wall_seconds, device, threads, host, pid, git_commit, git_dirty, rmlab_version,
    torch_version, uid, data_rows, data_skipped, engine, batch_group, diverged_reason, best_step, data_report";

/// Merges every source store into the store at `into` (created if missing). Sources must have
/// this rmlab's schema version; they are opened read-only and never changed.
pub fn merge(sources: &[PathBuf], into: &Path) -> Result<MergeReport> {
    // Check every source before writing anything.
    for src in sources {
        if !src.exists() {
            return Err(Error::Input(format!("{}: no such store", src.display())));
        }
        let conn = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| Error::sqlite(src, e))?;
        let version: i64 = at(src, conn.query_row("PRAGMA user_version", [], |r| r.get(0)))?;
        if version != SCHEMA_VERSION {
            return Err(Error::Input(format!(
                "{}: schema version {version}, but this rmlab writes version {SCHEMA_VERSION}; \
                 run `rmlab migrate {}` first (or merge with the rmlab that wrote it)",
                src.display(),
                src.display()
            )));
        }
        if std::fs::canonicalize(src).ok() == std::fs::canonicalize(into).ok() {
            return Err(Error::Input(format!("{}: cannot merge a store into itself", src.display())));
        }
    }
    let mut store = Store::open(into)?;
    let path = store.path.clone();
    let mut report = MergeReport::default();
    for src in sources {
        at(&path, store.conn.execute("ATTACH DATABASE ?1 AS src", [src.display().to_string()]))?;
        let counts = copy_runs(&mut store.conn).map_err(|e| Error::sqlite(&path, e));
        at(&path, store.conn.execute("DETACH DATABASE src", []))?;
        let (copied, present, running) = counts?;
        report.sources.push((src.clone(), copied, present, running));
    }
    Ok(report)
}

/// Copies the attached `src`'s ended runs missing from `main`, with everything that belongs to
/// them, in one transaction. Returns (copied, already present, still running).
fn copy_runs(conn: &mut Connection) -> rusqlite::Result<(usize, usize, usize)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO main.experiments SELECT * FROM src.experiments WHERE true ON CONFLICT (name) DO NOTHING",
        [],
    )?;
    let running: i64 =
        tx.query_row("SELECT count(*) FROM src.runs WHERE status = 'running'", [], |r| r.get(0))?;
    let present: i64 = tx.query_row(
        "SELECT count(*) FROM src.runs s WHERE s.status != 'running' AND (s.uid IN (SELECT uid FROM main.runs)
           OR EXISTS (SELECT 1 FROM main.runs m WHERE m.experiment = s.experiment AND m.config_hash = s.config_hash
               AND m.format_version = s.format_version AND m.status IN ('finished', 'diverged')))",
        [],
        |r| r.get(0),
    )?;
    // A run whose cell already has a finished (or diverged) run in the target is a duplicate
    // from two sweeps of one cell (a local sweep while an array was queued): it is not copied.
    let ids: Vec<i64> = {
        let mut stmt = tx.prepare(
            "SELECT s.id FROM src.runs s WHERE s.status != 'running' AND s.uid NOT IN (SELECT uid FROM main.runs)
               AND NOT EXISTS (SELECT 1 FROM main.runs m WHERE m.experiment = s.experiment
                   AND m.config_hash = s.config_hash AND m.format_version = s.format_version
                   AND m.status IN ('finished', 'diverged'))
             ORDER BY s.id",
        )?;
        stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?
    };
    for &old in &ids {
        tx.execute(
            &format!(
                "INSERT INTO main.runs ({RUN_COLUMNS}) SELECT {RUN_COLUMNS} FROM src.runs WHERE id = ?1"
            ),
            [old],
        )?;
        let new = tx.last_insert_rowid();
        for (table, columns) in [
            ("params", "key, value, swept"),
            ("metrics", "split, name, step, value"),
            ("summaries", "split, name, final_step, final_value, best_step, best_value"),
            ("rewards", "response, prompt, split, reward, true_reward"),
            ("artifacts", "kind, path, bytes, sha256"),
        ] {
            tx.execute(
                &format!(
                    "INSERT INTO main.{table} (run_id, {columns}) SELECT ?1, {columns} FROM src.{table} WHERE run_id = ?2"
                ),
                params![new, old],
            )?;
        }
    }
    tx.commit()?;
    Ok((ids.len(), present as usize, running as usize))
}
