//! A linear reward model or an MLP with a linear head, optionally over a bag of n-gram
//! embeddings.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use tch::{Tensor, nn, nn::Module};

use crate::experiment::config::{Activation, ModelConfig};

/// A linear model or an MLP with a linear head. Parameters are named `hidden_0.weight`, …,
/// `head.weight`, `head.bias` in the VarStore.
#[derive(Debug)]
pub struct RewardModel {
    /// Text input: the n-gram embedding `[buckets + 1, E]` (last row: padding) and its pad id.
    embed: Option<(Tensor, i64)>,
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
    ///
    /// With `buckets` (text data), inputs are n-gram ids `[B, L]` padded with `buckets`, and a
    /// bag embedding (`embed.weight`, N(0, 1) like PyTorch's `EmbeddingBag`, padding row 0)
    /// averages each row's embeddings into the first layer's input.
    pub fn new(
        vs: &nn::Path,
        in_dim: usize,
        cfg: &ModelConfig,
        rng: &mut ChaCha8Rng,
        buckets: Option<usize>,
    ) -> RewardModel {
        let (embed, in_dim) = match buckets {
            Some(b) => {
                let mut w: Vec<f32> = (0..(b + 1) * cfg.embed_dim)
                    .map(|_| rng.sample::<f64, _>(rand_distr::StandardNormal) as f32)
                    .collect();
                w[b * cfg.embed_dim..].iter_mut().for_each(|v| *v = 0.0);
                let t = Tensor::from_slice(&w).view([b as i64 + 1, cfg.embed_dim as i64]);
                (Some(((vs / "embed").var_copy("weight", &t), b as i64)), cfg.embed_dim)
            }
            None => (None, in_dim),
        };
        let sizes = cfg.head_hidden();
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
        RewardModel { embed, hidden, head, activation: cfg.activation }
    }

    /// Rewards for a batch: `xs` `[B, D]` features (or `[B, L]` n-gram ids) → `[B]`.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let mut h = match &self.embed {
            Some((w, pad)) => {
                // Mean of the embeddings of each row's ids, padding left out (EmbeddingBag, mean).
                let e = Tensor::embedding(w, xs, *pad, false, false);
                let mask = xs.ne(*pad).to_kind(e.kind());
                let count = mask.sum_dim_intlist(1, true, e.kind()).clamp_min(1.0);
                (e * mask.unsqueeze(-1)).sum_dim_intlist(1, false, mask.kind()) / count
            }
            None => xs.shallow_clone(),
        };
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

/// The activation `a` applied element-wise.
pub fn activate(xs: &Tensor, a: Activation) -> Tensor {
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
    use crate::experiment::config::ModelKind;
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
            RewardModel::new(&vs.root(), 8, &cfg, &mut ChaCha8Rng::seed_from_u64(seed), None);
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
        let _m = RewardModel::new(&vs.root(), 3, &cfg, &mut rng(), None);
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
        let m = RewardModel::new(&vs.root(), 3, &cfg, &mut rng(), None);
        let xs = Tensor::from_slice(&[1.0f32, 2.0, 3.0, -1.0, 0.0, 0.5]).view([2, 3]);
        let ys = m.forward(&xs);
        assert_eq!(ys.size(), [2]);
        let vars = vs.variables();
        let (w, b) = (&vars["head.weight"], &vars["head.bias"]);
        let expected = xs.matmul(&w.tr()).squeeze_dim(-1) + b;
        assert!(ys.allclose(&expected, 1e-6, 1e-6, false));
        assert_eq!(ys.kind(), Kind::Float);
    }

    /// The bag layer is a masked mean of embedding rows, checked against a plain loop.
    #[test]
    fn bag_embedding_is_the_mean_of_non_padding_rows() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg =
            ModelConfig { kind: ModelKind::Linear, hidden: None, embed_dim: 3, ..ModelConfig::default() };
        let m = RewardModel::new(&vs.root(), 0, &cfg, &mut rng(), Some(5));
        let ids = Tensor::from_slice(&[0i64, 2, 5, 5, 4, 4, 1, 5]).view([2, 4]);
        let ys = m.forward(&ids);
        let vars = vs.variables();
        let w = Vec::<f32>::try_from(vars["embed.weight"].flatten(0, -1)).unwrap();
        let hw = Vec::<f32>::try_from(vars["head.weight"].flatten(0, -1)).unwrap();
        let hb = vars["head.bias"].double_value(&[0]);
        for (row, expected_ids) in [[0usize, 2].as_slice(), [4, 4, 1].as_slice()].iter().enumerate() {
            let mut mean = [0f64; 3];
            for &i in *expected_ids {
                for j in 0..3 {
                    mean[j] += w[i * 3 + j] as f64 / expected_ids.len() as f64;
                }
            }
            let y: f64 = (0..3).map(|j| mean[j] * hw[j] as f64).sum::<f64>() + hb;
            assert!((ys.double_value(&[row as i64]) - y).abs() < 1e-5, "row {row}");
        }
        assert!(w[15..].iter().all(|&v| v == 0.0), "padding row is zero");
    }
}
