//! Merging stores: copies the runs of other store files into one, each run at most once.
//!
//! Runs are identified across files by their `uid`, so merging the same file twice adds
//! nothing; a run of a cell that already has a finished run in the target is not copied
//! either. Only runs that ended (`finished`, `diverged`, `failed`) are copied: a `running` run
//! in a source is a run whose process was killed or is still writing it. The artifact files
//! of the copied runs are copied before the runs that point at them are committed, and only
//! from inside each source's directory to inside the target's.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use sha2::Digest;

use super::{SCHEMA_VERSION, Store, at, file_uri, quick_check};
use crate::error::{Error, Result};

/// What a merge did, per source.
#[derive(Debug, Default)]
pub struct MergeReport {
    /// The store merged into.
    pub into: PathBuf,
    /// `(source, runs copied, runs already present, runs skipped as still running)`.
    pub sources: Vec<(PathBuf, usize, usize, usize)>,
}

/// A line per source: what it gave, what the target had already, what was still running.
impl std::fmt::Display for MergeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (src, copied, present, running)) in self.sources.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}: {copied} runs copied, {present} already in {} (same run or cell done), {running} still running (skipped)",
                src.display(),
                self.into.display()
            )?;
        }
        Ok(())
    }
}

const RUN_COLUMNS: &str =
    "experiment, config_hash, config_json, format_version, seed, status, error, diverged_step,
    started_at, ended_at, wall_seconds, device, threads, host, pid, git_commit, git_dirty, rmlab_version,
    torch_version, uid, data_rows, data_skipped, engine, batch_group, diverged_reason, best_step, data_report, process";

/// Merges every source store into the store at `into` (created if missing). The target, when it
/// exists, must pass `quick_check` too. Every source is checked first (it exists, passes SQLite's `quick_check`, is an rmlab store of this schema
/// version, and every artifact path it records stays inside its directory); a bad one is named
/// and nothing is written. Then the artifact files of the runs to be copied are copied (each
/// checked against its SHA-256), and only then the runs that point at them are committed: a
/// file that cannot be copied leaves the target store and its directory as they were. Sources
/// are opened read-only and never changed.
pub fn merge(sources: &[PathBuf], into: &Path) -> Result<MergeReport> {
    let mut found = Vec::with_capacity(sources.len());
    for src in sources {
        check_source(src, into)?;
        found.push(read_source(src)?);
    }
    // A damaged target is refused before anything is copied into it.
    let existing = if into.exists() { Some(Store::open_checked(into)?) } else { None };
    let plans = plan(sources, &found, existing.as_ref(), into)?;
    let mut copied = Copied::default();
    if let Err(e) = plans.iter().try_for_each(|p| p.files.iter().try_for_each(|f| copied.copy(f))) {
        copied.undo();
        return Err(e);
    }
    let mut store = match existing {
        Some(store) => store,
        None => Store::open(into).inspect_err(|_| copied.undo())?,
    };
    let path = store.path.clone();
    let mut report = MergeReport { into: into.to_path_buf(), ..Default::default() };
    for (src, plan) in sources.iter().zip(&plans) {
        let uri = format!("{}?mode=ro", file_uri(src));
        at(&path, store.conn.execute("ATTACH DATABASE ?1 AS src", [uri]))?;
        // An error here is the source's (the target passed its own checks when opened).
        let counts = copy_runs(&mut store.conn, &plan.runs).map_err(|e| Error::sqlite(src, e));
        at(&path, store.conn.execute("DETACH DATABASE src", []))?;
        let (copied, present, running) = counts?;
        report.sources.push((src.clone(), copied, present, running));
    }
    Ok(report)
}

/// A source's ended runs and the artifacts they keep.
struct Found {
    /// `(id, uid, experiment, config_hash, format_version, status)`, by id.
    runs: Vec<(i64, String, String, String, i64, String)>,
    /// `(run id, run uid, kind, path, sha256)`.
    artifacts: Vec<(i64, String, String, String, String)>,
}

/// Reads what [`plan`] needs of a source, refusing an artifact path that is absolute or climbs
/// out of the source's directory (joined onto the target's, it would write outside it).
fn read_source(src: &Path) -> Result<Found> {
    let conn = Connection::open_with_flags(
        format!("{}?mode=ro", file_uri(src)),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::sqlite(src, e))?;
    let read = || -> rusqlite::Result<Found> {
        let mut stmt = conn.prepare(
            "SELECT id, uid, experiment, config_hash, format_version, status FROM runs
             WHERE status != 'running' ORDER BY id",
        )?;
        let runs = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare(
            "SELECT a.run_id, r.uid, a.kind, a.path, a.sha256 FROM artifacts a JOIN runs r ON r.id = a.run_id
             WHERE r.status != 'running' ORDER BY a.run_id, a.kind",
        )?;
        let artifacts = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Found { runs, artifacts })
    };
    let found = read().map_err(|e| Error::sqlite(src, e))?;
    for (_, uid, kind, rel, _) in &found.artifacts {
        if !inside(Path::new(rel)) {
            return Err(Error::file(
                src,
                format!(
                    "run {uid}: its {kind} artifact path {rel:?} is absolute or leaves the store's directory; \
                     nothing was merged"
                ),
            ));
        }
    }
    Ok(found)
}

/// Whether a recorded artifact path is relative and stays below the directory it is joined onto.
fn inside(rel: &Path) -> bool {
    use std::path::Component;
    rel.components().next().is_some()
        && rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// What merging one source copies: its runs, and the files of their artifacts.
struct Plan {
    runs: HashSet<i64>,
    files: Vec<FileCopy>,
}

/// One artifact file to copy into the target's directory.
struct FileCopy {
    from: PathBuf,
    to: PathBuf,
    sha256: String,
    /// The run that keeps it, and its source, for messages.
    run: String,
    src: PathBuf,
}

/// Which runs of each source will be copied (as [`copy_runs`] chooses them: not already in the
/// target by uid, nor a cell the target, or an earlier source, has done) and which of their
/// artifact files the target's directory lacks. A file missing from the source is refused.
fn plan(sources: &[PathBuf], found: &[Found], target: Option<&Store>, into: &Path) -> Result<Vec<Plan>> {
    type Cell = (String, String, i64);
    // The target's runs by uid, and its done cells.
    let (mut uids, mut done): (HashSet<String>, HashSet<Cell>) = match target {
        None => Default::default(),
        Some(store) => {
            let read = || -> rusqlite::Result<(HashSet<String>, HashSet<Cell>)> {
                let mut stmt = store.conn.prepare("SELECT uid FROM runs WHERE uid IS NOT NULL")?;
                let uids = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
                let mut stmt = store.conn.prepare(
                    "SELECT experiment, config_hash, format_version FROM runs
                     WHERE status IN ('finished', 'diverged')",
                )?;
                let done = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok((uids, done))
            };
            read().map_err(|e| Error::sqlite(&store.path, e))?
        }
    };
    let dst_root =
        into.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let mut planned_files: HashSet<PathBuf> = HashSet::new();
    let mut plans = Vec::with_capacity(sources.len());
    for (src, f) in sources.iter().zip(found) {
        let src_root =
            src.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        // Runs of one source are not weighed against each other, only against what came before.
        let chosen: Vec<_> = f
            .runs
            .iter()
            .filter(|r| !uids.contains(&r.1) && !done.contains(&(r.2.clone(), r.3.clone(), r.4)))
            .collect();
        for r in &chosen {
            uids.insert(r.1.clone());
            if matches!(r.5.as_str(), "finished" | "diverged") {
                done.insert((r.2.clone(), r.3.clone(), r.4));
            }
        }
        let runs: HashSet<i64> = chosen.iter().map(|r| r.0).collect();
        let same_dir = std::fs::canonicalize(&src_root).ok() == std::fs::canonicalize(&dst_root).ok();
        let mut files = Vec::new();
        for (run_id, uid, kind, rel, sha) in &f.artifacts {
            if same_dir || !runs.contains(run_id) {
                continue;
            }
            let (from, to) = (src_root.join(rel), dst_root.join(rel));
            // Content-addressed: a file already there (or already planned) has these bytes.
            if to.exists() || !planned_files.insert(to.clone()) {
                continue;
            }
            if !from.is_file() {
                return Err(Error::file(
                    &from,
                    format!(
                        "run {uid} of {} keeps its {kind} here, but the file is missing; nothing was merged \
                         (copy the store's artifacts/ directory with it)",
                        src.display()
                    ),
                ));
            }
            files.push(FileCopy { from, to, sha256: sha.clone(), run: uid.clone(), src: src.clone() });
        }
        plans.push(Plan { runs, files });
    }
    Ok(plans)
}

/// The files and directories a merge has created so far, so that a failure can remove them.
#[derive(Default)]
struct Copied {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Copied {
    /// Copies one artifact file after checking its SHA-256, through a temporary name.
    fn copy(&mut self, f: &FileCopy) -> Result<()> {
        let bytes = std::fs::read(&f.from).map_err(|e| Error::io(&f.from, e))?;
        let got: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        if got != f.sha256 {
            return Err(Error::file(
                &f.from,
                format!(
                    "its SHA-256 is not the one run {} of {} recorded; nothing was merged",
                    f.run,
                    f.src.display()
                ),
            ));
        }
        let dir = f.to.parent().expect("an artifact path names a file");
        self.create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.{}.part", f.sha256, std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&tmp, e)
        })?;
        std::fs::rename(&tmp, &f.to).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&f.to, e)
        })?;
        self.files.push(f.to.clone());
        Ok(())
    }

    /// `create_dir_all`, remembering each directory it made.
    fn create_dir_all(&mut self, dir: &Path) -> Result<()> {
        let missing: Vec<&Path> =
            dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(d) {
                Ok(()) => self.dirs.push(d.to_path_buf()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(d, e)),
            }
        }
        Ok(())
    }

    /// Removes what was created, newest first (best effort: the error being reported matters more).
    fn undo(&self) {
        for f in self.files.iter().rev() {
            let _ = std::fs::remove_file(f);
        }
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Refuses a source that is missing, damaged, not an rmlab store, of another schema version, or
/// the target itself, naming it.
fn check_source(src: &Path, into: &Path) -> Result<()> {
    if !src.is_file() {
        return Err(Error::file(src, "no such store"));
    }
    if std::fs::canonicalize(src).ok() == std::fs::canonicalize(into).ok() {
        return Err(Error::file(src, "cannot merge a store into itself"));
    }
    // A source that is no usable rmlab store (damaged, another program's, another schema) is
    // a store problem, exit 1, as for every command that opens one.
    let bad = |message: String| {
        Err(Error::Store {
            path: src.display().to_string(),
            message: format!("{message}; nothing was merged"),
        })
    };
    let conn = match Connection::open_with_flags(
        file_uri(src),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => return bad(format!("cannot open it ({e})")),
    };
    match quick_check(&conn) {
        Ok(None) => {}
        Ok(Some(problem)) => return bad(format!("damaged (SQLite quick_check: {problem})")),
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
            "schema version {v}, but this rmlab writes version {SCHEMA_VERSION}; run `rmlab migrate --db {}` first \
             (or merge with the rmlab that wrote it)",
            src.display()
        )),
        _ => bad("not an rmlab store (no runs table)".into()),
    }
}

/// Copies the attached `src`'s ended runs missing from `main` that the plan chose (their files
/// are in place), with everything that belongs to them, in one transaction. Returns (copied,
/// already present, still running).
fn copy_runs(conn: &mut Connection, planned: &HashSet<i64>) -> rusqlite::Result<(usize, usize, usize)> {
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
        let ids: Vec<i64> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        // A run another writer added since the plan was made has no files here yet.
        ids.into_iter().filter(|id| planned.contains(id)).collect()
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
