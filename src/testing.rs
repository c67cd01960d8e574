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

/// Pearson's correlation written as a plain loop: the reference for the host version.
pub fn pearson_slow(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let mut sxy = 0.0;
    let mut sxx = 0.0;
    let mut syy = 0.0;
    for i in 0..x.len() {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx).powi(2);
        syy += (y[i] - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}
