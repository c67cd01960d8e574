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
        store.configure()?;
        store.migrate()?;
        Ok(store)
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

    /// Opens an existing store for reading only: no lock is taken, nothing is migrated or
    /// written, and a write-protected file (or directory) is fine. The store must be at this
    /// rmlab's schema version.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if path.is_dir() {
            return Err(Error::file(path, "is a directory; --db names the store's file"));
        }
        if !path.is_file() {
            return Err(Error::file(path, "no such store (run a sweep first)"));
        }
        let flags =
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match Connection::open_with_flags(path, flags) {
            Ok(c) if readable(&c) => c,
            // A WAL store in a directory this process cannot write (no -shm to create) opens
            // as immutable: nothing can change it while it is read-protected anyway.
            _ => Connection::open_with_flags(format!("{}?immutable=1", file_uri(path)), flags)
                .map_err(|e| Error::sqlite(path, e))?,
        };
        let store = Store { conn, path: path.to_path_buf() };
        store.sql(store.conn.busy_timeout(Duration::from_secs(60)))?;
        store.check_readable_version()?;
        Ok(store)
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
        self.sql(self.conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"))
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
                "schema version {v} is older than this rmlab's {SCHEMA_VERSION}; `rmlab migrate {}` brings it \
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

/// Whether a read-only connection can read the file (a WAL file needs its -shm).
fn readable(conn: &Connection) -> bool {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).is_ok()
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
