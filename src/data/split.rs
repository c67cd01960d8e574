//! Splits: the prompts of the training file are partitioned into train, val and test; the
//! prompts of each evaluation file (`[[data.eval]]`) are a split of their own, named after it.
//! Every response and pair belongs to its prompt's split.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// A partition of the prompts. Every pair and response belongs to its prompt's split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    Train,
    Val,
    Test,
    /// The pairs of an evaluation file, by its `[[data.eval]]` name (never trained on).
    Eval(&'static str),
}

impl Split {
    /// The splits of the training file.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// The split of the evaluation file named `name`.
    ///
    /// Names are interned so that a split stays a `Copy` value every stage can pass around and
    /// key maps with: a process meets a handful of names (those of its specs' evaluation
    /// files), each kept once for the life of the process.
    pub fn eval(name: &str) -> Split {
        static NAMES: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
        let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&known) = names.get(name) {
            return Split::Eval(known);
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(leaked);
        Split::Eval(leaked)
    }

    /// The split a name stands for: train, val, test, or an evaluation file's split.
    pub fn named(name: &str) -> Split {
        match name {
            "train" => Split::Train,
            "val" => Split::Val,
            "test" => Split::Test,
            other => Split::eval(other),
        }
    }

    /// The split's name in metrics, summaries, rewards and figures.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::Eval(name) => name,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_splits_are_named_and_interned() {
        let (a, b) = (Split::eval("llmbar"), Split::eval(&String::from("llmbar")));
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "llmbar");
        let (Split::Eval(x), Split::Eval(y)) = (a, b) else { panic!("not evaluation splits") };
        assert!(std::ptr::eq(x, y), "one copy of each name");
        assert_ne!(Split::eval("pandalm"), a);
        assert!(Split::Test < a, "evaluation splits sort after the training file's");
    }
}
