//! Stage 6, training: a run's model is trained on its data under its objective, reporting
//! metrics at evaluation steps through a sink.
//!
//! Two engines give the same numbers (to float32 rounding; `engine_equality` holds them to
//! 1e-5): [`train`] trains one cell with autograd and LibTorch's optimizers, the reference;
//! [`train_group`] trains K compatible cells (same config but seed and λ) as one batched
//! program with a hand-derived gradient and its own optimizer (`optim`). Neither uses the
//! other's code. Both draw their initialisation (`model::build_model`) and batches from the
//! cell's own seed ([`batch_indices`]). A cell trained alone ([`train_one`]) goes through the
//! batched engine as a group of one whenever that engine can train it: at small sizes a step
//! is mostly per-op overhead, and the hand-derived step has a few ops where autograd's has
//! dozens (BENCHMARKS.md, training rows).

mod autograd;
mod batched;
mod batches;
mod clip;
mod early_stopping;
#[cfg(test)]
mod engine_equality;
pub mod inputs;
#[allow(unsafe_code)] // the host kernels, safe functions over rmlab's only unsafe code
mod kernels;
mod optim;
mod schedule;
mod step_loss;
#[cfg(test)]
mod test_cells;

pub use autograd::train;
pub use batched::{compatible, group_key, train_alone, train_group};
pub use batches::batch_indices;
pub use step_loss::StepLoss;

use tch::{Device, Tensor};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::{MetricsSink, Outcome};
use crate::experiment::RunConfig;
use crate::model::build_model;

/// The trainer of a run, as recorded in `runs.engine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// One cell, differentiated by autograd ([`train`]).
    Autograd,
    /// The batched engine ([`train_group`], [`train_alone`]): a group of one or more cells.
    Batched,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Autograd => "autograd",
            Engine::Batched => "batched",
        }
    }

    /// The engine that trains `cfg` alone: the batched one when it can ([`group_key`]),
    /// else autograd (fine-tuned encoders, per-pair margins from the data, preference files
    /// whose features are computed per cell).
    pub fn for_one_cell(cfg: &RunConfig) -> Engine {
        if group_key(cfg).is_some() { Engine::Batched } else { Engine::Autograd }
    }
}

/// Trains one cell on `data` with [`Engine::for_one_cell`]'s engine; see [`train`] for what
/// it reports.
pub fn train_one(
    cfg: &RunConfig,
    data: &Dataset,
    device: Device,
    sink: &mut dyn MetricsSink,
    on_step: &mut dyn FnMut(usize, &StepLoss),
) -> Result<Outcome> {
    match Engine::for_one_cell(cfg) {
        Engine::Batched => train_alone(cfg, data, device, sink, on_step),
        Engine::Autograd => train(cfg, data, device, sink, on_step),
    }
}

/// The rewards `[R]` of every response of `data` under a kept model (`tensors`, by the
/// one-cell model's names), computed by the forward pass of the engine that trained it, so a
/// model scored on its own training data gives back the run's final rewards bit for bit.
pub fn kept_model_rewards(
    cfg: &RunConfig,
    engine: &str,
    tensors: &[(String, Tensor)],
    data: &Dataset,
) -> Result<Tensor> {
    let (vs, model) = build_model(cfg, data, Device::Cpu)?;
    let mut vars = vs.variables();
    if vars.len() != tensors.len() {
        return Err(Error::unreadable(
            "the kept model",
            format!("has {} tensors, but its config builds a model of {}", tensors.len(), vars.len()),
        ));
    }
    for (name, t) in tensors {
        let v = vars.get_mut(name).ok_or_else(|| {
            Error::unreadable("the kept model", format!("has a tensor `{name}` its config does not build"))
        })?;
        if v.size() != t.size() {
            return Err(Error::unreadable(
                "the kept model",
                format!("tensor `{name}` has shape {:?}, its config's model {:?}", t.size(), v.size()),
            ));
        }
        tch::no_grad(|| v.copy_(t));
    }
    match engine {
        "autograd" => Ok(model.rewards(&data.features)),
        "batched" => Ok(batched::forward_one(&vs, cfg, &data.features)),
        other => Err(Error::unreadable("the kept model", format!("names an unknown engine `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::test_cells::cfg;
    use super::*;
    use crate::data;
    use crate::eval::MemorySink;
    use crate::experiment::config::SaveModel;

    /// A model kept by the batched engine, scored by [`kept_model_rewards`], gives back the
    /// run's final rewards bit for bit (its own forward pass, `batched::forward_one`), and the
    /// same rewards to float32 rounding under the one-cell model's forward pass
    /// (`model::RewardModel`: LibTorch's linear layers, written apart from the engine), so the
    /// kept tensors are read as the model they were trained as. The rewards differ from the
    /// initial model's: what is kept is the trained model.
    #[test]
    fn kept_batched_models_reproduce_their_rewards() {
        let cfgs: Vec<RunConfig> = [(0, 0.0), (1, 0.1)]
            .iter()
            .map(|&(seed, lambda)| {
                let mut c = cfg(seed, lambda, Some(vec![16]));
                c.train.save = SaveModel::Final;
                c
            })
            .collect();
        let mut sinks: Vec<MemorySink> = (0..2).map(|_| MemorySink::default()).collect();
        {
            let mut refs: Vec<&mut dyn MetricsSink> =
                sinks.iter_mut().map(|s| s as &mut dyn MetricsSink).collect();
            train_group(&cfgs, Device::Cpu, &mut refs, &mut |_, _| {}).unwrap();
        }
        for (c, sink) in cfgs.iter().zip(&sinks) {
            let (p, _) = data::load(&c.data, c.seed).unwrap();
            let ds = Dataset::new(&p, Device::Cpu);
            let kept = sink.model.as_ref().unwrap();
            let host = |t: Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap();
            let own = host(kept_model_rewards(c, "batched", kept, &ds).unwrap());
            let reference = host(kept_model_rewards(c, "autograd", kept, &ds).unwrap());
            let initial = host(build_model(c, &ds, Device::Cpu).unwrap().1.rewards(&ds.features));
            assert_eq!(sink.rewards.len(), own.len());
            for row in &sink.rewards {
                let (r, want) = (own[row.response], reference[row.response]);
                assert_eq!(r.to_bits(), row.reward.to_bits(), "response {}", row.response);
                assert!(
                    (r - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "response {}: {r} vs {want}",
                    row.response
                );
            }
            let moved = own.iter().zip(&initial).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(moved > 0.05, "seed {}: the kept rewards are within {moved} of the initial ones", c.seed);
        }
    }
}
