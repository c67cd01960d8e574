//! Splits: prompts are partitioned into train, val and test, and every response and pair
//! belongs to its prompt's split.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// A partition of the prompts. Every pair and response belongs to its prompt's split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// Assigns prompts to splits: a random `val_frac` of them to val, `test_frac` to test, the
/// rest (at least one) to train.
pub fn split_prompts(n: usize, val_frac: f64, test_frac: f64, rng: &mut ChaCha8Rng) -> Vec<Split> {
    let mut order: Vec<usize> = (0..n).collect();
    partial_shuffle(&mut order, n, rng);
    let n_val = ((val_frac * n as f64).round() as usize).min(n - 1);
    let n_test = ((test_frac * n as f64).round() as usize).min(n - 1 - n_val);
    let mut split = vec![Split::Train; n];
    for (rank, &x) in order.iter().enumerate() {
        if rank < n_val {
            split[x] = Split::Val;
        } else if rank < n_val + n_test {
            split[x] = Split::Test;
        }
    }
    split
}

/// Fisher–Yates on the first `m` positions, drawing u64 indices so that the result does not
/// depend on the platform's pointer width.
pub(super) fn partial_shuffle<T>(xs: &mut [T], m: usize, rng: &mut ChaCha8Rng) {
    let len = xs.len();
    for i in 0..m.min(len.saturating_sub(1)) {
        let j = i + rng.random_range(0..(len - i) as u64) as usize;
        xs.swap(i, j);
    }
}
