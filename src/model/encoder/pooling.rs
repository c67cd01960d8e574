//! Token states to one vector per text: the masked mean (sentence-transformers' default) or
//! the first token's state.

use tch::{Kind, Tensor};

use crate::experiment::config::Pooling;

/// Pools token states `[B, L, H]` under the attention mask `[B, L]` (1 = token) into `[B, H]`.
/// `mean` sums the states of tokens and divides by their count (at least 1e-9, as
/// sentence-transformers does); `cls` takes position 0.
pub fn pool(states: &Tensor, mask: &Tensor, pooling: Pooling) -> Tensor {
    match pooling {
        Pooling::Cls => states.select(1, 0),
        Pooling::Mean => {
            let m = mask.to_kind(states.kind()).unsqueeze(-1);
            let sum = (states * &m).sum_dim_intlist(1, false, states.kind());
            sum / m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1e-9)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a plain loop over rows and tokens.
    #[test]
    fn mean_leaves_padding_out_and_cls_takes_the_first_token() {
        let states = crate::testing::Normal::new(3).tensor(&[2, 4, 3]);
        let mask = Tensor::from_slice(&[1i64, 1, 1, 0, 1, 0, 0, 0]).view([2, 4]);
        let got = Vec::<f32>::try_from(pool(&states, &mask, Pooling::Mean).flatten(0, -1)).unwrap();
        let s = Vec::<f32>::try_from(states.flatten(0, -1)).unwrap();
        for (row, n) in [(0usize, 3usize), (1, 1)] {
            for j in 0..3 {
                let want: f32 = (0..n).map(|t| s[(row * 4 + t) * 3 + j]).sum::<f32>() / n as f32;
                assert!((got[row * 3 + j] - want).abs() < 1e-6, "row {row} dim {j}");
            }
        }
        let cls = pool(&states, &mask, Pooling::Cls);
        assert!(cls.equal(&states.select(1, 0)));
    }
}
