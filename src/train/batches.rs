//! Which training pairs each micro-batch uses, drawn from the run's own ChaCha8 stream so that a
//! cell draws the same batches alone or stacked with others, on any device: B indices
//! uniformly with replacement, or epochs (a permutation of the pairs a pass, cut into batches of
//! B, the last one partial), or every pair in order (`batch_size = "all"`).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Tensor};

use crate::experiment::config::{BatchSize, Sampling};

/// The training-pair indices of the first `steps` micro-batches drawn with replacement,
/// row-major `[steps, B]`: what [`super::train`] draws by default, for reproducing a run
/// elsewhere (the PyTorch benchmark).
pub fn batch_indices(seed: u64, n_pairs: usize, batch: usize, steps: usize) -> Vec<i64> {
    let mut s =
        BatchStream::new(seed, n_pairs, BatchSize::Pairs(batch), Sampling::WithReplacement, Device::Cpu);
    (0..steps).flat_map(|_| Vec::<i64>::try_from(s.next()).expect("int64 indices")).collect()
}

/// ChaCha8 stream of the run's seed for batch sampling (stream 1 initialises the model:
/// `model::build_model`).
const BATCH_STREAM: u64 = 2;
/// Steps of batch indices drawn and moved to the device at a time.
const BATCH_CHUNK: usize = 256;

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Training-pair indices, one micro-batch at a time. With replacement, they are drawn on the
/// host and moved to the device `BATCH_CHUNK` steps at a time (one transfer per chunk, none per
/// step); epochs and full batches are made a batch at a time.
pub struct BatchStream {
    /// One ChaCha8 stream per cell (one for a plain run).
    rngs: Vec<ChaCha8Rng>,
    n: u64,
    batch: usize,
    mode: Mode,
    device: Device,
    /// `[CHUNK, B]` for one cell, `[CHUNK, K, B]` for several.
    chunk: Tensor,
    next_row: i64,
    /// Epochs: each cell's permutation of the pairs and how far it has been used.
    perms: Vec<Vec<i64>>,
    used: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    WithReplacement,
    Epochs,
    All,
}

impl BatchStream {
    pub fn new(
        seed: u64,
        n_pairs: usize,
        batch: BatchSize,
        sampling: Sampling,
        device: Device,
    ) -> BatchStream {
        BatchStream::many(&[seed], n_pairs, batch, sampling, device)
    }

    /// The streams of several seeds at once: `next` gives `[K, b]`, row k what a cell of
    /// `seeds[k]` alone would have drawn (every cell has `n_pairs` training pairs, so `b` is
    /// common).
    pub fn many(
        seeds: &[u64],
        n_pairs: usize,
        batch: BatchSize,
        sampling: Sampling,
        device: Device,
    ) -> BatchStream {
        let mode = match (batch, sampling) {
            (BatchSize::All, _) => Mode::All,
            (_, Sampling::Epochs) => Mode::Epochs,
            (_, Sampling::WithReplacement) => Mode::WithReplacement,
        };
        BatchStream {
            rngs: seeds.iter().map(|&s| stream(s, BATCH_STREAM)).collect(),
            n: n_pairs as u64,
            batch: batch.pairs(n_pairs),
            mode,
            device,
            chunk: Tensor::new(),
            next_row: BATCH_CHUNK as i64,
            perms: Vec::new(),
            used: n_pairs,
        }
    }

    /// Pairs of a full micro-batch (the last batch of an epoch may have fewer).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The next micro-batch's indices, `[b]` int64 on the device (`[K, b]` for several cells).
    pub fn next(&mut self) -> Tensor {
        let k = self.rngs.len() as i64;
        let shaped = |idx: Vec<i64>, b: i64, device: Device| {
            let t = Tensor::from_slice(&idx);
            if k == 1 { t.view([b]) } else { t.view([k, b]) }.to_device(device)
        };
        match self.mode {
            Mode::WithReplacement => {}
            Mode::All => {
                // The same indices every step: made once.
                if !self.chunk.defined() {
                    let n = self.n as i64;
                    self.chunk = shaped((0..k).flat_map(|_| 0..n).collect(), n, self.device);
                }
                return self.chunk.shallow_clone();
            }
            Mode::Epochs => {
                let n = self.n as usize;
                if self.used == n {
                    // A new pass: each cell shuffles all its pairs (Fisher–Yates, u64 draws).
                    self.perms = self
                        .rngs
                        .iter_mut()
                        .map(|rng| {
                            let mut p: Vec<i64> = (0..n as i64).collect();
                            for i in (1..n).rev() {
                                let j = rng.random_range(0..=i as u64) as usize;
                                p.swap(i, j);
                            }
                            p
                        })
                        .collect();
                    self.used = 0;
                }
                let b = self.batch.min(n - self.used);
                let idx: Vec<i64> =
                    self.perms.iter().flat_map(|p| p[self.used..self.used + b].iter().copied()).collect();
                self.used += b;
                return shaped(idx, b as i64, self.device);
            }
        }
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
