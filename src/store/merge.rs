//! Merging stores: copies the runs of other store files into one, each run at most once.
//!
//! Runs are identified across files by their `uid`, so merging the same file twice adds
//! nothing; a run of a cell that already has a finished run in the target is not copied either. Only runs that ended (`finished`, `diverged`, `failed`) are copied: a `running`
//! run in a source is a run whose process was killed or is still writing it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use sha2::Digest;

use super::{SCHEMA_VERSION, Store, at, file_uri};
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
    torch_version, uid, data_rows, data_skipped, engine, batch_group, diverged_reason, best_step, data_report, process";

/// Merges every source store into the store at `into` (created if missing). Every source is
/// checked first (it exists, passes SQLite's `quick_check`, and is an rmlab store of this
/// schema version); a bad one is named and nothing is written. Sources are opened read-only
/// and never changed.
pub fn merge(sources: &[PathBuf], into: &Path) -> Result<MergeReport> {
    for src in sources {
        check_source(src, into)?;
    }
    let mut store = Store::open(into)?;
    let path = store.path.clone();
    let mut report = MergeReport::default();
    for src in sources {
        let uri = format!("{}?mode=ro", file_uri(src));
        at(&path, store.conn.execute("ATTACH DATABASE ?1 AS src", [uri]))?;
        // An error here is the source's (the target passed its own checks when opened).
        let counts = copy_runs(&mut store.conn).map_err(|e| Error::sqlite(src, e));
        at(&path, store.conn.execute("DETACH DATABASE src", []))?;
        let (copied, present, running) = counts?;
        copy_artifact_files(src, &store)?;
        report.sources.push((src.clone(), copied, present, running));
    }
    Ok(report)
}

/// Copies the files of every artifact the target lists from the source's directory, where the
/// target does not have them yet (they are content-addressed: same name, same bytes); each is
/// checked against its SHA-256 and written under a temporary name first.
fn copy_artifact_files(src: &Path, store: &Store) -> Result<()> {
    let src_root = src.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let dst_root = store.artifacts_root();
    if std::fs::canonicalize(&src_root).ok() == std::fs::canonicalize(&dst_root).ok() {
        return Ok(());
    }
    let files: Vec<(String, String)> = {
        let mut stmt = at(&store.path, store.conn.prepare("SELECT DISTINCT path, sha256 FROM artifacts"))?;
        at(&store.path, stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| Error::sqlite(&store.path, e))?
    };
    for (rel, sha) in files {
        let (from, to) = (src_root.join(&rel), dst_root.join(&rel));
        if to.exists() || !from.exists() {
            continue;
        }
        let bytes = std::fs::read(&from).map_err(|e| Error::io(&from, e))?;
        let got: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        if got != sha {
            return Err(Error::Input(format!(
                "{}: its SHA-256 is not the one recorded; nothing more was merged",
                from.display()
            )));
        }
        let dir = to.parent().expect("artifact paths have a directory");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = dir.join(format!(".{sha}.{}.part", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &to).map_err(|e| Error::io(&to, e))?;
    }
    Ok(())
}

/// Refuses a source that is missing, damaged, not an rmlab store, of another schema version, or
/// the target itself, naming it.
fn check_source(src: &Path, into: &Path) -> Result<()> {
    if !src.is_file() {
        return Err(Error::Input(format!("{}: no such store", src.display())));
    }
    if std::fs::canonicalize(src).ok() == std::fs::canonicalize(into).ok() {
        return Err(Error::Input(format!("{}: cannot merge a store into itself", src.display())));
    }
    let bad =
        |message: String| Err(Error::Input(format!("{}: {message}; nothing was merged", src.display())));
    let conn = match Connection::open_with_flags(
        file_uri(src),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => return bad(format!("cannot open it ({e})")),
    };
    let check: rusqlite::Result<String> = conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
    match check {
        Ok(ok) if ok == "ok" => {}
        Ok(problem) => {
            return bad(format!(
                "damaged (SQLite quick_check: {})",
                problem.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        Err(e) => return bad(format!("not a readable SQLite store ({e})")),
    }
    let version: i64 = match conn.query_row("PRAGMA user_version", [], |r| r.get(0)) {
        Ok(v) => v,
        Err(e) => return bad(format!("cannot read its schema version ({e})")),
    };
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'runs'", [], |r| {
            r.get(0)
        })
        .unwrap_or(0);
    match version {
        v if v == SCHEMA_VERSION && tables == 1 => Ok(()),
        0 => bad("not an rmlab store (no schema version)".into()),
        v if v > SCHEMA_VERSION => bad(format!(
            "schema version {v} is newer than this rmlab's {SCHEMA_VERSION}; merge it with the rmlab that wrote it"
        )),
        v if v < SCHEMA_VERSION => bad(format!(
            "schema version {v}, but this rmlab writes version {SCHEMA_VERSION}; run `rmlab migrate {}` first \
             (or merge with the rmlab that wrote it)",
            src.display()
        )),
        _ => bad("not an rmlab store (no runs table)".into()),
    }
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
