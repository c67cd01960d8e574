//! Early stopping: watch one metric of one split at every evaluation, remember the best, and
//! stop after `patience` evaluations without improvement. The best evaluation's weights are
//! what the run keeps.

use crate::data::Split;
use crate::experiment::config::TrainConfig;
use crate::experiment::metric::{Goal, goal};

/// What one evaluation means for early stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The metric improved on its best: keep these weights.
    Improved,
    /// No improvement, patience left.
    Continue,
    /// `patience` evaluations without improvement: stop and restore the best weights.
    Stop,
}

/// The early-stopping state of one run.
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    pub split: Split,
    pub metric: String,
    goal: Goal,
    patience: usize,
    best: Option<(usize, f64)>,
    since_best: usize,
}

impl EarlyStopping {
    /// The early stopping `t` asks for, if any (the config was validated: the metric has a
    /// goal and the split exists).
    pub fn new(t: &TrainConfig) -> Option<EarlyStopping> {
        let metric = t.early_stopping_metric.clone()?;
        let split = Split::named(&t.early_stopping_split);
        Some(EarlyStopping {
            goal: goal(&metric)?,
            split,
            metric,
            patience: t.early_stopping_patience,
            best: None,
            since_best: 0,
        })
    }

    /// Takes the metric's value at an evaluation after `step` steps. The first finite value
    /// is the first best; a value must be strictly better to improve; NaN never does.
    pub fn observe(&mut self, step: usize, value: f64) -> Verdict {
        let better = match self.best {
            _ if value.is_nan() => false,
            None => true,
            Some((_, best)) => match self.goal {
                Goal::Min => value < best,
                Goal::Max => value > best,
            },
        };
        if better {
            self.best = Some((step, value));
            self.since_best = 0;
            return Verdict::Improved;
        }
        self.since_best += 1;
        if self.since_best >= self.patience { Verdict::Stop } else { Verdict::Continue }
    }

    /// The step of the best evaluation so far.
    pub fn best_step(&self) -> Option<usize> {
        self.best.map(|b| b.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watcher(metric: &str, patience: usize) -> EarlyStopping {
        let t = TrainConfig {
            early_stopping_metric: Some(metric.into()),
            early_stopping_patience: patience,
            ..TrainConfig::default()
        };
        EarlyStopping::new(&t).unwrap()
    }

    #[test]
    fn stops_after_patience_evaluations_without_improvement() {
        let mut e = watcher("loss_pair", 2);
        assert_eq!(e.split, Split::Val);
        let seen: Vec<Verdict> =
            [(0, 0.7), (10, 0.5), (20, 0.5), (30, f64::NAN), (40, 0.4), (50, 0.6), (60, 0.45)]
                .iter()
                .map(|&(s, v)| e.observe(s, v))
                .collect();
        use Verdict::*;
        assert_eq!(seen, [Improved, Improved, Continue, Stop, Improved, Continue, Stop]);
        assert_eq!(e.best_step(), Some(40));
        let mut acc = watcher("accuracy", 1);
        assert_eq!(
            (acc.observe(0, 0.5), acc.observe(10, 0.6), acc.observe(20, 0.6)),
            (Improved, Improved, Stop)
        );
        assert!(EarlyStopping::new(&TrainConfig::default()).is_none());
    }
}
