//! `rmlab export tensorboard`: the store's runs as TensorBoard event files, one directory a run
//! named by its cell, every metric of every split at every evaluation step as a scalar, and the
//! run's params as the hparams plugin's hyperparameters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::Value as Sql;

use super::event_file::{self, EventFile};
use super::proto::Status;
use super::run_dir::{run_path, session_start_info, tag};
use crate::analysis::query::{self, Filter, Selection};
use crate::error::{Error, Result};

/// Which runs an export writes, as `rmlab query` selects them.
#[derive(Clone, Debug, Default)]
pub struct ExportRequest {
    pub experiment: Option<String>,
    /// `key=value` filters, as typed (`--where`).
    pub filters: Vec<String>,
    /// Every run (any status, reruns), not only the newest finished run of each cell.
    pub all_runs: bool,
}

/// One run written.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportedRun {
    pub run_id: i64,
    /// Its directory, relative to the log directory.
    pub dir: String,
    pub file: PathBuf,
    pub scalars: usize,
}

/// What an export wrote.
#[derive(Clone, Debug, Default)]
pub struct Export {
    pub runs: Vec<ExportedRun>,
    /// Runs the selection matched but left out, not being the newest finished run of their
    /// cell (without `all_runs`).
    pub left_out: usize,
}

impl std::fmt::Display for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scalars: usize = self.runs.iter().map(|r| r.scalars).sum();
        write!(f, "{} runs, {scalars} scalars", self.runs.len())?;
        if self.left_out > 0 {
            write!(
                f,
                "; {} runs left out, not the newest finished run of their cell (--all-runs writes them)",
                self.left_out
            )?;
        }
        Ok(())
    }
}

/// A selected run as the store keeps it.
struct StoredRun {
    id: i64,
    experiment: String,
    status: String,
    uid: String,
    started: f64,
    ended: Option<f64>,
    params: BTreeMap<String, Sql>,
    swept: BTreeMap<String, Sql>,
}

/// Writes the runs `req` selects from the store at `db` into the log directory `dir` (made if
/// missing). Each run's file is written under a temporary name and renamed into place, so a
/// file there is whole; its name holds the run's uid, so exporting again replaces it rather
/// than adding a second copy of its scalars. The store keeps no time of each evaluation: every
/// scalar carries the run's start time, and the session's end its end time.
pub fn export(db: &Path, dir: &Path, req: &ExportRequest) -> Result<Export> {
    let store = crate::store::Store::open_read_only(db)?;
    let conn = store.connection();
    crate::analysis::query::check_experiment(conn, db, req.experiment.as_deref())?;
    let sel = Selection {
        experiment: req.experiment.clone(),
        filters: req.filters.iter().map(|f| Filter::parse(f)).collect::<Result<_>>()?,
        latest_only: !req.all_runs,
    };
    query::check_filter_keys(conn, req.experiment.as_deref(), &sel.filters)?;
    let runs =
        query::run_ids(conn, &sel)?.into_iter().map(|id| stored_run(conn, id)).collect::<Result<Vec<_>>>()?;
    // Two selected runs of one name (reruns with --all-runs, or cells of an edited spec with the
    // same swept values) each get their run id in it.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for r in &runs {
        *names.entry(run_path(&r.experiment, &r.swept)).or_default() += 1;
    }
    let every = query::run_ids(conn, &Selection { latest_only: false, ..sel.clone() })?.len();
    make_dir(dir)?;
    let mut out = Export { runs: Vec::new(), left_out: every - runs.len() };
    for r in &runs {
        let mut name = run_path(&r.experiment, &r.swept);
        if names[&name] > 1 {
            name.push_str(&format!(",run={}", r.id));
        }
        let (file, scalars) = write_run(conn, dir, &name, r)?;
        out.runs.push(ExportedRun { run_id: r.id, dir: name, file, scalars });
    }
    Ok(out)
}

/// Makes the log directory, refusing a path that cannot be one as bad input.
fn make_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::flag("DIR", dir.display(), "exists and is not a directory"));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        let under_file = dir.ancestors().skip(1).any(|a| a.is_file());
        if under_file || e.kind() == std::io::ErrorKind::NotADirectory {
            Error::flag("DIR", dir.display(), "cannot be a directory: a path above it is a file")
        } else {
            Error::io(dir, e)
        }
    })
}

/// Seconds since the Unix epoch of an SQLite time column (`started_at`, `ended_at`).
fn epoch(column: &str) -> String {
    format!("(julianday({column}) - 2440587.5) * 86400.0")
}

fn stored_run(conn: &Connection, id: i64) -> Result<StoredRun> {
    let sql = format!(
        "SELECT experiment, status, coalesce(uid, CAST(id AS TEXT)), {}, {} FROM runs WHERE id = ?1",
        epoch("started_at"),
        epoch("ended_at")
    );
    let (experiment, status, uid, started, ended) = conn
        .query_row(&sql, [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, Option<f64>>(3)?, r.get(4)?))
        })
        .map_err(Error::on(conn))?;
    let mut stmt =
        conn.prepare("SELECT key, value, swept FROM params WHERE run_id = ?1").map_err(Error::on(conn))?;
    let rows = stmt
        .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Sql>(1)?, r.get::<_, bool>(2)?)))
        .map_err(Error::on(conn))?;
    let (mut params, mut swept) = (BTreeMap::new(), BTreeMap::new());
    for row in rows {
        let (key, value, is_swept) = row.map_err(Error::on(conn))?;
        if is_swept {
            swept.insert(key.clone(), value.clone());
        }
        params.insert(key, value);
    }
    Ok(StoredRun { id, experiment, status, uid, started: started.unwrap_or(0.0), ended, params, swept })
}

/// The hparams plugin's status of a stored run: finished is success; diverged (stopped early,
/// out of bounds) and failed are failures; a run still `running` in the store is running.
fn status(stored: &str) -> Status {
    match stored {
        "finished" => Status::Success,
        "running" => Status::Running,
        _ => Status::Failure,
    }
}

/// Writes one run's event file into `dir/name`; returns its path and its count of scalars.
fn write_run(conn: &Connection, dir: &Path, name: &str, r: &StoredRun) -> Result<(PathBuf, usize)> {
    let run_dir = dir.join(name);
    std::fs::create_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
    let uid = super::run_dir::safe_name(&r.uid);
    let path = run_dir.join(format!("events.out.tfevents.{:010}.rmlab.{uid}", r.started.max(0.0) as u64));
    // Without `tfevents` in its name TensorBoard does not read a file half written.
    let tmp = run_dir.join(format!(".part-{uid}-{}", std::process::id()));
    let written = write_events(conn, &tmp, r);
    match written {
        Ok(scalars) => {
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            Ok((path, scalars))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn write_events(conn: &Connection, path: &Path, r: &StoredRun) -> Result<usize> {
    let mut file = EventFile::create(path, r.started)?;
    file.write(&event_file::session_start(
        r.started,
        session_start_info(&r.experiment, &r.params, &r.swept, r.started),
    ))?;
    let mut stmt = conn
        .prepare("SELECT step, split, name, value FROM metrics WHERE run_id = ?1 ORDER BY step, split, name")
        .map_err(Error::on(conn))?;
    let rows = stmt
        .query_map([r.id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<f64>>(3)?,
            ))
        })
        .map_err(Error::on(conn))?;
    // One event a step: every split's metrics, in step order (TensorBoard drops a tag's points
    // that an earlier step written later would orphan).
    let (mut step, mut values, mut scalars) = (None::<i64>, Vec::new(), 0);
    let mut last_step = 0;
    for row in rows {
        let (s, split, metric, value) = row.map_err(Error::on(conn))?;
        if step.is_some_and(|p| p != s) {
            file.write(&event_file::scalars(r.started, step.unwrap_or(0), values.drain(..)))?;
        }
        step = Some(s);
        last_step = s;
        // SQLite keeps NaN as NULL.
        values.push((tag(&split, &metric), value.map_or(f32::NAN, |v| v as f32)));
        scalars += 1;
    }
    if let Some(s) = step {
        file.write(&event_file::scalars(r.started, s, values.drain(..)))?;
    }
    let ended = r.ended.unwrap_or(r.started);
    file.write(&event_file::session_end(ended, last_step, status(&r.status)))?;
    file.close()?;
    Ok(scalars)
}
