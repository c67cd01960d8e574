//! Which training pairs each step uses: B indices per step drawn uniformly with replacement
//! from the run's own ChaCha8 stream, so a cell draws the same batches alone or stacked with
//! others, on any device.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

/// The training-pair indices of the first `steps` steps, row-major `[steps, B]`: what
/// [`train`] draws, for reproducing a run elsewhere (the PyTorch benchmark).
pub fn batch_indices(seed: u64, n_pairs: usize, batch: usize, steps: usize) -> Vec<i64> {
    let mut s = BatchStream::new(seed, n_pairs, batch, Device::Cpu);
    (0..steps).flat_map(|_| Vec::<i64>::try_from(s.next()).expect("int64 indices")).collect()
}

/// ChaCha8 stream of the run's seed for model initialisation.
pub(super) const INIT_STREAM: u64 = 1;
/// ChaCha8 stream of the run's seed for batch sampling.
const BATCH_STREAM: u64 = 2;
/// Steps of batch indices drawn and moved to the device at a time.
const BATCH_CHUNK: usize = 256;

pub(super) fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Training-pair indices, B per step, drawn uniformly with replacement on the host and moved
/// to the device `BATCH_CHUNK` steps at a time (one transfer per chunk, none per step).
pub struct BatchStream {
    /// One ChaCha8 stream per cell (one for a plain run).
    rngs: Vec<ChaCha8Rng>,
    n: u64,
    batch: usize,
    device: Device,
    /// `[CHUNK, B]` for one cell, `[CHUNK, K, B]` for several.
    chunk: Tensor,
    next_row: i64,
}

impl BatchStream {
    pub fn new(seed: u64, n_pairs: usize, batch: usize, device: Device) -> BatchStream {
        BatchStream::many(&[seed], n_pairs, batch, device)
    }

    /// The streams of several cells at once: `next` gives `[K, B]`, row k what cell k alone
    /// would have drawn.
    pub fn many(seeds: &[u64], n_pairs: usize, batch: usize, device: Device) -> BatchStream {
        BatchStream {
            rngs: seeds.iter().map(|&s| stream(s, BATCH_STREAM)).collect(),
            n: n_pairs as u64,
            batch,
            device,
            chunk: Tensor::new(),
            next_row: BATCH_CHUNK as i64,
        }
    }

    /// The next step's indices, `[B]` int64 on the device (`[K, B]` for several cells).
    pub fn next(&mut self) -> Tensor {
        if self.next_row == BATCH_CHUNK as i64 {
            let (n, b, k) = (self.n, self.batch, self.rngs.len());
            // Laid out [CHUNK, K, B]: cell k's draws for step c at (c, k, ·), in its stream's order.
            let mut idx = vec![0i64; BATCH_CHUNK * k * b];
            for (cell, rng) in self.rngs.iter_mut().enumerate() {
                for step in 0..BATCH_CHUNK {
                    let row = &mut idx[(step * k + cell) * b..][..b];
                    row.iter_mut().for_each(|v| *v = rng.random_range(0..n) as i64);
                }
            }
            let t = Tensor::from_slice(&idx);
            let (c, b, k) = (BATCH_CHUNK as i64, b as i64, k as i64);
            self.chunk = if k == 1 { t.view([c, b]) } else { t.view([c, k, b]) }.to_device(self.device);
            self.next_row = 0;
        }
        self.next_row += 1;
        self.chunk.get(self.next_row - 1)
    }
}
