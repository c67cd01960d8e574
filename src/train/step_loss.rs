//! What a trainer hands its caller after each optimizer step: the step's loss on its batch,
//! computed only when the caller asks, because reading it forces a host synchronisation (a
//! progress bar needs the step number alone; a loss-curve check needs every value).

use tch::{Kind, Tensor};

use crate::objective::Objective;

/// The total loss of a step's (last) micro-batch, one value a cell.
pub enum StepLoss<'a> {
    /// The one-cell autograd trainer's total loss: a scalar tensor on the device.
    Scalar(&'a Tensor),
    /// A stacked group's rewards of the micro-batch, `[K, 2b]` with each cell's pairs
    /// interleaved (chosen, rejected, chosen, …), and each cell's objective: the loss is
    /// evaluated from them, on the host in f64 ([`Objective::loss_host`]).
    Rewards { rewards: &'a Tensor, objectives: &'a [Objective] },
}

impl StepLoss<'_> {
    /// Each cell's total loss (pairwise term plus penalty): one value for the one-cell
    /// trainer, K for a group. Reads the device.
    pub fn values(&self) -> Vec<f64> {
        match self {
            StepLoss::Scalar(t) => vec![t.double_value(&[])],
            StepLoss::Rewards { rewards, objectives } => {
                let k = objectives.len();
                let host = Vec::<f64>::try_from(rewards.to_kind(Kind::Double).flatten(0, -1))
                    .expect("step rewards are a float tensor");
                let per_cell = host.len() / k.max(1);
                host.chunks_exact(per_cell.max(1))
                    .zip(objectives.iter())
                    .map(|(r, o)| {
                        let (pair, reg) = o.loss_host(r.chunks_exact(2).map(|p| (p[0], p[1], 0.0)));
                        pair + reg
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group's step loss equals the tensor objective on each cell's de-interleaved rewards.
    #[test]
    fn rewards_give_each_cells_objective() {
        let rewards = Tensor::from_slice(&[1.0f32, -0.5, 0.25, 2.0, 0.0, 0.0, 3.0, 1.0]).view([2, 4]);
        let objectives = [Objective::unregularized(), Objective::pair_sum_sq(0.1).with_margin(0.5)];
        let got = StepLoss::Rewards { rewards: &rewards, objectives: &objectives }.values();
        // Cell 0: pairs (1, −0.5), (0.25, 2); cell 1: (0, 0), (3, 1).
        let bt = |d: f64| (1.0 + (-d).exp()).ln();
        let want0 = (bt(1.5) + bt(-1.75)) / 2.0;
        let want1 = (bt(0.0 - 0.5) + bt(2.0 - 0.5)) / 2.0 + 0.1 * (0.0 + 16.0) / 2.0;
        assert!((got[0] - want0).abs() < 1e-12, "{} vs {want0}", got[0]);
        assert!((got[1] - want1).abs() < 1e-12, "{} vs {want1}", got[1]);
        let scalar = Tensor::from(0.75f32);
        assert_eq!(StepLoss::Scalar(&scalar).values(), [0.75]);
    }
}
