//! An encoder checkpoint directory opened and checked: its config, its tokenizer, and the
//! shape of its embedding table (read from the safetensors header, without loading weights).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::checkpoint_error::CheckpointError;
use super::config::BertConfig;
use super::tokenizer::PairTokenizer;
use crate::experiment::config::{Finetune, ModelConfig};

/// A checked checkpoint: config and pair tokenizer; weights are loaded by [`super::Bert`].
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: BertConfig,
    pub tokenizer: PairTokenizer,
}

impl Checkpoint {
    /// Opens the checkpoint of a resolved encoder config and checks it against the config:
    /// BERT-family, a tokenizer whose ids fit the embedding table, `max_length` within the
    /// position table, `last:K` within the layers.
    pub fn open(m: &ModelConfig) -> Result<Checkpoint, CheckpointError> {
        let dir = m
            .resolved_encoder
            .clone()
            .ok_or(CheckpointError::at("model.encoder", "no checkpoint resolved"))?;
        let max_length = m.max_length.unwrap_or(crate::experiment::config::DEFAULT_MAX_LENGTH);
        let config = BertConfig::read(&dir.join("config.json"))?;
        if max_length > config.max_position_embeddings {
            return Err(CheckpointError::at(
                "model.max_length",
                format!(
                    "{max_length} is above the checkpoint's position limit, max_position_embeddings = {} ({})",
                    config.max_position_embeddings,
                    dir.join("config.json").display()
                ),
            ));
        }
        if let Finetune::Last(k) = m.finetune()
            && k > config.num_hidden_layers
        {
            return Err(CheckpointError::at(
                "model.finetune",
                format!("last:{k} but the checkpoint has {} layers", config.num_hidden_layers),
            ));
        }
        let weights = dir.join("model.safetensors");
        let (rows, width) = embedding_shape(&weights)?;
        if (rows, width) != (config.vocab_size, config.hidden_size) {
            return Err(CheckpointError::at(
                "model.encoder",
                format!(
                    "{}: the embedding table is [{rows}, {width}] but config.json says vocab_size = {}, hidden_size = {}",
                    weights.display(),
                    config.vocab_size,
                    config.hidden_size
                ),
            ));
        }
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = PairTokenizer::from_file(&tok_path, max_length)?;
        if tokenizer.id_bound() > rows {
            return Err(CheckpointError::at(
                "model.encoder",
                format!(
                    "{}: the tokenizer's vocabulary does not match the embedding table: its largest id is {}, the table of {} has {rows} rows",
                    tok_path.display(),
                    tokenizer.id_bound() - 1,
                    weights.display()
                ),
            ));
        }
        Ok(Checkpoint { dir, config, tokenizer })
    }
}

/// `[rows, width]` of the word embedding table, from the safetensors header alone.
fn embedding_shape(path: &Path) -> Result<(usize, usize), CheckpointError> {
    let name = path.display();
    let bad = |message: String| CheckpointError::at("model.encoder", message);
    let mut f = std::fs::File::open(path).map_err(|e| bad(format!("{name}: {e}")))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| bad(format!("{name}: not a safetensors file: {e}")))?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        return Err(bad(format!("{name}: not a safetensors file (header of {n} bytes)")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| bad(format!("{name}: not a safetensors file: {e}")))?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("{name}: not a safetensors header: {e}")))?;
    let key = ["embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight"]
        .into_iter()
        .find(|k| header.get(*k).is_some())
        .ok_or_else(|| {
            bad(format!("{name}: no tensor `embeddings.word_embeddings.weight`: not a BertModel checkpoint"))
        })?;
    let shape: Vec<usize> = header[key]["shape"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64().map(|x| x as usize)).collect())
        .unwrap_or_default();
    match shape[..] {
        [rows, width] => Ok((rows, width)),
        _ => Err(bad(format!("{name}: `{key}` has shape {shape:?}, expected [vocab, hidden]"))),
    }
}
