//! Reward models: features `[B, D]` in, one scalar reward per row `[B]` out.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use tch::{Tensor, nn, nn::Module};

use crate::config::{Activation, ModelConfig, ModelKind};

/// A linear model or an MLP with a linear head. Parameters are named `hidden_0.weight`, …,
/// `head.weight`, `head.bias` in the VarStore.
#[derive(Debug)]
pub struct RewardModel {
    hidden: Vec<nn::Linear>,
    head: nn::Linear,
    activation: Activation,
}

impl RewardModel {
    /// Builds the model under `vs` for inputs of dimension `in_dim`.
    ///
    /// Weights and biases are drawn from U(−1/√fan_in, 1/√fan_in), PyTorch's `nn.Linear`
    /// default, but from `rng` on the host rather than LibTorch's global generator: a run's
    /// initialisation then depends on its seed alone, not on other runs in the process or the
    /// device.
    pub fn new(vs: &nn::Path, in_dim: usize, cfg: &ModelConfig, rng: &mut ChaCha8Rng) -> RewardModel {
        let sizes: &[usize] = match cfg.kind {
            ModelKind::Linear => &[],
            ModelKind::Mlp => cfg.hidden.as_deref().unwrap_or(&crate::config::DEFAULT_HIDDEN),
        };
        let mut hidden = Vec::with_capacity(sizes.len());
        let mut prev = in_dim;
        for (i, &h) in sizes.iter().enumerate() {
            hidden.push(linear(&(vs / format!("hidden_{i}")), prev, h, rng));
            prev = h;
        }
        let mut head = linear(&(vs / "head"), prev, 1, rng);
        if let (Some(b), Some(bs)) = (cfg.bias_init, head.bs.as_mut()) {
            tch::no_grad(|| {
                let _ = bs.fill_(b);
            });
        }
        RewardModel { hidden, head, activation: cfg.activation }
    }

    /// Rewards for a batch: `xs` `[B, D]` → `[B]`.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let mut h = xs.shallow_clone();
        for layer in &self.hidden {
            h = activate(&layer.forward(&h), self.activation);
        }
        self.head.forward(&h).squeeze_dim(-1)
    }

    /// L2 norm of the head's weight vector (its bias excluded).
    pub fn head_weight_norm(&self) -> Tensor {
        self.head.ws.norm()
    }
}

/// A linear layer `[out, in]` + `[out]` initialised from `rng` (weights first, row-major).
fn linear(vs: &nn::Path, fan_in: usize, out: usize, rng: &mut ChaCha8Rng) -> nn::Linear {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n).map(|_| ((2.0 * rng.random::<f64>() - 1.0) * bound) as f32).collect()
    };
    let ws = Tensor::from_slice(&draw(out * fan_in)).view([out as i64, fan_in as i64]);
    let bs = Tensor::from_slice(&draw(out));
    nn::Linear { ws: vs.var_copy("weight", &ws), bs: Some(vs.var_copy("bias", &bs)) }
}

fn activate(xs: &Tensor, a: Activation) -> Tensor {
    match a {
        Activation::Relu => xs.relu(),
        Activation::Tanh => xs.tanh(),
        Activation::Gelu => xs.gelu("none"),
        Activation::Silu => xs.silu(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tch::{Device, Kind};

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(0)
    }

    #[test]
    fn init_is_seeded_and_bounded_like_pytorch() {
        let cfg = ModelConfig { hidden: Some(vec![32]), ..ModelConfig::default() };
        let weights = |seed: u64| {
            let vs = nn::VarStore::new(Device::Cpu);
            RewardModel::new(&vs.root(), 8, &cfg, &mut ChaCha8Rng::seed_from_u64(seed));
            Vec::<f32>::try_from(vs.variables()["hidden_0.weight"].flatten(0, -1)).unwrap()
        };
        let w = weights(5);
        assert_eq!(w, weights(5));
        assert_ne!(w, weights(6));
        // fan_in = 8: U(−1/√8, 1/√8), whose standard deviation is 1/√24.
        let bound = 1.0 / 8f32.sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        let sd = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
        assert!((sd - 1.0 / 24f32.sqrt()).abs() < 0.02, "sd = {sd}");
    }

    #[test]
    fn parameter_names_read_well() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ModelConfig { hidden: Some(vec![8, 4]), ..ModelConfig::default() };
        let _m = RewardModel::new(&vs.root(), 3, &cfg, &mut rng());
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "head.bias",
                "head.weight",
                "hidden_0.bias",
                "hidden_0.weight",
                "hidden_1.bias",
                "hidden_1.weight"
            ]
        );
    }

    #[test]
    fn linear_model_is_affine() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ModelConfig { kind: ModelKind::Linear, hidden: None, ..ModelConfig::default() };
        let m = RewardModel::new(&vs.root(), 3, &cfg, &mut rng());
        let xs = Tensor::from_slice(&[1.0f32, 2.0, 3.0, -1.0, 0.0, 0.5]).view([2, 3]);
        let ys = m.forward(&xs);
        assert_eq!(ys.size(), [2]);
        let vars = vs.variables();
        let (w, b) = (&vars["head.weight"], &vars["head.bias"]);
        let expected = xs.matmul(&w.tr()).squeeze_dim(-1) + b;
        assert!(ys.allclose(&expected, 1e-6, 1e-6, false));
        assert_eq!(ys.kind(), Kind::Float);
    }
}
