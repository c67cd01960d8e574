//! An encoder checkpoint directory opened and checked: its config, its tokenizer, and the
//! name, dtype and shape of every weight its config builds (read from the safetensors header,
//! without loading weights).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::bert::{FLOAT_DTYPES, parameter_shapes, stored_names};
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
    /// BERT-family and within the parameter bound, every weight floating point and of the
    /// shape `config.json` implies, a tokenizer with a vocabulary whose ids fit the embedding
    /// table, `max_length` within the position table, `last:K` within the layers.
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
        let rows = check_weights(&weights, &config)?;
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

/// One tensor of a safetensors header.
#[derive(Debug, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<u64>,
}

/// The tensors a safetensors header lists, by name, read without loading any weights.
fn read_header(path: &Path) -> Result<HashMap<String, Entry>, CheckpointError> {
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
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("{name}: not a safetensors header: {e}")))?;
    header.remove("__metadata__");
    header
        .into_iter()
        .map(|(key, v)| {
            serde_json::from_value::<Entry>(v)
                .map(|e| (key.clone(), e))
                .map_err(|e| bad(format!("{name}: tensor `{key}` in the header: {e}")))
        })
        .collect()
}

/// Checks the weights against the config from the safetensors header alone: every parameter
/// the config builds is there ([`stored_names`]), floating point ([`FLOAT_DTYPES`]) and of the
/// shape the config implies. Returns the rows of the word embedding table.
fn check_weights(path: &Path, config: &BertConfig) -> Result<usize, CheckpointError> {
    let name = path.display();
    let bad = |message: String| CheckpointError::at("model.encoder", format!("{name}: {message}"));
    let header = read_header(path)?;
    for (param, shape) in parameter_shapes(config) {
        let Some((stored, entry)) =
            stored_names(&param).into_iter().find_map(|n| header.get(&n).map(|e| (n, e)))
        else {
            return Err(bad(if param == "embeddings.word_embeddings.weight" {
                format!("no tensor `{param}`: not a BertModel checkpoint")
            } else {
                format!("no tensor `{param}` (nor `bert.{param}`), which config.json implies")
            }));
        };
        if !FLOAT_DTYPES.contains(&entry.dtype.as_str()) {
            return Err(bad(format!(
                "`{stored}` is stored as {}; encoder weights must be floating point ({})",
                entry.dtype,
                FLOAT_DTYPES.join(", ")
            )));
        }
        let found: Vec<i64> = entry.shape.iter().map(|&d| d as i64).collect();
        if found != shape {
            return Err(bad(format!(
                "`{stored}` has shape {found:?} but config.json implies {shape:?} (vocab_size = {}, hidden_size = {}, \
                 intermediate_size = {}, max_position_embeddings = {}, type_vocab_size = {})",
                config.vocab_size,
                config.hidden_size,
                config.intermediate_size,
                config.max_position_embeddings,
                config.type_vocab_size
            )));
        }
    }
    Ok(config.vocab_size)
}
