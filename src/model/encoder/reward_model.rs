//! A fine-tuned reward model: the encoder's pooled output of a prompt–response pair through a
//! scalar head, trained together by autograd.

use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor, nn};

use super::bert::Bert;
use super::checkpoint::Checkpoint;
use super::embed::EMBED_BATCH;
use super::pooling::pool;
use crate::experiment::config::{ModelConfig, Pooling};
use crate::model::RewardModel;

/// Encoder + head. Inputs are packed token rows `[B, 3, L]` int64: ids, token types and the
/// attention mask of each pair, padded to a common L.
#[derive(Debug)]
pub struct EncoderRewardModel {
    bert: Bert,
    pooling: Pooling,
    head: RewardModel,
}

impl EncoderRewardModel {
    /// The checkpoint's weights (loaded by name) under `vs`'s root, with the ones
    /// `model.finetune` trains trainable, and a head drawn from `rng` like any reward model's.
    /// Weights that cannot be read are [`crate::error::Error::Unreadable`] (see [`Bert::load`]).
    pub fn new(
        vs: &nn::Path,
        ck: &Checkpoint,
        cfg: &ModelConfig,
        rng: &mut ChaCha8Rng,
    ) -> crate::error::Result<Self> {
        let bert = Bert::new(
            vs,
            &ck.config,
            cfg.finetune(),
            cfg.dropout.unwrap_or(false),
            cfg.precision.unwrap_or(crate::experiment::config::Precision::Fp32),
        );
        bert.load(&ck.dir.join("model.safetensors"))?;
        let head = RewardModel::new(vs, ck.config.hidden_size, cfg, rng, None);
        Ok(EncoderRewardModel { bert, pooling: cfg.pooling.unwrap_or(Pooling::Mean), head })
    }

    /// Rewards `[B]` of packed rows `[B, 3, L]`, trimmed to the batch's longest pair first
    /// (dynamic padding). `train`: dropout where the model has it on.
    pub fn forward_t(&self, rows: &Tensor, train: bool) -> Tensor {
        let longest = rows.select(1, 2).sum_dim_intlist(1, false, Kind::Int64).max().int64_value(&[]).max(1);
        let rows = rows.narrow(2, 0, longest);
        let (ids, types, mask) = (rows.select(1, 0), rows.select(1, 1), rows.select(1, 2));
        let pooled = pool(&self.bert.forward_t(&ids, &types, &mask, train), &mask, self.pooling);
        self.head.forward(&pooled)
    }

    /// Rewards `[R]` of every row, under no-grad and without dropout, in batches of similar
    /// length (as the embedding pass does).
    pub fn rewards(&self, rows: &Tensor) -> Tensor {
        let n = rows.size()[0];
        let lengths = Vec::<i64>::try_from(
            rows.select(1, 2).sum_dim_intlist(1, false, Kind::Int64).to_device(Device::Cpu),
        )
        .expect("int64 lengths");
        let mut order: Vec<i64> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lengths[i as usize]));
        let mut out = Tensor::zeros([n], (Kind::Float, rows.device()));
        tch::no_grad(|| {
            for chunk in order.chunks(EMBED_BATCH) {
                let idx = Tensor::from_slice(chunk).to_device(rows.device());
                let r = self.forward_t(&rows.index_select(0, &idx), false).to_kind(Kind::Float);
                let _ = out.index_copy_(0, &idx, &r);
            }
        });
        out
    }

    pub fn head_weight_norm(&self) -> Tensor {
        self.head.head_weight_norm()
    }
}
