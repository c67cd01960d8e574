//! A run's preferences as tensors on one device, built once per run, with the host copies that
//! evaluation reads.

use tch::{Device, Tensor};

use super::graph::ComponentKind;
use super::preferences::Preferences;
use super::split::Split;

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
    /// Margin of each pair, `[P]` float32, when the data have margins.
    pub margins: Option<Tensor>,
    /// The same margins on the host (the float32 values, widened).
    pub margins_host: Option<Vec<f64>>,
    /// Kind of each pair's comparison-graph component, when the data have them.
    pub pair_kind_host: Option<Vec<ComponentKind>>,
}

/// Preferences as tensors on one device; built once per run.
#[derive(Debug)]
pub struct Dataset {
    /// `[R, D]` float32.
    pub features: Tensor,
    pub train: SplitTensors,
    pub val: SplitTensors,
    pub test: SplitTensors,
    /// One split per evaluation file, in the spec's order.
    pub evals: Vec<(Split, SplitTensors)>,
    /// Input width: feature dimension, or bag width for text.
    pub dim: usize,
    /// Hash buckets when the input is n-gram bags (`features` then holds int64 ids).
    pub buckets: Option<usize>,
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
        let features = match &p.bags {
            Some(b) => Tensor::from_slice(&b.ids).view([r, b.width as i64]).to_device(device),
            None => Tensor::from_slice(&p.features).view([r, p.dim as i64]).to_device(device),
        };
        let split = |s: Split| {
            let (mut chosen, mut rejected, mut margins, mut kinds) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (i, pair) in p.pairs.iter().enumerate().filter(|(_, q)| p.split_of_response(q.chosen) == s) {
                chosen.push(pair.chosen as i64);
                rejected.push(pair.rejected as i64);
                if let Some(m) = &p.margins {
                    margins.push(m[i] as f32);
                }
                if let Some(k) = &p.pair_kind {
                    kinds.push(k[i]);
                }
            }
            let responses: Vec<i64> =
                (0..p.n_responses()).filter(|&i| p.split_of_response(i) == s).map(|i| i as i64).collect();
            SplitTensors {
                n_pairs: chosen.len(),
                responses_host: responses.iter().map(|&i| i as usize).collect(),
                pairs_host: chosen.iter().zip(&rejected).map(|(&a, &b)| (a as usize, b as usize)).collect(),
                margins: p.margins.as_ref().map(|_| Tensor::from_slice(&margins).to_device(device)),
                margins_host: p.margins.as_ref().map(|_| margins.iter().map(|&m| m as f64).collect()),
                pair_kind_host: p.pair_kind.as_ref().map(|_| kinds),
                chosen: Tensor::from_slice(&chosen).to_device(device),
                rejected: Tensor::from_slice(&rejected).to_device(device),
                responses: Tensor::from_slice(&responses).to_device(device),
            }
        };
        let mut evals: Vec<Split> =
            p.split_of_prompt.iter().copied().filter(|s| matches!(s, Split::Eval(_))).collect();
        evals.dedup();
        Dataset {
            evals: evals.into_iter().map(|s| (s, split(s))).collect(),
            train: split(Split::Train),
            val: split(Split::Val),
            test: split(Split::Test),
            features,
            dim: p.dim,
            buckets: p.bags.as_ref().map(|b| b.buckets),
            prompt_of: p.prompt_of.clone(),
            split_of: (0..p.n_responses()).map(|r| p.split_of_response(r)).collect(),
            true_reward_host: p.true_reward.clone(),
            beta: p.beta,
            flip: p.flip,
        }
    }

    /// The tensors of one of [`Dataset::splits`].
    pub fn split(&self, s: Split) -> &SplitTensors {
        match s {
            Split::Train => &self.train,
            Split::Val => &self.val,
            Split::Test => &self.test,
            Split::Eval(_) => {
                &self.evals.iter().find(|(e, _)| *e == s).expect("an evaluation split of this data set").1
            }
        }
    }

    /// Every split of the data set: train, val, test, then one per evaluation file.
    pub fn splits(&self) -> impl Iterator<Item = Split> + '_ {
        Split::ALL.into_iter().chain(self.evals.iter().map(|(s, _)| *s))
    }
}
