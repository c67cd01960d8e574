//! Test inputs drawn from a seeded ChaCha8 stream: LibTorch's generator is process-wide, and
//! tests run in parallel threads, so `Tensor::randn` would give each run other numbers.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// A standard-normal source for test tensors.
pub struct Normal(ChaCha8Rng);

impl Normal {
    pub fn new(seed: u64) -> Normal {
        Normal(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A float32 CPU tensor of `shape` with N(0, 1) entries.
    pub fn tensor(&mut self, shape: &[i64]) -> Tensor {
        let n = shape.iter().product::<i64>() as usize;
        let v: Vec<f32> = (0..n)
            .map(|_| rand::RngExt::sample::<f64, _>(&mut self.0, rand_distr::StandardNormal) as f32)
            .collect();
        Tensor::from_slice(&v).view(shape).to_kind(Kind::Float)
    }
}
