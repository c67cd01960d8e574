//! Claiming a cell: the run a process starts for it, recorded as `running` with its params, and
//! the writer of its results.

use rusqlite::{TransactionBehavior, params};

use super::writer::RunWriter;
use super::{NOW, Store, at};
use crate::error::Result;
use crate::experiment::config::{FORMAT_VERSION, RunConfig};
use crate::provenance::{Provenance, process_identity, run_process_alive};
use crate::train::Engine;

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
    /// Which trainer runs it (recorded as `runs.engine`).
    pub engine: Engine,
}

impl Store {
    /// Claims a cell: unless it already has a usable result (ignored with `force`) or a live
    /// `running` run, inserts a run as `running` with its params and returns a writer for its
    /// metrics. The check and the insert are one write transaction, so two sweeps of the same
    /// spec on the same store never run a cell twice.
    pub fn claim_run(&mut self, run: &NewRun, force: bool) -> Result<Option<RunWriter<'_>>> {
        let cfg = run.config;
        let p = run.provenance;
        let hash = cfg.hash();
        let path = self.path.clone();
        let tx = at(&path, self.conn.transaction_with_behavior(TransactionBehavior::Immediate))?;
        {
            let mut stmt = at(
                &path,
                tx.prepare(
                    "SELECT status, host, pid, process FROM runs WHERE experiment = ?1 AND config_hash = ?2
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
                        r.get::<_, Option<String>>(3)?,
                    ))
                }),
            )?;
            for row in existing {
                let (status, host, pid, process) = at(&path, row)?;
                let alive = run_process_alive(host.as_deref(), pid, process.as_deref());
                let taken = match status.as_str() {
                    // A run whose process cannot be checked (another host) blocks the cell,
                    // unless forced: then only a run known to be alive does.
                    "running" if force => alive == Some(true),
                    "running" => alive != Some(false),
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
                   started_at, device, threads, host, pid, git_commit, git_dirty, rmlab_version, torch_version, uid,
                   engine, process)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', {NOW}, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                   lower(hex(randomblob(16))), ?14, ?15)"
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
                run.engine.as_str(),
                process_identity(std::process::id()),
            ],
        ))?;
        let run_id = tx.last_insert_rowid();
        {
            let mut ins = at(
                &path,
                tx.prepare("INSERT INTO params (run_id, key, value, swept) VALUES (?1, ?2, ?3, ?4)"),
            )?;
            let json = serde_json::to_value(cfg).expect("a RunConfig serializes");
            for (key, value) in flatten(&json) {
                let swept = run.swept.contains(&key);
                at(&path, ins.execute(params![run_id, key, value, swept]))?;
            }
        }
        at(&path, tx.commit())?;
        Ok(Some(RunWriter::new(self, run_id)))
    }
}

/// A config's params as the store keeps them: every key of its JSON, dotted (`loss.lambda`),
/// with its value as SQL (booleans as 0/1, `inf` as a real, lists as JSON text).
pub fn flatten_config(cfg: &RunConfig) -> Vec<(String, rusqlite::types::Value)> {
    flatten(&serde_json::to_value(cfg).expect("a RunConfig serializes"))
}

/// Flattens a JSON object into dotted keys with SQLite values: numbers stay numbers (integers
/// as INTEGER), booleans become 0/1, arrays are stored as their JSON text.
pub(super) fn flatten(v: &serde_json::Value) -> Vec<(String, rusqlite::types::Value)> {
    use rusqlite::types::Value as Sql;
    use serde_json::Value as Json;
    fn walk(prefix: &str, v: &Json, out: &mut Vec<(String, Sql)>) {
        let sql = match v {
            Json::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
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
