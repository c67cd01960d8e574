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

use rusqlite::{Connection, TransactionBehavior, params};

use crate::config::{FORMAT_VERSION, RunConfig};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::provenance::{Provenance, run_process_alive};
use crate::sink::MetricsSink;
use crate::train::Outcome;

/// Schema version written to `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 1;

/// Metric rows buffered before a batch is written.
const BATCH_ROWS: usize = 8192;

const SCHEMA_V1: &str = "
CREATE TABLE experiments (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    spec_path   TEXT NOT NULL,
    spec_text   TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    experiment     TEXT NOT NULL REFERENCES experiments(name),
    config_hash    TEXT NOT NULL,
    config_json    TEXT NOT NULL,
    format_version INTEGER NOT NULL,
    seed           INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('running', 'finished', 'diverged', 'failed')),
    error          TEXT,
    diverged_step  INTEGER,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    wall_seconds   REAL,
    device         TEXT NOT NULL,
    threads        INTEGER NOT NULL,
    host           TEXT,
    pid            INTEGER,
    git_commit     TEXT,
    git_dirty      INTEGER,
    rmlab_version  TEXT NOT NULL,
    torch_version  TEXT
);
CREATE INDEX runs_by_experiment ON runs (experiment, config_hash, status);
CREATE TABLE params (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value,
    swept  INTEGER NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX params_by_key ON params (key, value);
CREATE TABLE metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split  TEXT NOT NULL,
    name   TEXT NOT NULL,
    step   INTEGER NOT NULL,
    value  REAL,
    PRIMARY KEY (run_id, split, name, step)
) WITHOUT ROWID;
";

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// An open store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// What is known about a run when it starts.
#[derive(Debug)]
pub struct NewRun<'a> {
    pub experiment: &'a str,
    pub config: &'a RunConfig,
    /// Dotted key paths whose values the sweep set.
    pub swept: &'a [String],
    pub device: String,
    pub threads: usize,
    pub provenance: &'a Provenance,
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
    /// Opens (creating if needed, with its parent directory) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| Error::sqlite(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    fn sql<T>(&self, r: rusqlite::Result<T>) -> Result<T> {
        r.map_err(|e| Error::sqlite(&self.path, e))
    }

    fn configure(&self) -> Result<()> {
        self.sql(self.conn.busy_timeout(Duration::from_secs(60)))?;
        let mode: String = self.sql(
            self.conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)),
        )?;
        if mode != "wal" {
            return Err(Error::Store {
                path: self.path.display().to_string(),
                message: format!("cannot use WAL mode (got {mode})"),
            });
        }
        self.sql(
            self.conn
                .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"),
        )
    }

    /// The schema version of the file.
    pub fn schema_version(&self) -> Result<i64> {
        self.sql(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)))
    }

    fn migrate(&self) -> Result<()> {
        let version = self.schema_version()?;
        if version > SCHEMA_VERSION {
            return Err(Error::Store {
                path: self.path.display().to_string(),
                message: format!(
                    "schema version {version} is newer than this rmlab's {SCHEMA_VERSION}; upgrade rmlab"
                ),
            });
        }
        if version == 0 {
            let tables: i64 = self.sql(self.conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            ))?;
            if tables > 0 {
                return Err(Error::Store {
                    path: self.path.display().to_string(),
                    message: "not an rmlab store (it has tables but no schema version)".into(),
                });
            }
            let tx = self.sql(self.conn.unchecked_transaction())?;
            self.sql(tx.execute_batch(SCHEMA_V1))?;
            self.sql(tx.pragma_update(None, "user_version", SCHEMA_VERSION))?;
            self.sql(tx.commit())?;
        }
        Ok(())
    }

    /// The underlying connection, for queries.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
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
            "SELECT config_hash, status, format_version, id, host, pid FROM runs WHERE experiment = ?1 ORDER BY id",
        ))?;
        let rows = self.sql(stmt.query_map([experiment], |r| {
            Ok((
                r.get::<_, String>(0)?,
                CellRecord {
                    status: r.get(1)?,
                    format_version: r.get(2)?,
                    run_id: r.get(3)?,
                },
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        }))?;
        let mut out = HashMap::<String, CellRecord>::new();
        for row in rows {
            let (hash, mut rec, host, pid) = self.sql(row)?;
            if rec.status == "running" && run_process_alive(host.as_deref(), pid) == Some(false) {
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

    /// Claims a cell: unless it already has a usable result (ignored with `force`) or a live
    /// `running` run, inserts a run as `running` with its params and returns a writer for its
    /// metrics. The check and the insert are one write transaction, so two sweeps of the same
    /// spec on the same store never run a cell twice.
    pub fn claim_run(&mut self, run: &NewRun, force: bool) -> Result<Option<RunWriter<'_>>> {
        let cfg = run.config;
        let p = run.provenance;
        let hash = cfg.hash();
        let path = self.path.clone();
        let tx = at(
            &path,
            self.conn
                .transaction_with_behavior(TransactionBehavior::Immediate),
        )?;
        {
            let mut stmt = at(
                &path,
                tx.prepare(
                    "SELECT status, host, pid FROM runs WHERE experiment = ?1 AND config_hash = ?2
                     AND format_version = ?3 AND status IN ('finished', 'diverged', 'running')",
                ),
            )?;
            let existing = at(
                &path,
                stmt.query_map(params![run.experiment, hash, FORMAT_VERSION], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                }),
            )?;
            for row in existing {
                let (status, host, pid) = at(&path, row)?;
                let taken = match status.as_str() {
                    "running" => run_process_alive(host.as_deref(), pid) != Some(false),
                    _ => !force,
                };
                if taken {
                    return Ok(None);
                }
            }
        }
        at(&path, tx.execute(
            &format!(
                "INSERT INTO runs (experiment, config_hash, config_json, format_version, seed, status,
                   started_at, device, threads, host, pid, git_commit, git_dirty, rmlab_version, torch_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', {NOW}, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ),
            params![
                run.experiment,
                hash,
                cfg.canonical_json(),
                FORMAT_VERSION,
                cfg.seed as i64,
                run.device,
                run.threads as i64,
                p.host,
                std::process::id(),
                p.git_commit,
                p.git_dirty,
                p.rmlab_version,
                p.torch_version,
            ],
        ))?;
        let run_id = tx.last_insert_rowid();
        {
            let mut ins = at(
                &path,
                tx.prepare(
                    "INSERT INTO params (run_id, key, value, swept) VALUES (?1, ?2, ?3, ?4)",
                ),
            )?;
            let json = serde_json::to_value(cfg).expect("a RunConfig serializes");
            for (key, value) in flatten(&json) {
                let swept = run.swept.contains(&key);
                at(&path, ins.execute(params![run_id, key, value, swept]))?;
            }
        }
        at(&path, tx.commit())?;
        Ok(Some(RunWriter {
            store: self,
            run_id,
            rows: Vec::with_capacity(BATCH_ROWS),
        }))
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

/// Writes one run's metrics; [`RunWriter::finish`] commits the final status.
#[derive(Debug)]
pub struct RunWriter<'a> {
    store: &'a mut Store,
    run_id: i64,
    rows: Vec<(usize, Split, &'static str, f64)>,
}

impl RunWriter<'_> {
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    fn write_rows(
        tx: &rusqlite::Transaction,
        run_id: i64,
        rows: &[(usize, Split, &'static str, f64)],
    ) -> rusqlite::Result<()> {
        let mut ins = tx.prepare_cached(
            "INSERT INTO metrics (run_id, split, name, step, value) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for &(step, split, name, value) in rows {
            // SQLite stores NaN as NULL; documented as such.
            ins.execute(params![run_id, split.as_str(), name, step as i64, value])?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let path = self.store.path.clone();
        let tx = self
            .store
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| Error::sqlite(&path, e))?;
        Self::write_rows(&tx, self.run_id, &self.rows).map_err(|e| Error::sqlite(&path, e))?;
        tx.commit().map_err(|e| Error::sqlite(&path, e))?;
        self.rows.clear();
        Ok(())
    }

    /// Writes the remaining rows and the final status in one transaction.
    pub fn finish(self, outcome: &Result<Outcome>, wall_seconds: f64) -> Result<()> {
        let path = self.store.path.clone();
        let tx = at(
            &path,
            self.store
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate),
        )?;
        Self::write_rows(&tx, self.run_id, &self.rows).map_err(|e| Error::sqlite(&path, e))?;
        let (status, error, diverged_step) = match outcome {
            Ok(Outcome::Finished) => ("finished", None, None),
            Ok(Outcome::Diverged { step }) => ("diverged", None, Some(*step as i64)),
            Err(e) => ("failed", Some(e.to_string()), None),
        };
        at(
            &path,
            tx.execute(
                &format!(
                    "UPDATE runs SET status = ?2, error = ?3, diverged_step = ?4, ended_at = {NOW},
                 wall_seconds = ?5 WHERE id = ?1"
                ),
                params![self.run_id, status, error, diverged_step, wall_seconds],
            ),
        )?;
        at(&path, tx.commit())
    }
}

impl MetricsSink for RunWriter<'_> {
    fn record(&mut self, step: usize, split: Split, values: &[(&'static str, f64)]) -> Result<()> {
        self.rows
            .extend(values.iter().map(|&(name, v)| (step, split, name, v)));
        if self.rows.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }
}

/// Flattens a JSON object into dotted keys with SQLite values: numbers stay numbers (integers
/// as INTEGER), booleans become 0/1, arrays are stored as their JSON text.
fn flatten(v: &serde_json::Value) -> Vec<(String, rusqlite::types::Value)> {
    use rusqlite::types::Value as Sql;
    use serde_json::Value as Json;
    fn walk(prefix: &str, v: &Json, out: &mut Vec<(String, Sql)>) {
        let sql = match v {
            Json::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
                return;
            }
            Json::Null => Sql::Null,
            Json::Bool(b) => Sql::Integer(i64::from(*b)),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Sql::Integer(i),
                None => Sql::Real(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) if s == "inf" => Sql::Real(f64::INFINITY),
            Json::String(s) => Sql::Text(s.clone()),
            Json::Array(_) => Sql::Text(v.to_string()),
        };
        out.push((prefix.to_string(), sql));
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

fn at<T>(path: &Path, r: rusqlite::Result<T>) -> Result<T> {
    r.map_err(|e| Error::sqlite(path, e))
}
