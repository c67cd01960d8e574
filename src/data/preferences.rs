//! Preferences on the host: responses with features, labelled pairs and the split of each
//! prompt, as generators and readers produce them (plain vectors, easy to test).

use super::graph::ComponentKind;
use super::pair::Pair;
use super::split::Split;

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
    /// Text data: the text of every prompt and response, for stages that read text (an
    /// encoder).
    pub texts: Option<Texts>,
    /// A margin per pair (a preference file's `margin` column, 0 where a row has none).
    pub margins: Option<Vec<f64>>,
    /// Kind of the comparison-graph component each pair lies in, `[P]`, where the data's
    /// graphs are analysed (preference files): evaluation then reports metrics by kind.
    pub pair_kind: Option<Vec<ComponentKind>>,
}

/// The texts of a preference file's prompts and responses: response r answers prompt
/// `prompts[prompt_of[r]]` with `responses[r]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Texts {
    pub prompts: Vec<String>,
    pub responses: Vec<String>,
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
