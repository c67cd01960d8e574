//! Identifiable ceilings of truth metrics for the runs of a figure. A run's synthetic data are
//! generated again from its stored config and seed (checked against the true rewards the run
//! stored), and `eval::truth::identifiable_ceilings` scores r* − g(x) on the figure's split.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::Connection;

use crate::data::synthetic::generate_with_offsets;
use crate::error::{Error, Result};
use crate::eval::truth::{CEILING_NAMES, HostSplit, identifiable_ceilings};
use crate::experiment::config::{DataKind, KeptRewards, RunConfig};

/// Whether a metric has an identifiable ceiling.
pub fn has_ceiling(metric: &str) -> bool {
    CEILING_NAMES.contains(&metric)
}

/// Ceilings of runs by split, computed once per run and split.
pub struct Ceilings<'c> {
    conn: &'c Connection,
    by_run: HashMap<(i64, String), Option<BTreeMap<&'static str, f64>>>,
    /// Why some runs have no ceiling (for the sidecar's notes; [`Ceilings::take_notes`]).
    notes: Vec<String>,
    /// Runs that kept no rewards, and whether the current figure asked for one of them.
    without_rewards: HashSet<i64>,
    met_without_rewards: bool,
}

impl<'c> Ceilings<'c> {
    pub fn new(conn: &'c Connection) -> Ceilings<'c> {
        Ceilings {
            conn,
            by_run: HashMap::new(),
            notes: Vec::new(),
            without_rewards: HashSet::new(),
            met_without_rewards: false,
        }
    }

    /// The ceiling of `metric` on `split` for run `run`; `None` for metrics without one, runs
    /// on preference files, and runs whose data cannot be reproduced.
    pub fn of(&mut self, run: i64, split: &str, metric: &str) -> Result<Option<f64>> {
        if !has_ceiling(metric) {
            return Ok(None);
        }
        let key = (run, split.to_string());
        if self.without_rewards.contains(&run) {
            self.met_without_rewards = true;
            return Ok(None);
        }
        if !self.by_run.contains_key(&key) {
            let v = self.compute(run, split)?;
            self.by_run.insert(key.clone(), v);
        }
        Ok(self.by_run[&key].as_ref().and_then(|m| m.get(metric).copied()).filter(|v| v.is_finite()))
    }

    /// The notes of the figure drawn since the last call, then none.
    pub fn take_notes(&mut self) -> Vec<String> {
        if std::mem::take(&mut self.met_without_rewards) {
            self.notes.push("runs that kept no rewards (eval.rewards = \"none\"): no ceiling".into());
        }
        std::mem::take(&mut self.notes)
    }

    fn compute(&mut self, run: i64, split: &str) -> Result<Option<BTreeMap<&'static str, f64>>> {
        let sql_err = Error::on(self.conn);
        let json: String = self
            .conn
            .query_row("SELECT config_json FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .map_err(sql_err)?;
        let cfg: RunConfig = match serde_json::from_str(&json) {
            Ok(c) => c,
            Err(e) => {
                self.notes.push(format!("run {run}: its stored config does not parse ({e}): no ceiling"));
                return Ok(None);
            }
        };
        if cfg.data.kind != DataKind::Synthetic {
            return Ok(None);
        }
        if cfg.eval.rewards == KeptRewards::None {
            // Nothing to check data generated again against (and a sweep that keeps no
            // rewards is one of thousands of cells, where regenerating each is the cost).
            self.without_rewards.insert(run);
            self.met_without_rewards = true;
            return Ok(None);
        }
        let (prefs, offsets) = generate_with_offsets(&cfg.data, cfg.seed);
        let Some(t) = prefs.true_reward.as_ref() else { return Ok(None) };
        let mut stmt = self
            .conn
            .prepare("SELECT response, true_reward FROM rewards WHERE run_id = ?1 AND split = ?2")
            .map_err(sql_err)?;
        let stored: Vec<(i64, Option<f64>)> = stmt
            .query_map(rusqlite::params![run, split], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql_err)?;
        let responses: Vec<usize> =
            (0..prefs.n_responses()).filter(|&i| prefs.split_of_response(i).as_str() == split).collect();
        // The data this rmlab generates must be the data the run trained on.
        let same = stored.len() == responses.len()
            && stored.iter().all(|&(i, v)| usize::try_from(i).ok().and_then(|i| t.get(i)).copied() == v);
        if !same {
            self.notes.push(format!(
                "run {run}: the data generated again differ from the true rewards it stored ({split}): no ceiling"
            ));
            return Ok(None);
        }
        let pairs: Vec<(usize, usize)> = prefs
            .pairs
            .iter()
            .filter(|q| prefs.split_of_response(q.chosen).as_str() == split)
            .map(|q| (q.chosen, q.rejected))
            .collect();
        let host = HostSplit {
            responses: &responses,
            pairs: &pairs,
            prompt_of: &prefs.prompt_of,
            true_reward: t,
            beta: cfg.data.beta,
            flip: cfg.data.flip,
        };
        Ok(Some(identifiable_ceilings(&host, &offsets).into_iter().collect()))
    }
}
