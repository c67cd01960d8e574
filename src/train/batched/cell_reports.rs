//! What each cell of a group reports, as if it had been trained alone: its evaluations, its
//! early stopping and best weights, its divergence, and at the end its final rewards and kept
//! model.

use tch::{Device, Kind, Tensor};

use super::stacked::StackedMlp;
use crate::data::Dataset;
use crate::error::Result;
use crate::eval::evaluator::{Truths, report_eval_watching, report_rewards};
use crate::eval::{MetricsSink, Outcome, TrainedModel};
use crate::experiment::config::{RunConfig, SaveModel};
use crate::train::early_stopping::{EarlyStopping, Verdict};

/// The state of a group's cells between evaluations; `sinks[k]` (given to each call) is cell
/// k's.
pub struct CellReports<'a> {
    cfgs: &'a [RunConfig],
    datasets: &'a [&'a Dataset],
    /// The truths of each input, and the input of each cell.
    truths: Vec<Truths>,
    input_of: &'a [usize],
    /// Each cell's outcome once it has one (diverged, or stopped early); `None` while it trains.
    outcomes: Vec<Option<Outcome>>,
    stoppers: Vec<Option<EarlyStopping>>,
    /// Each cell's parameters at its best evaluation (early stopping).
    best: Vec<Option<Vec<Tensor>>>,
}

impl<'a> CellReports<'a> {
    /// Cells `cfgs` trained on `datasets`, cell k reading input `input_of[k]` of `inputs`.
    pub fn new(
        cfgs: &'a [RunConfig],
        datasets: &'a [&'a Dataset],
        inputs: &[&Dataset],
        input_of: &'a [usize],
    ) -> CellReports<'a> {
        CellReports {
            cfgs,
            datasets,
            truths: inputs.iter().map(|ds| Truths::new(ds)).collect(),
            input_of,
            outcomes: vec![None; cfgs.len()],
            stoppers: cfgs.iter().map(|c| EarlyStopping::new(&c.train)).collect(),
            best: (0..cfgs.len()).map(|_| None).collect(),
        }
    }

    /// Whether every cell has its outcome (none trains on).
    pub fn all_done(&self) -> bool {
        self.outcomes.iter().all(Option::is_some)
    }

    /// Evaluates every cell still training at `step` on `features` (the evaluation input,
    /// `[E, R, D + 1]`): reports its metrics, and a diverged cell's rewards, and observes its
    /// early stopping, keeping its best parameters.
    pub fn evaluate(
        &mut self,
        mlp: &StackedMlp,
        features: &Tensor,
        step: usize,
        sinks: &mut [&mut dyn MetricsSink],
    ) -> Result<()> {
        let rewards = mlp.forward(features); // [K, R]
        let norms =
            Vec::<f64>::try_from(mlp.head_weight_norms().to_kind(Kind::Double).to_device(Device::Cpu))?;
        for i in 0..self.cfgs.len() {
            if self.outcomes[i].is_some() {
                continue;
            }
            let (cfg, data, sink) = (&self.cfgs[i], self.datasets[i], &mut *sinks[i]);
            let watch = self.stoppers[i].as_ref().map(|e| (e.split, e.metric.as_str()));
            let r = rewards.get(i as i64);
            let truths = &self.truths[self.input_of[i]];
            let (diverged, watched) =
                report_eval_watching(&r, norms[i], data, truths, cfg, step, sink, watch)?;
            if let Some(o) = diverged {
                report_rewards(&r, data, cfg.eval.rewards, step, sink)?;
                self.outcomes[i] = Some(o);
            } else if let Some(e) = &mut self.stoppers[i] {
                match e.observe(step, watched) {
                    Verdict::Improved => self.best[i] = Some(mlp.cell_parameters(i as i64)),
                    Verdict::Stop => self.outcomes[i] = Some(Outcome::Finished),
                    Verdict::Continue => {}
                }
            }
        }
        Ok(())
    }

    /// Each cell's outcome after training ended at `step`: early-stopped cells (and finished
    /// cells with early stopping) get their best weights back, and every cell that did not
    /// diverge reports its final rewards on `features`, its best step, and its kept model.
    pub fn finish(
        self,
        mlp: &mut StackedMlp,
        features: &Tensor,
        step: usize,
        sinks: &mut [&mut dyn MetricsSink],
    ) -> Result<Vec<Outcome>> {
        for (i, (snapshot, outcome)) in self.best.iter().zip(&self.outcomes).enumerate() {
            if let (Some(snapshot), None | Some(Outcome::Finished)) = (snapshot, outcome) {
                mlp.set_cell_parameters(i as i64, snapshot);
            }
        }
        let rewards = mlp.forward(features);
        let mut done = Vec::with_capacity(self.cfgs.len());
        for (i, o) in self.outcomes.into_iter().enumerate() {
            if let Some(d @ Outcome::Diverged { .. }) = o {
                done.push(d);
                continue;
            }
            let (cfg, sink) = (&self.cfgs[i], &mut *sinks[i]);
            let best_step = self.stoppers[i].as_ref().and_then(EarlyStopping::best_step);
            let kept_step = best_step.unwrap_or(step);
            let rows =
                report_rewards(&rewards.get(i as i64), self.datasets[i], cfg.eval.rewards, kept_step, sink)?;
            if let Some(best_step) = best_step {
                sink.record_best_step(best_step)?;
            }
            if cfg.train.save != SaveModel::None {
                let (reward_mean, reward_std) = TrainedModel::train_statistics(&rows);
                sink.record_model(&TrainedModel {
                    tensors: mlp.export_cell(i as i64),
                    engine: "batched",
                    config_json: cfg.canonical_json(),
                    step: best_step.unwrap_or(step),
                    reward_mean,
                    reward_std,
                })?;
            }
            done.push(Outcome::Finished);
        }
        Ok(done)
    }
}
