//! The results store: one SQLite file, schema versioned with `PRAGMA user_version`.
//!
//! Writers open it in WAL mode with a busy timeout and write in short `BEGIN IMMEDIATE`
//! transactions, so several processes can write one file at once. A run is inserted as
//! `running`; its metric rows are buffered and written in batches; the last batch and the
//! final status are committed in one transaction, so a killed run never looks finished.
//! The schema is documented in docs/schema.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::experiment::config::FORMAT_VERSION;
use crate::provenance::run_process_alive;

mod claim;
mod merge;
mod schema;
mod writer;

pub use claim::{NewRun, flatten_config};
pub use merge::{MergeReport, merge};
pub use schema::SCHEMA_VERSION;
pub use writer::{Artifact, RunWriter};

/// The version-1 DDL, for tests that build an old store.
#[doc(hidden)]
pub fn schema_v1_for_tests() -> &'static str {
    schema::V1
}

/// The DDL from version 1 to 2 (without its summary backfill), for tests that build an old store.
#[doc(hidden)]
pub fn schema_v2_for_tests() -> &'static str {
    schema::V2
}

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// An open store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// A spec's description as stored in `experiments`.
#[derive(Debug)]
pub struct ExperimentRecord<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub spec_path: &'a str,
    pub spec_text: &'a str,
}

impl Store {
    /// Opens for writing (creating it if needed, with its parent directory) and migrates the
    /// store at `path`. A file that cannot be written is refused here, before any work.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, false)
    }

    /// [`Store::open`] for the first writer of a command (a sweep, a merge into an existing
    /// store, a migration): a store that fails SQLite's `quick_check` is refused, naming it,
    /// before anything is written to it (the migration included). Writing into a damaged file
    /// can spread the damage, and a sweep would add runs to a file no reader can trust. The
    /// check reads every page (about 1 s for 10 million metric rows, see docs/schema.md), so it
    /// is made once a command, not by each worker's connection.
    pub fn open_checked(path: &Path) -> Result<Store> {
        Store::open_with(path, true)
    }

    fn open_with(path: &Path, check: bool) -> Result<Store> {
        // A path that cannot name a store file is bad input (exit 2), said before SQLite's
        // "unable to open database file".
        if path.is_dir() {
            return Err(Error::file(path, "is a directory; --db names the store's file"));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
                return Err(Error::file(path, format!("{} is a file, not a directory", file.display())));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::file(dir, format!("cannot create the store's directory: {e}")))?;
        }
        let conn = Connection::open(path).map_err(|e| Error::sqlite(path, e))?;
        // SQLite quietly opens a write-protected file read-only; say so now, not at the first write.
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            return Err(Error::file(path, "the store is read-only; this command writes results to it"));
        }
        let store = Store { conn, path: path.to_path_buf() };
        store.sql(store.conn.busy_timeout(Duration::from_secs(60)))?;
        // Another program's database is refused before anything is written to it (switching
        // it to WAL mode would be); `migrate` checks again under its write lock.
        // One statement, so one snapshot: another process creating the same store commits its
        // tables and its version together, and must not be seen half done.
        let (version, tables): (i64, i64) = store.sql(store.conn.query_row(
            "SELECT (SELECT user_version FROM pragma_user_version),
                    (SELECT count(*) FROM sqlite_master WHERE type = 'table')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        ))?;
        if version == 0 && tables > 0 {
            return Err(store.foreign());
        }
        if check {
            store.check_intact()?;
        }
        store.configure()?;
        store.migrate()?;
        // On only once migrated: a migration that rebuilds a table (version 4) must not
        // cascade the drop of the old one into the rows that point at it.
        store.sql(store.conn.execute_batch("PRAGMA foreign_keys = ON;"))?;
        Ok(store)
    }

    /// Refuses a store that fails SQLite's `quick_check` (a damaged page, a broken b-tree),
    /// with the first problem SQLite names: exit 1, nothing written.
    pub fn check_intact(&self) -> Result<()> {
        match quick_check(&self.conn) {
            Ok(None) => Ok(()),
            Ok(Some(problem)) => Err(Error::Store {
                path: self.path.display().to_string(),
                message: format!(
                    "damaged (SQLite quick_check: {problem}); nothing was written to it. Keep a copy, then \
                     recover what it holds with `sqlite3 {} .recover | sqlite3 new.sqlite`, or sweep into a new store",
                    self.path.display()
                ),
            }),
            Err(e) => Err(Error::Store {
                path: self.path.display().to_string(),
                message: format!("damaged (SQLite quick_check failed: {e}); nothing was written to it"),
            }),
        }
    }

    fn tables(&self) -> Result<i64> {
        self.sql(
            self.conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0)),
        )
    }

    fn foreign(&self) -> Error {
        Error::Store {
            path: self.path.display().to_string(),
            message: "not an rmlab store (it has tables but no schema version)".into(),
        }
    }

    /// Opens an existing store for reading only: nothing is migrated or written, a
    /// write-protected file (or directory) is fine, and no file is created beside it. The store
    /// must be at this rmlab's schema version. Runs left `running` by a process that is gone read
    /// as `interrupted` ([`Store::show_dead_runs_as_interrupted`]).
    ///
    /// A WAL store's readers normally create `<store>-wal` and `<store>-shm` when they are
    /// absent, and a read-only connection cannot remove them again: another user's `query` in a
    /// shared directory would leave files the store's owner cannot write. So:
    /// - with no `-wal` beside the store, no writer has it open (the last writer to close
    ///   checkpoints and removes it) and it is opened `immutable`: no lock, no file created;
    /// - with a `-wal` (a live writer, or one killed with committed rows still in it) it is
    ///   opened the ordinary read-only way, through the files that are already there, so rows
    ///   only in the WAL are read too.
    ///
    /// The price of `immutable`: a writer that starts while the read is under way, and
    /// checkpoints into the store file before the read ends (a sweep does after ~4 MB of rows,
    /// or when it ends), can make that read fail as malformed or miss rows; SQLite's locks are
    /// not there to prevent it. A `-wal` that appears between the check and the open is caught
    /// (the store is then reopened the ordinary way); the rest of that window is the time one
    /// command reads, and rerunning it reads a consistent store.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if path.is_dir() {
            return Err(Error::file(path, "is a directory; --db names the store's file"));
        }
        if !path.is_file() {
            return Err(Error::file(path, "no such store (run a sweep first)"));
        }
        let flags =
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let wal = sibling(path, "-wal");
        let immutable = || Connection::open_with_flags(format!("{}?immutable=1", file_uri(path)), flags);
        let conn = if !wal.exists() {
            let c = immutable().map_err(|e| Error::sqlite(path, e))?;
            // Read the schema now, so that a writer starting after this check is noticed here.
            let read = readable(&c);
            if read && !wal.exists() {
                c
            } else {
                Connection::open_with_flags(format!("{}?mode=ro", file_uri(path)), flags)
                    .map_err(|e| Error::sqlite(path, e))?
            }
        } else {
            match Connection::open_with_flags(format!("{}?mode=ro", file_uri(path)), flags) {
                Ok(c) if readable(&c) => c,
                // A WAL store in a directory this process cannot write (no -shm to create) opens
                // as immutable: nothing can change it while it is read-protected anyway.
                _ => immutable().map_err(|e| Error::sqlite(path, e))?,
            }
        };
        let store = Store { conn, path: path.to_path_buf() };
        store.sql(store.conn.busy_timeout(Duration::from_secs(60)))?;
        store.check_readable_version()?;
        store.show_dead_runs_as_interrupted()?;
        Ok(store)
    }

    /// On a read-only connection, makes every reader (query, plot, score, status) see a run left
    /// `running` by a process that is gone as `interrupted`, as a later sweep records it
    /// ([`Store::mark_interrupted`]): a temporary view `runs` over `main.runs`, which unqualified
    /// names resolve to first, with only `status` changed. It lives in this connection's own
    /// temporary schema; the file is not touched. Without such runs no view is made.
    fn show_dead_runs_as_interrupted(&self) -> Result<()> {
        let dead = self.sql(dead_runs(&self.conn))?;
        if dead.is_empty() {
            return Ok(());
        }
        let columns: Vec<String> = {
            let mut stmt =
                self.sql(self.conn.prepare("SELECT name FROM pragma_table_info('runs', 'main')"))?;
            self.sql(stmt.query_map([], |r| r.get(0)).and_then(|rows| rows.collect()))?
        };
        let select: Vec<String> = columns
            .iter()
            .map(|c| match c.as_str() {
                "status" => {
                    "CASE WHEN id IN (SELECT id FROM temp.dead_runs) THEN 'interrupted' ELSE status END \
                             AS status"
                        .to_string()
                }
                c => format!("\"{}\"", c.replace('"', "\"\"")),
            })
            .collect();
        self.sql(self.conn.execute_batch(&format!(
            "CREATE TEMP TABLE dead_runs (id INTEGER PRIMARY KEY);
             CREATE TEMP VIEW runs AS SELECT {} FROM main.runs;",
            select.join(", ")
        )))?;
        let mut ins = self.sql(self.conn.prepare("INSERT INTO temp.dead_runs (id) VALUES (?1)"))?;
        for (id, _, _) in dead {
            self.sql(ins.execute([id]))?;
        }
        Ok(())
    }

    /// Records every `running` run whose process is gone (killed, crashed, stopped by a full
    /// disk) as `interrupted`, with why in `error`; returns how many. A sweep calls it before it
    /// plans, so that `query runs` no longer shows runs of dead processes beside finished ones.
    /// A run that is still running, or of another host, is left as it is. The check and the
    /// update are one write transaction, so a run that finishes meanwhile keeps `finished`.
    pub fn mark_interrupted(&mut self) -> Result<usize> {
        let path = self.path.clone();
        let tx = at(&path, self.conn.transaction_with_behavior(TransactionBehavior::Immediate))?;
        let dead = at(&path, dead_runs(&tx))?;
        for (id, host, pid) in &dead {
            at(
                &path,
                tx.execute(
                    "UPDATE runs SET status = 'interrupted', error = ?2 WHERE id = ?1 AND status = 'running'",
                    params![
                        id,
                        format!(
                            "its process (pid {pid} on {host}) was gone when a later sweep looked: killed, \
                             crashed or stopped by a write error; its rows so far are kept"
                        )
                    ],
                ),
            )?;
        }
        at(&path, tx.commit())?;
        Ok(dead.len())
    }

    fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|e| Error::sqlite(&self.path, e))
    }

    fn configure(&self) -> Result<()> {
        self.sql(self.conn.busy_timeout(Duration::from_secs(60)))?;
        // Switching a new file to WAL takes an exclusive lock that the busy handler does not
        // always wait for (several sweeps creating one store at once): retry it.
        let started = std::time::Instant::now();
        let mode: String = loop {
            match self.conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < Duration::from_secs(60) =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break self.sql(other)?,
            }
        };
        if mode != "wal" {
            return Err(Error::Store {
                path: self.path.display().to_string(),
                message: format!("cannot use WAL mode (got {mode})"),
            });
        }
        // Foreign keys stay off until the store is migrated (see `open_with`); the bundled
        // SQLite turns them on by default.
        self.sql(self.conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;"))
    }

    /// The schema version of the file.
    pub fn schema_version(&self) -> Result<i64> {
        self.sql(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)))
    }

    /// A read-only store must be an rmlab store at this version: it cannot be migrated here.
    fn check_readable_version(&self) -> Result<()> {
        let version = self.schema_version()?;
        let fail = |message: String| Err(Error::Store { path: self.path.display().to_string(), message });
        match version {
            v if v == SCHEMA_VERSION => Ok(()),
            v if v > SCHEMA_VERSION => {
                fail(format!("schema version {v} is newer than this rmlab's {SCHEMA_VERSION}; upgrade rmlab"))
            }
            0 => fail("not an rmlab store (no schema version)".into()),
            v => fail(format!(
                "schema version {v} is older than this rmlab's {SCHEMA_VERSION}; `rmlab migrate --db {}` brings it \
                 forward (this command only reads)",
                self.path.display()
            )),
        }
    }

    fn migrate(&self) -> Result<()> {
        // One write transaction for the check and every step, so a concurrent opener (another
        // sweep creating the same new file) waits and then sees the migrated store, and a
        // failed step leaves the file at its old version.
        let tx = self.sql(Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate))?;
        let version: i64 = self.sql(tx.query_row("PRAGMA user_version", [], |r| r.get(0)))?;
        if version > SCHEMA_VERSION {
            return Err(Error::Store {
                path: self.path.display().to_string(),
                message: format!(
                    "schema version {version} is newer than this rmlab's {SCHEMA_VERSION}; upgrade rmlab"
                ),
            });
        }
        if version == 0 && self.tables()? > 0 {
            return Err(self.foreign());
        }
        for (from, step) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            self.sql(step(&tx)).map_err(|e| Error::Store {
                path: self.path.display().to_string(),
                message: format!("migration from schema version {from} to {} failed: {e}", from + 1),
            })?;
            self.sql(tx.pragma_update(None, "user_version", from as i64 + 1))?;
        }
        self.sql(tx.commit())?;
        Ok(())
    }

    /// The underlying connection, for queries.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory artifact paths are relative to: the store file's own directory.
    pub fn artifacts_root(&self) -> PathBuf {
        self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
    }

    /// Inserts or updates an experiment's description and spec text.
    pub fn upsert_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        self.sql(self.conn.execute(
            &format!(
                "INSERT INTO experiments (name, description, spec_path, spec_text, updated_at)
                 VALUES (?1, ?2, ?3, ?4, {NOW})
                 ON CONFLICT (name) DO UPDATE SET description = ?2, spec_path = ?3, spec_text = ?4,
                 updated_at = {NOW}"
            ),
            params![e.name, e.description, e.spec_path, e.spec_text],
        ))?;
        Ok(())
    }

    /// The state of each config hash of an experiment: a usable result under the current
    /// format version wins, then a live `running` run, then the newest run. A `running` run whose
    /// process is gone reads as `interrupted`.
    pub fn cell_statuses(&self, experiment: &str) -> Result<HashMap<String, CellRecord>> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT config_hash, status, format_version, id, host, pid, process FROM runs WHERE experiment = ?1 ORDER BY id",
        ))?;
        let rows = self.sql(stmt.query_map([experiment], |r| {
            Ok((
                r.get::<_, String>(0)?,
                CellRecord { status: r.get(1)?, format_version: r.get(2)?, run_id: r.get(3)? },
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        }))?;
        let mut out = HashMap::<String, CellRecord>::new();
        for row in rows {
            let (hash, mut rec, host, pid, process) = self.sql(row)?;
            if rec.status == "running"
                && run_process_alive(host.as_deref(), pid, process.as_deref()) == Some(false)
            {
                rec.status = "interrupted".into();
            }
            match out.get(&hash) {
                Some(prev) if prev.rank() > rec.rank() => {}
                _ => {
                    out.insert(hash, rec);
                }
            }
        }
        Ok(out)
    }
}

/// The recorded state of one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellRecord {
    pub status: String,
    pub format_version: i64,
    pub run_id: i64,
}

impl CellRecord {
    /// Whether the cell has a usable result under the current format version.
    pub fn is_done(&self) -> bool {
        self.format_version == FORMAT_VERSION as i64
            && matches!(self.status.as_str(), "finished" | "diverged")
    }

    fn rank(&self) -> u8 {
        let current = u8::from(self.format_version == FORMAT_VERSION as i64);
        let status = match self.status.as_str() {
            "finished" | "diverged" => 2,
            "running" => 1,
            _ => 0,
        };
        current * 3 + status
    }
}

fn at<T>(path: &Path, r: rusqlite::Result<T>) -> Result<T> {
    r.map_err(|e| Error::sqlite(path, e))
}

/// SQLite's `quick_check`: `None` when the file is sound, else its first problem (and how many
/// more it found), on one line.
pub(crate) fn quick_check(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let rows: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(match rows.as_slice() {
        [ok] if ok == "ok" => None,
        [] => Some("no answer".into()),
        [first, rest @ ..] => {
            let first = first.split_whitespace().collect::<Vec<_>>().join(" ");
            Some(if rest.is_empty() { first } else { format!("{first}; and {} more problems", rest.len()) })
        }
    })
}

/// Whether a read-only connection can read the file (a WAL file needs its -shm).
fn readable(conn: &Connection) -> bool {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).is_ok()
}

/// The `running` runs whose process is known to be gone: `(id, host, pid)`. Gone means this
/// host, and no process with the recorded pid and start time alive ([`run_process_alive`]); a
/// run of another host cannot be checked from here and is not among them.
fn dead_runs(conn: &Connection) -> rusqlite::Result<Vec<(i64, String, i64)>> {
    let mut stmt = conn.prepare("SELECT id, host, pid, process FROM main.runs WHERE status = 'running'")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut dead = Vec::new();
    for row in rows {
        let (id, host, pid, process) = row?;
        if run_process_alive(host.as_deref(), pid, process.as_deref()) == Some(false) {
            dead.push((id, host.unwrap_or_default(), pid.unwrap_or_default()));
        }
    }
    Ok(dead)
}

/// `<path><suffix>`: SQLite's name for the store's `-wal` and `-shm` files.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// `file:` URI of a path, escaping what URIs reserve.
pub(crate) fn file_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for b in abs.to_string_lossy().bytes() {
        match b {
            b'%' | b'?' | b'#' | b' ' | 0x80.. => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(b as char),
        }
    }
    uri
}

#[cfg(test)]
mod tests;
