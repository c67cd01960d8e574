//! Preference data: responses with features, and labelled pairs split by prompt.
//!
//! Generators and readers produce [`Preferences`] (plain host vectors, easy to test); training
//! moves them to a device once as a [`Dataset`] of tensors.

pub mod preference_file;
pub mod synthetic;
pub mod text_features;

use tch::{Device, Tensor};

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
    /// Text data: row-major `[R, width]` n-gram ids padded with `buckets`, replacing `features`.
    pub bags: Option<Bags>,
    /// A margin per pair (a preference file's `margin` column, 0 where a row has none).
    pub margins: Option<Vec<f64>>,
}

/// Hashed n-gram bags of the responses.
#[derive(Clone, Debug, PartialEq)]
pub struct Bags {
    pub width: usize,
    pub ids: Vec<i64>,
    /// Number of hash buckets; also the padding id.
    pub buckets: usize,
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
    /// Margin of each pair, `[P]` float32, when the data have margins.
    pub margins: Option<Tensor>,
    /// The same margins on the host (the float32 values, widened).
    pub margins_host: Option<Vec<f64>>,
}

/// Preferences as tensors on one device; built once per run.
#[derive(Debug)]
pub struct Dataset {
    /// `[R, D]` float32.
    pub features: Tensor,
    pub train: SplitTensors,
    pub val: SplitTensors,
    pub test: SplitTensors,
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
            let (mut chosen, mut rejected, mut margins) = (Vec::new(), Vec::new(), Vec::new());
            for (i, pair) in p.pairs.iter().enumerate().filter(|(_, q)| p.split_of_response(q.chosen) == s) {
                chosen.push(pair.chosen as i64);
                rejected.push(pair.rejected as i64);
                if let Some(m) = &p.margins {
                    margins.push(m[i] as f32);
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
            dim: p.dim,
            buckets: p.bags.as_ref().map(|b| b.buckets),
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

/// Loads the data of a run: generated (synthetic) or read from a preference file. The report
/// says how many rows a file had and which were skipped.
pub fn load(
    cfg: &crate::config::DataConfig,
    seed: u64,
) -> crate::error::Result<(Preferences, Option<preference_file::ReadReport>)> {
    use crate::config::{DataKind, TextFeatures};
    match cfg.kind {
        DataKind::Synthetic => Ok((synthetic::generate(cfg, seed), None)),
        DataKind::PreferenceFile => {
            let path = cfg
                .resolved_path
                .clone()
                .or_else(|| cfg.path.as_ref().map(std::path::PathBuf::from))
                .ok_or_else(|| crate::error::Error::Input("data.path is not set".into()))?;
            let (examples, report) = preference_file::read(&path, cfg.skip_bad_rows)?;
            let mut prompt_ids: std::collections::HashMap<&str, usize> = Default::default();
            let mut prompt_of = Vec::with_capacity(2 * examples.len());
            let mut pairs = Vec::with_capacity(examples.len());
            for (i, e) in examples.iter().enumerate() {
                let next = prompt_ids.len();
                let x = *prompt_ids.entry(e.prompt.as_str()).or_insert(next);
                prompt_of.extend([x, x]);
                pairs.push(Pair { chosen: 2 * i, rejected: 2 * i + 1 });
            }
            let (features, dim, bags) = match cfg.text_features {
                TextFeatures::Ngrams => {
                    let items: Vec<(&str, &str)> = examples
                        .iter()
                        .flat_map(|e| {
                            [(e.prompt.as_str(), e.chosen.as_str()), (e.prompt.as_str(), e.rejected.as_str())]
                        })
                        .collect();
                    let (width, ids) = text_features::bags(&items, cfg.ngram, cfg.buckets, cfg.max_tokens);
                    (Vec::new(), width, Some(Bags { width, ids, buckets: cfg.buckets }))
                }
                TextFeatures::Embedding => {
                    let mut values = Vec::new();
                    let mut dim = None;
                    for (i, e) in examples.iter().enumerate() {
                        let Some((a, b)) = &e.embedding else {
                            return Err(crate::error::Error::Input(format!(
                                "{}: pair {} has no embedding_chosen/embedding_rejected, but data.text_features = \"embedding\"",
                                path.display(),
                                i + 1
                            )));
                        };
                        if *dim.get_or_insert(a.len()) != a.len() {
                            return Err(crate::error::Error::Input(format!(
                                "{}: pair {} has embeddings of length {}, earlier ones {}",
                                path.display(),
                                i + 1,
                                a.len(),
                                dim.unwrap_or(0)
                            )));
                        }
                        values.extend(a);
                        values.extend(b);
                    }
                    (values, dim.unwrap_or(0), None)
                }
            };
            let n_prompts = prompt_ids.len();
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
            let split_of_prompt = synthetic::split_prompts(n_prompts, cfg.val_frac, cfg.test_frac, &mut rng);
            Ok((
                Preferences {
                    dim,
                    features,
                    prompt_of,
                    true_reward: None,
                    split_of_prompt,
                    beta: None,
                    flip: 0.0,
                    margins: examples
                        .iter()
                        .any(|e| e.margin.is_some())
                        .then(|| examples.iter().map(|e| e.margin.unwrap_or(0.0)).collect()),
                    pairs,
                    bags,
                },
                Some(report),
            ))
        }
    }
}
