//! A run's reward model with its initial weights: what both trainers start from, and what a
//! kept model's tensors are loaded into.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, nn};

use super::encoder::{Checkpoint, EncoderRewardModel};
use super::{RewardModel, Scorer};
use crate::data::Dataset;
use crate::error::Result;
use crate::experiment::config::{Finetune, ModelKind, RunConfig};

/// ChaCha8 stream of the run's seed that draws the initial weights (stream 0 draws the data,
/// 2 the batches, 3 synthetic nuisance features).
const INIT_STREAM: u64 = 1;

/// The run's model with its initial weights (from the seed's initialisation stream): a
/// fine-tuned encoder's from its checkpoint, its head's from the stream.
pub fn build_model(cfg: &RunConfig, data: &Dataset, device: Device) -> Result<(nn::VarStore, Scorer)> {
    let vs = nn::VarStore::new(device);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(INIT_STREAM);
    let model = if cfg.model.kind == ModelKind::Encoder && cfg.model.finetune() != Finetune::None {
        let ck = Checkpoint::open(&cfg.model)?;
        Scorer::Encoder(Box::new(EncoderRewardModel::new(&vs.root(), &ck, &cfg.model, &mut rng)?))
    } else {
        Scorer::Features(RewardModel::new(&vs.root(), data.dim, &cfg.model, &mut rng, data.buckets))
    };
    Ok((vs, model))
}
