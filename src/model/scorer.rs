//! The reward model a one-cell run trains: a linear model or MLP on features, or a fine-tuned
//! encoder with its head; the trainer sees one interface.

use tch::Tensor;

use super::RewardModel;
use super::encoder::EncoderRewardModel;

/// A trainable reward model.
#[derive(Debug)]
pub enum Scorer {
    /// Features `[B, D]` (or n-gram ids `[B, L]`).
    Features(RewardModel),
    /// Packed token rows `[B, 3, L]` (boxed: an encoder is many tensors, a head a few).
    Encoder(Box<EncoderRewardModel>),
}

impl Scorer {
    /// Rewards `[B]` of a training batch (dropout on where the model has it).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Scorer::Features(m) => m.forward(xs),
            Scorer::Encoder(m) => m.forward_t(xs, train),
        }
    }

    /// Rewards `[R]` of every row under no-grad, for evaluation (an encoder in batches).
    pub fn rewards(&self, xs: &Tensor) -> Tensor {
        match self {
            Scorer::Features(m) => tch::no_grad(|| m.forward(xs)),
            Scorer::Encoder(m) => m.rewards(xs),
        }
    }

    /// L2 norm of the head's weight vector.
    pub fn head_weight_norm(&self) -> Tensor {
        match self {
            Scorer::Features(m) => m.head_weight_norm(),
            Scorer::Encoder(m) => m.head_weight_norm(),
        }
    }
}
