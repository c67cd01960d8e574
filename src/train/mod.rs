//! Stage 6, training: a run's model is trained on its data under its objective, reporting
//! metrics at evaluation steps through a sink.
//!
//! Two trainers give the same numbers (to float32 rounding; `batched` tests hold them to
//! 1e-5): [`train`] trains one cell with autograd and LibTorch's optimizers, the reference;
//! [`train_group`] trains K compatible cells (same config but seed and λ) as one batched
//! program with a hand-derived gradient. Both draw their initialisation and batches from the
//! cell's own seed ([`batch_indices`]).

mod autograd;
#[allow(unsafe_code)] // the batched engine's host kernels; nowhere else
mod batched;
mod batches;
mod clip;
mod early_stopping;
pub mod inputs;
mod schedule;

pub use autograd::{build_model, train};
pub use batched::{compatible, group_key, train_group};
pub use batches::batch_indices;

use tch::{Device, Tensor};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::experiment::RunConfig;

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
