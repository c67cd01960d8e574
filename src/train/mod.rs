//! Stage 6, training: a run's model is trained on its data under its objective, reporting
//! metrics at evaluation steps through a sink.
//!
//! Two engines give the same numbers (to float32 rounding; `batched` tests hold them to
//! 1e-5): [`train`] trains one cell with autograd and LibTorch's optimizers, the reference;
//! [`train_group`] trains K compatible cells (same config but seed and λ) as one batched
//! program with a hand-derived gradient. Both draw their initialisation and batches from the
//! cell's own seed ([`batch_indices`]). A cell trained alone ([`train_one`]) goes through the
//! batched engine as a group of one whenever that engine can train it: at small sizes a step
//! is mostly per-op overhead, and the hand-derived step has a few ops where autograd's has
//! dozens (BENCHMARKS.md, training rows).

mod autograd;
#[allow(unsafe_code)] // the batched engine's host kernels; nowhere else
mod batched;
mod batches;
mod clip;
mod early_stopping;
pub mod inputs;
mod schedule;
mod step_loss;

pub use autograd::{build_model, train};
pub use batched::{compatible, group_key, train_alone, train_group};
pub use batches::batch_indices;
pub use step_loss::StepLoss;

use tch::{Device, Tensor};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::{MetricsSink, Outcome};
use crate::experiment::RunConfig;

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
        return Err(Error::Input(format!(
            "the kept model has {} tensors, but its config builds a model of {}",
            tensors.len(),
            vars.len()
        )));
    }
    for (name, t) in tensors {
        let v = vars.get_mut(name).ok_or_else(|| {
            Error::Input(format!("the kept model has a tensor `{name}` its config does not build"))
        })?;
        if v.size() != t.size() {
            return Err(Error::Input(format!(
                "tensor `{name}`: shape {:?} in the kept model, {:?} in its config's model",
                t.size(),
                v.size()
            )));
        }
        tch::no_grad(|| v.copy_(t));
    }
    match engine {
        "autograd" => Ok(model.rewards(&data.features)),
        "batched" => Ok(batched::forward_one(&vs, cfg, &data.features)),
        other => Err(Error::Input(format!("the kept model names an unknown engine `{other}`"))),
    }
}
