//! What a run reports and where it goes: the training loop reports metrics, final rewards and
//! its [`Outcome`] through a [`MetricsSink`] and never knows whether that is a SQLite store,
//! memory or nothing.

use crate::data::Split;
use crate::error::Result;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All steps ran and every evaluation stayed within [`Divergence`]'s bounds.
    Finished,
    /// The evaluation after `step` steps found the run out of bounds; training stopped there.
    Diverged { step: usize, reason: Divergence },
}

/// Why a run counts as diverged, judged on the training split at an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// The training loss is NaN or infinite.
    NonFiniteLoss,
    /// The training loss exceeds [`Divergence::MAX_LOSS`]: an objective this large (λ = 1e30,
    /// say) no longer trains, whatever the optimizer does.
    LossTooLarge,
    /// A reward's magnitude exceeds [`Divergence::MAX_REWARD`]: beyond it float32 rewards cannot
    /// resolve differences of 0.1, so the model's preferences are rounding noise (Adam at
    /// lr = 1e6 sends rewards to ~1e14 without a non-finite loss).
    RewardsTooLarge,
}

impl Divergence {
    /// Largest training loss (nats) a run may have at an evaluation.
    pub const MAX_LOSS: f64 = 1e12;
    /// Largest reward magnitude a run may have at an evaluation.
    pub const MAX_REWARD: f64 = 1e6;

    /// The divergence, if any, of a training split's loss and largest reward magnitude.
    pub fn check(loss_total: f64, reward_max_abs: f64) -> Option<Divergence> {
        if !loss_total.is_finite() {
            Some(Divergence::NonFiniteLoss)
        } else if loss_total > Self::MAX_LOSS {
            Some(Divergence::LossTooLarge)
        } else if reward_max_abs.is_nan() || reward_max_abs > Self::MAX_REWARD {
            Some(Divergence::RewardsTooLarge)
        } else {
            None
        }
    }

    /// The reason as stored in `runs.diverged_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Divergence::NonFiniteLoss => "training loss not finite",
            Divergence::LossTooLarge => "training loss above 1e12",
            Divergence::RewardsTooLarge => "a reward beyond ±1e6 (float32 cannot resolve its differences)",
        }
    }
}

/// Receives evaluation results as they are produced.
pub trait MetricsSink {
    /// Metrics of `split` after `step` optimizer steps (step 0 is before training).
    fn record(&mut self, step: usize, split: Split, values: &[(&'static str, f64)]) -> Result<()>;

    /// The reward of every evaluated response at the end of the run (after the last
    /// evaluation, or the one that found divergence).
    fn record_rewards(&mut self, rows: &[RewardRow]) -> Result<()>;

    /// The evaluation step whose weights the run kept (early stopping).
    fn record_best_step(&mut self, _step: usize) -> Result<()> {
        Ok(())
    }

    /// The trained model, when the run keeps it (`train.save`).
    fn record_model(&mut self, _model: &TrainedModel) -> Result<()> {
        Ok(())
    }
}

/// A trained reward model a run keeps: its weights by the names of the one-cell model
/// (`hidden_0.weight` `[out, in]`, …, `head.weight` `[1, in]`, `head.bias` `[1]`), whichever
/// engine trained it, and what is needed to use it again.
#[derive(Debug)]
pub struct TrainedModel {
    /// Float32 CPU tensors, by name.
    pub tensors: Vec<(String, tch::Tensor)>,
    /// The engine that trained it (`autograd` or `batched`): scoring runs that engine's
    /// forward pass, so a kept model gives back the run's rewards bit for bit.
    pub engine: &'static str,
    /// The run's resolved config (canonical JSON).
    pub config_json: String,
    /// The step after which these weights were taken.
    pub step: usize,
    /// Mean and standard deviation of the model's rewards over the training responses
    /// (normalization statistics, as OpenRLHF keeps them with a reward model).
    pub reward_mean: f64,
    pub reward_std: f64,
}

impl TrainedModel {
    /// Mean and population standard deviation of the final rewards of the training split's
    /// responses.
    pub fn train_statistics(rows: &[RewardRow]) -> (f64, f64) {
        let r: Vec<f64> = rows.iter().filter(|r| r.split == Split::Train).map(|r| r.reward).collect();
        let n = r.len().max(1) as f64;
        let mean = r.iter().sum::<f64>() / n;
        let std = (r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        (mean, std)
    }
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
    pub best_step: Option<usize>,
    /// The kept model's weights, by name.
    pub model: Option<Vec<(String, tch::Tensor)>>,
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

    fn record_best_step(&mut self, step: usize) -> Result<()> {
        self.best_step = Some(step);
        Ok(())
    }

    fn record_model(&mut self, model: &TrainedModel) -> Result<()> {
        self.model = Some(model.tensors.iter().map(|(n, t)| (n.clone(), t.copy())).collect());
        Ok(())
    }
}

/// Two sinks as one: every report goes to `first`, then to `second` when there is one (the
/// store, and an event file written while training).
pub struct Tee<'a> {
    pub first: &'a mut dyn MetricsSink,
    pub second: Option<&'a mut dyn MetricsSink>,
}

impl MetricsSink for Tee<'_> {
    fn record(&mut self, step: usize, split: Split, values: &[(&'static str, f64)]) -> Result<()> {
        self.first.record(step, split, values)?;
        self.second.as_mut().map_or(Ok(()), |s| s.record(step, split, values))
    }

    fn record_rewards(&mut self, rows: &[RewardRow]) -> Result<()> {
        self.first.record_rewards(rows)?;
        self.second.as_mut().map_or(Ok(()), |s| s.record_rewards(rows))
    }

    fn record_best_step(&mut self, step: usize) -> Result<()> {
        self.first.record_best_step(step)?;
        self.second.as_mut().map_or(Ok(()), |s| s.record_best_step(step))
    }

    fn record_model(&mut self, model: &TrainedModel) -> Result<()> {
        self.first.record_model(model)?;
        self.second.as_mut().map_or(Ok(()), |s| s.record_model(model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tee_reports_to_both_sinks() {
        let (mut a, mut b) = (MemorySink::default(), MemorySink::default());
        let mut tee = Tee { first: &mut a, second: Some(&mut b) };
        tee.record(3, Split::Val, &[("accuracy", 0.5)]).unwrap();
        tee.record_best_step(3).unwrap();
        let mut alone = Tee { first: &mut a, second: None };
        alone.record(4, Split::Val, &[("accuracy", 0.75)]).unwrap();
        assert_eq!(a.curve(Split::Val, "accuracy"), vec![(3, 0.5), (4, 0.75)]);
        assert_eq!(b.curve(Split::Val, "accuracy"), vec![(3, 0.5)]);
        assert_eq!(b.best_step, Some(3));
    }
}
