//! The frozen encoder's pass over many texts: pooled embeddings under no-grad, in batches of
//! similar length (sorted, each padded only to its own longest pair).

use tch::{Device, Kind, Tensor};

use super::bert::Bert;
use super::pooling::pool;
use super::tokenizer::PairTokens;
use crate::experiment::config::Pooling;

/// Texts a batch of the embedding pass holds.
pub const EMBED_BATCH: usize = 32;

/// Pads pairs to their longest: ids `[B, L]`, token types `[B, L]` and mask `[B, L]`, int64 on
/// `device` (padding: id 0, type 0, mask 0).
pub fn padded(pairs: &[&PairTokens], device: Device) -> (Tensor, Tensor, Tensor) {
    let l = pairs.iter().map(|p| p.ids.len()).max().unwrap_or(1).max(1);
    let (mut ids, mut types, mut mask) =
        (vec![0i64; pairs.len() * l], vec![0i64; pairs.len() * l], vec![0i64; pairs.len() * l]);
    for (i, p) in pairs.iter().enumerate() {
        ids[i * l..][..p.ids.len()].copy_from_slice(&p.ids);
        types[i * l..][..p.types.len()].copy_from_slice(&p.types);
        mask[i * l..][..p.ids.len()].fill(1);
    }
    let t = |v: Vec<i64>| Tensor::from_slice(&v).view([pairs.len() as i64, l as i64]).to_device(device);
    (t(ids), t(types), t(mask))
}

/// Pooled embeddings of `pairs`, row-major `[N, H]` float32 on the host, in the order given.
/// Pairs are embedded longest first in batches of `batch`; `on_batch` gets the count done.
pub fn embed(
    bert: &Bert,
    pooling: Pooling,
    pairs: &[PairTokens],
    batch: usize,
    device: Device,
    on_batch: &mut dyn FnMut(usize),
) -> Result<Vec<f32>, tch::TchError> {
    let h = bert.config().hidden_size;
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    // Longest first: the largest batch comes first, so a pass that runs out of memory fails
    // at once; ties keep their order, so the batches never depend on anything but lengths.
    order.sort_by_key(|&i| std::cmp::Reverse(pairs[i].ids.len()));
    let mut out = vec![0f32; pairs.len() * h];
    let mut done = 0;
    for chunk in order.chunks(batch.max(1)) {
        let rows: Vec<&PairTokens> = chunk.iter().map(|&i| &pairs[i]).collect();
        let (ids, types, mask) = padded(&rows, device);
        let pooled = tch::no_grad(|| pool(&bert.forward_t(&ids, &types, &mask, false), &mask, pooling));
        let host = Vec::<f32>::try_from(pooled.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?;
        for (k, &i) in chunk.iter().enumerate() {
            out[i * h..][..h].copy_from_slice(&host[k * h..][..h]);
        }
        done += chunk.len();
        on_batch(done);
    }
    Ok(out)
}
