//! What a run reports and where it goes: the training loop reports metrics, final rewards and
//! its [`Outcome`] through a [`MetricsSink`] and never knows whether that is a SQLite store,
//! memory or nothing.

use crate::data::Split;
use crate::error::Result;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All steps ran and every evaluation had a finite training loss.
    Finished,
    /// The training loss was NaN or infinite at the evaluation after `step` steps.
    Diverged { step: usize },
}

/// Receives evaluation results as they are produced.
pub trait MetricsSink {
    /// Metrics of `split` after `step` optimizer steps (step 0 is before training).
    fn record(&mut self, step: usize, split: Split, values: &[(&'static str, f64)]) -> Result<()>;

    /// The reward of every evaluated response at the end of the run (after the last
    /// evaluation, or the one that found divergence).
    fn record_rewards(&mut self, rows: &[RewardRow]) -> Result<()>;
}

/// The final reward of one response.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RewardRow {
    /// Index of the response in its data set.
    pub response: usize,
    /// Index of its prompt.
    pub prompt: usize,
    pub split: Split,
    pub reward: f64,
    /// r*(x, y) where the truth is known (synthetic data).
    pub true_reward: Option<f64>,
}

/// One metric value.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRow {
    pub step: usize,
    pub split: Split,
    pub name: &'static str,
    pub value: f64,
}

/// Keeps every row in memory; for tests and callers that want the numbers directly.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub rows: Vec<MetricRow>,
    pub rewards: Vec<RewardRow>,
}

impl MemorySink {
    /// Values of one metric on one split, by step.
    pub fn curve(&self, split: Split, name: &str) -> Vec<(usize, f64)> {
        self.rows.iter().filter(|r| r.split == split && r.name == name).map(|r| (r.step, r.value)).collect()
    }

    /// The last value of one metric on one split.
    pub fn last(&self, split: Split, name: &str) -> Option<f64> {
        self.curve(split, name).last().map(|&(_, v)| v)
    }
}

impl MetricsSink for MemorySink {
    fn record(&mut self, step: usize, split: Split, values: &[(&'static str, f64)]) -> Result<()> {
        self.rows.extend(values.iter().map(|&(name, value)| MetricRow { step, split, name, value }));
        Ok(())
    }

    fn record_rewards(&mut self, rows: &[RewardRow]) -> Result<()> {
        self.rewards = rows.to_vec();
        Ok(())
    }
}
