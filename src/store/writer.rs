//! Writing one run: metric rows in batches, then summaries, rewards and the final status in
//! one transaction.

use std::collections::BTreeMap;

use rusqlite::{Transaction, TransactionBehavior, params};

use super::{NOW, Store, at};
use crate::data::Split;
use crate::error::Error;
use crate::error::Result;
use crate::eval::{MetricsSink, Outcome, RewardRow, TrainedModel};
use crate::experiment::metric::{Goal, goal};
use sha2::{Digest, Sha256};
use tch::Tensor;

/// Metric rows buffered before a batch is written.
const BATCH_ROWS: usize = 8192;

/// Final and best value of one metric of one split.
#[derive(Clone, Copy, Debug)]
struct Summary {
    final_step: usize,
    final_value: f64,
    best: Option<(usize, f64)>,
}

/// Writes one run's results; [`RunWriter::finish`] commits the final status. Dropping a
/// writer without finishing leaves the run `running` (read as `interrupted` once its process
/// is gone), never `finished`.
#[derive(Debug)]
pub struct RunWriter<'a> {
    store: &'a mut Store,
    run_id: i64,
    rows: Vec<(usize, Split, &'static str, f64)>,
    summaries: BTreeMap<(Split, &'static str), Summary>,
    rewards: Vec<RewardRow>,
    data_rows: Option<(usize, usize)>,
    data_report: Option<serde_json::Value>,
    best_step: Option<usize>,
    batch_group: Option<String>,
    artifacts: Vec<Artifact>,
}

/// A file a run keeps (trained weights, their config), content-addressed.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    /// What it is, unique within a run: `weights`, `config`, ….
    pub kind: String,
    /// Where it is, as written (relative to the store's directory when under it).
    pub path: String,
    pub bytes: u64,
    /// SHA-256 of the file, 64 hex digits.
    pub sha256: String,
}

impl<'a> RunWriter<'a> {
    pub(super) fn new(store: &'a mut Store, run_id: i64) -> RunWriter<'a> {
        RunWriter {
            store,
            run_id,
            rows: Vec::with_capacity(BATCH_ROWS),
            summaries: BTreeMap::new(),
            rewards: Vec::new(),
            data_rows: None,
            data_report: None,
            best_step: None,
            batch_group: None,
            artifacts: Vec::new(),
        }
    }

    /// Rows read from a preference file and rows skipped as bad, recorded with the run.
    pub fn set_data_rows(&mut self, rows: usize, skipped: usize) {
        self.data_rows = Some((rows, skipped));
    }

    /// The run's data report (JSON), stored in `runs.data_report`.
    pub fn set_data_report(&mut self, report: serde_json::Value) {
        self.data_report = Some(report);
    }

    /// The evaluation step whose weights the run kept (early stopping).
    pub fn set_best_step(&mut self, step: usize) {
        self.best_step = Some(step);
    }

    /// The identity of the stacked group the run was trained in (`runs.batch_group`).
    pub fn set_batch_group(&mut self, group: String) {
        self.batch_group = Some(group);
    }

    /// A file the run keeps, recorded in `artifacts` when the run finishes.
    pub fn add_artifact(&mut self, artifact: Artifact) {
        self.artifacts.push(artifact);
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    fn write_rows(
        tx: &Transaction,
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
        let tx = at(&path, self.store.conn.transaction_with_behavior(TransactionBehavior::Immediate))?;
        at(&path, Self::write_rows(&tx, self.run_id, &self.rows))?;
        at(&path, tx.commit())?;
        self.rows.clear();
        Ok(())
    }

    /// Writes the remaining rows, the summaries, the rewards and the final status in one
    /// transaction.
    pub fn finish(self, outcome: &Result<Outcome>, wall_seconds: f64) -> Result<()> {
        let path = self.store.path.clone();
        let tx = at(&path, self.store.conn.transaction_with_behavior(TransactionBehavior::Immediate))?;
        at(&path, Self::write_rows(&tx, self.run_id, &self.rows))?;
        at(&path, write_summaries(&tx, self.run_id, &self.summaries))?;
        at(&path, write_rewards(&tx, self.run_id, &self.rewards))?;
        at(&path, write_artifacts(&tx, self.run_id, &self.artifacts))?;
        let (status, error, diverged_step, reason) = match outcome {
            Ok(Outcome::Finished) => ("finished", None, None, None),
            Ok(Outcome::Diverged { step, reason }) => {
                ("diverged", None, Some(*step as i64), Some(reason.as_str()))
            }
            Err(e) => ("failed", Some(e.to_string()), None, None),
        };
        at(
            &path,
            tx.execute(
                &format!(
                    "UPDATE runs SET status = ?2, error = ?3, diverged_step = ?4, ended_at = {NOW},
                     wall_seconds = ?5, data_rows = ?6, data_skipped = ?7, data_report = ?8, best_step = ?9,
                     batch_group = ?10, diverged_reason = ?11 WHERE id = ?1"
                ),
                params![
                    self.run_id,
                    status,
                    error,
                    diverged_step,
                    wall_seconds,
                    self.data_rows.map(|d| d.0 as i64),
                    self.data_rows.map(|d| d.1 as i64),
                    self.data_report.as_ref().map(|r| r.to_string()),
                    self.best_step.map(|s| s as i64),
                    self.batch_group,
                    reason,
                ],
            ),
        )?;
        at(&path, tx.commit())
    }
}

fn write_summaries(
    tx: &Transaction,
    run_id: i64,
    summaries: &BTreeMap<(Split, &'static str), Summary>,
) -> rusqlite::Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO summaries (run_id, split, name, final_step, final_value, best_step, best_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (&(split, name), s) in summaries {
        ins.execute(params![
            run_id,
            split.as_str(),
            name,
            s.final_step as i64,
            s.final_value,
            s.best.map(|b| b.0 as i64),
            s.best.map(|b| b.1),
        ])?;
    }
    Ok(())
}

fn write_rewards(tx: &Transaction, run_id: i64, rewards: &[RewardRow]) -> rusqlite::Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO rewards (run_id, response, prompt, split, reward, true_reward) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for r in rewards {
        ins.execute(params![
            run_id,
            r.response as i64,
            r.prompt as i64,
            r.split.as_str(),
            r.reward,
            r.true_reward
        ])?;
    }
    Ok(())
}

fn write_artifacts(tx: &Transaction, run_id: i64, artifacts: &[Artifact]) -> rusqlite::Result<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO artifacts (run_id, kind, path, bytes, sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for a in artifacts {
        ins.execute(params![run_id, a.kind, a.path, a.bytes as i64, a.sha256])?;
    }
    Ok(())
}

impl RunWriter<'_> {
    /// Writes `bytes` into the store's `artifacts/` directory under their SHA-256 (through a
    /// temporary name, so no half-written file is ever there) and returns the artifact.
    fn write_artifact(&self, kind: &str, extension: &str, bytes: &[u8]) -> Result<Artifact> {
        let sha: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        let rel = format!("artifacts/{sha}.{extension}");
        let path = self.store.artifacts_root().join(&rel);
        if !path.exists() {
            let dir = path.parent().expect("artifacts/ has a parent");
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let tmp = dir.join(format!(".{sha}.{}.part", std::process::id()));
            std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        }
        Ok(Artifact { kind: kind.into(), path: rel, bytes: bytes.len() as u64, sha256: sha })
    }
}

impl MetricsSink for RunWriter<'_> {
    fn record(&mut self, step: usize, split: Split, values: &[(&'static str, f64)]) -> Result<()> {
        for &(name, value) in values {
            self.rows.push((step, split, name, value));
            let s = self.summaries.entry((split, name)).or_insert(Summary {
                final_step: step,
                final_value: value,
                best: None,
            });
            s.final_step = step;
            s.final_value = value;
            s.best = better(goal(name), s.best, (step, value));
        }
        if self.rows.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn record_rewards(&mut self, rows: &[RewardRow]) -> Result<()> {
        self.rewards = rows.to_vec();
        Ok(())
    }

    fn record_best_step(&mut self, step: usize) -> Result<()> {
        self.best_step = Some(step);
        Ok(())
    }

    /// Keeps the model as two content-addressed files: the weights (safetensors) and a JSON
    /// record of the resolved config (with the `[data]` keys of its data source only), the
    /// engine, the step and the reward statistics, which names the weights by their SHA-256.
    fn record_model(&mut self, model: &TrainedModel) -> Result<()> {
        let dir = self.store.artifacts_root().join("artifacts");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let tmp = dir.join(format!(".weights-{}-{}.part", std::process::id(), self.run_id));
        let written = Tensor::write_safetensors(&model.tensors, &tmp)
            .map_err(Error::from)
            .and_then(|()| std::fs::read(&tmp).map_err(|e| Error::io(&tmp, e)));
        let _ = std::fs::remove_file(&tmp);
        let weights = self.write_artifact("weights", "safetensors", &written?)?;
        let record = serde_json::json!({
            "weights": { "path": weights.path, "sha256": weights.sha256 },
            "engine": model.engine,
            "step": model.step,
            "reward_mean": model.reward_mean,
            "reward_std": model.reward_std,
            "config": crate::experiment::config::only_its_data_source(
                serde_json::from_str::<serde_json::Value>(&model.config_json).expect("canonical JSON")
            ),
        });
        let record = serde_json::to_vec_pretty(&record).expect("a model record serializes");
        let config = self.write_artifact("config", "json", &record)?;
        self.add_artifact(weights);
        self.add_artifact(config);
        Ok(())
    }
}

/// The better of the best so far and a new value under a goal; the first on ties, NaN never.
fn better(goal: Option<Goal>, best: Option<(usize, f64)>, new: (usize, f64)) -> Option<(usize, f64)> {
    let goal = goal?;
    if new.1.is_nan() {
        return best;
    }
    match best {
        None => Some(new),
        Some(b) => match goal {
            Goal::Min if new.1 < b.1 => Some(new),
            Goal::Max if new.1 > b.1 => Some(new),
            _ => Some(b),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_follows_the_goal_and_skips_nan() {
        let steps = [(0, 3.0), (10, 1.0), (20, f64::NAN), (30, 1.0), (40, 2.0)];
        let run = |g| steps.iter().fold(None, |b, &s| better(g, b, s));
        assert_eq!(run(Some(Goal::Min)), Some((10, 1.0)));
        assert_eq!(run(Some(Goal::Max)), Some((0, 3.0)));
        assert_eq!(run(None), None);
    }
}
