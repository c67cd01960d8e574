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
pub mod inputs;

pub use autograd::{build_model, train};
pub use batched::{compatible, group_key, train_group};
pub use batches::batch_indices;
