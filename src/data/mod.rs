//! Preference data: responses with features, and labelled pairs split by prompt.
//!
//! Generators and readers produce [`Preferences`] (plain host vectors, easy to test); training
//! moves them to a device once as a [`Dataset`] of tensors.

pub mod synthetic;

use tch::{Device, Kind, Tensor};

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

/// One comparison: response `chosen` was preferred over `rejected` (indices into responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    pub chosen: usize,
    pub rejected: usize,
}

/// Responses and comparisons on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Preferences {
    /// Feature dimension D.
    pub dim: usize,
    /// Row-major `[R, D]` features φ(x, y) of the R responses.
    pub features: Vec<f32>,
    /// Prompt index of each response, `[R]`.
    pub prompt_of: Vec<usize>,
    /// True reward r*(x, y) of each response when known (synthetic data), `[R]`.
    pub true_reward: Option<Vec<f64>>,
    /// Split of each prompt.
    pub split_of_prompt: Vec<Split>,
    /// Bradley–Terry β the labels were drawn with, when known (synthetic data).
    pub beta: Option<f64>,
    /// Probability that a drawn label was flipped, when known.
    pub flip: f64,
    /// All labelled pairs, in generation order.
    pub pairs: Vec<Pair>,
}

impl Preferences {
    pub fn n_responses(&self) -> usize {
        self.prompt_of.len()
    }

    /// Split of a response (that of its prompt).
    pub fn split_of_response(&self, r: usize) -> Split {
        self.split_of_prompt[self.prompt_of[r]]
    }

    /// Number of pairs in a split.
    pub fn n_pairs(&self, split: Split) -> usize {
        self.pairs.iter().filter(|p| self.split_of_response(p.chosen) == split).count()
    }
}

/// One split on the device.
#[derive(Debug)]
pub struct SplitTensors {
    /// Response index of each pair's preferred response, `[P]` int64.
    pub chosen: Tensor,
    /// Response index of each pair's other response, `[P]` int64.
    pub rejected: Tensor,
    /// Indices of the split's responses, `[R_s]` int64.
    pub responses: Tensor,
    pub n_pairs: usize,
    /// The split's responses, on the host.
    pub responses_host: Vec<usize>,
    /// The split's (chosen, rejected) pairs, on the host.
    pub pairs_host: Vec<(usize, usize)>,
}

/// Preferences as tensors on one device; built once per run.
#[derive(Debug)]
pub struct Dataset {
    /// `[R, D]` float32.
    pub features: Tensor,
    /// `[R]` float32, when the truth is known.
    pub true_reward: Option<Tensor>,
    pub train: SplitTensors,
    pub val: SplitTensors,
    pub test: SplitTensors,
    pub dim: usize,
    /// Prompt of each response, on the host.
    pub prompt_of: Vec<usize>,
    /// Split of each response, on the host.
    pub split_of: Vec<Split>,
    /// True reward of each response, on the host, when known.
    pub true_reward_host: Option<Vec<f64>>,
    /// Bradley–Terry β of the labels, when known.
    pub beta: Option<f64>,
    /// Label flip probability, when known (0 otherwise).
    pub flip: f64,
}

impl Dataset {
    pub fn new(p: &Preferences, device: Device) -> Dataset {
        let r = p.n_responses() as i64;
        let features = Tensor::from_slice(&p.features).view([r, p.dim as i64]).to_device(device);
        let true_reward =
            p.true_reward.as_ref().map(|t| Tensor::from_slice(t).to_kind(Kind::Float).to_device(device));
        let split = |s: Split| {
            let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
            for pair in p.pairs.iter().filter(|q| p.split_of_response(q.chosen) == s) {
                chosen.push(pair.chosen as i64);
                rejected.push(pair.rejected as i64);
            }
            let responses: Vec<i64> =
                (0..p.n_responses()).filter(|&i| p.split_of_response(i) == s).map(|i| i as i64).collect();
            SplitTensors {
                n_pairs: chosen.len(),
                responses_host: responses.iter().map(|&i| i as usize).collect(),
                pairs_host: chosen.iter().zip(&rejected).map(|(&a, &b)| (a as usize, b as usize)).collect(),
                chosen: Tensor::from_slice(&chosen).to_device(device),
                rejected: Tensor::from_slice(&rejected).to_device(device),
                responses: Tensor::from_slice(&responses).to_device(device),
            }
        };
        Dataset {
            train: split(Split::Train),
            val: split(Split::Val),
            test: split(Split::Test),
            features,
            true_reward,
            dim: p.dim,
            prompt_of: p.prompt_of.clone(),
            split_of: (0..p.n_responses()).map(|r| p.split_of_response(r)).collect(),
            true_reward_host: p.true_reward.clone(),
            beta: p.beta,
            flip: p.flip,
        }
    }

    pub fn split(&self, s: Split) -> &SplitTensors {
        match s {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
        }
    }
}
