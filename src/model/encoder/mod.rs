//! A pretrained BERT-family encoder from a Hugging Face checkpoint directory: its config
//! ([`config`]), pair tokenizer ([`tokenizer`]), `BertModel` in tch ([`bert`]), pooling
//! ([`pooling`]), the frozen embedding pass ([`embed`]) and its disk cache ([`cache`]), and the
//! fine-tuned reward model ([`reward_model`]).

mod bert;
pub mod cache;
mod checkpoint;
mod checkpoint_error;
pub mod config;
pub mod embed;
mod pooling;
mod reward_model;
pub mod tokenizer;

pub use bert::Bert;
pub use checkpoint::Checkpoint;
pub use checkpoint_error::CheckpointError;
pub use config::BertConfig;
pub use pooling::pool;
pub use reward_model::EncoderRewardModel;
pub use tokenizer::{PairTokenizer, PairTokens};

use crate::experiment::Cell;
use crate::experiment::config::ModelKind;

/// Opens the checkpoint of every encoder cell, once per (checkpoint, max_length, finetune):
/// a checkpoint that is not BERT-family, a tokenizer that does not fit the embedding table or
/// a `max_length` past the position table is bad input before any cell runs. Returns the first
/// problem with its config key.
pub fn check_encoders(cells: &[Cell]) -> Result<(), CheckpointError> {
    let mut seen = std::collections::HashSet::new();
    for c in cells {
        let m = &c.config.model;
        if m.kind != ModelKind::Encoder {
            continue;
        }
        if seen.insert((m.encoder_sha256.clone(), m.max_length, m.finetune().as_string())) {
            Checkpoint::open(m)?;
        }
    }
    Ok(())
}
