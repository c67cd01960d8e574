//! Prompt–response pairs to token ids with a checkpoint's `tokenizer.json` (the `tokenizers`
//! crate, the library behind Hugging Face's fast tokenizers).
//!
//! A pair is encoded as the tokenizer's pair template makes it, `[CLS] prompt [SEP] response
//! [SEP]` for BERT, with token type 0 for the prompt part and 1 for the response part. At most
//! `max_length` tokens: when the pair is longer, the prompt loses tokens from its start first
//! (the part farthest from the response); only when the response alone does not fit is the
//! prompt empty and the response cut at its end. The truncation and padding that a
//! `tokenizer.json` may carry are switched off: this module does both.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::{Encoding, PostProcessor, Tokenizer, TruncationDirection};

use super::checkpoint_error::CheckpointError;

/// A pair every usable tokenizer encodes: plain words, digits, punctuation and a word no
/// small vocabulary holds (which needs the unknown token or subwords).
const PROBE: (&str, &str) = ("What is 2 + 2?", "Four, quizzaciously.");

/// A tokenizer for prompt–response pairs.
pub struct PairTokenizer {
    tok: Tokenizer,
    max_length: usize,
    /// Tokens the pair template adds (3 for BERT).
    special: usize,
    /// Largest token id + 1 (with added tokens).
    id_bound: usize,
}

/// The tokens of one pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairTokens {
    pub ids: Vec<i64>,
    pub types: Vec<i64>,
    /// Whether the pair lost tokens to `max_length`.
    pub truncated: bool,
}

impl PairTokenizer {
    /// Reads `tokenizer.json`; the error names the file (at `model.encoder`) or `max_length`
    /// (at `model.max_length`).
    pub fn from_file(path: &Path, max_length: usize) -> Result<PairTokenizer, CheckpointError> {
        let bad = |e: String| CheckpointError::at("model.encoder", format!("{}: {e}", path.display()));
        let mut tok = Tokenizer::from_file(path).map_err(|e| bad(format!("not a tokenizer: {e}")))?;
        tok.with_truncation(None).map_err(|e| bad(e.to_string()))?;
        tok.with_padding(None);
        let special = tok.get_post_processor().map_or(0, |p| p.added_tokens(true));
        // Added tokens alone ([CLS], [SEP], …) cannot encode any text: every word would fail
        // mid-run on the model's missing vocabulary (or its missing unknown token).
        if tok.get_vocab(false).is_empty() {
            return Err(bad("the model's vocabulary (`model.vocab`) is empty".into()));
        }
        let id_bound = tok.get_vocab(true).values().max().map_or(0, |&m| m as usize + 1);
        if max_length <= special {
            return Err(CheckpointError::at(
                "model.max_length",
                format!("max_length = {max_length} leaves no room beside the {special} special tokens"),
            ));
        }
        let t = PairTokenizer { tok, max_length, special, id_bound };
        // A vocabulary without the tokenizer's unknown token fails on the first word it does
        // not know, which would be mid-run: a pair of ordinary words must encode here.
        let probe =
            t.encode(PROBE.0, PROBE.1).map_err(|e| bad(format!("cannot encode a plain pair: {e}")))?;
        if let Some(&id) = probe.ids.iter().find(|&&i| i as usize >= t.id_bound) {
            return Err(bad(format!(
                "the pair template adds token id {id}, outside the vocabulary of {} ids",
                t.id_bound
            )));
        }
        Ok(t)
    }

    /// Largest token id + 1: the embedding table must have at least this many rows.
    pub fn id_bound(&self) -> usize {
        self.id_bound
    }

    /// Ids of a text without special tokens.
    fn plain(&self, text: &str) -> Result<Encoding, String> {
        self.tok.encode(text, false).map_err(|e| format!("cannot tokenize {:?}: {e}", preview(text)))
    }

    /// Encodes one pair (see the module's note on truncation).
    pub fn encode(&self, prompt: &str, response: &str) -> Result<PairTokens, String> {
        self.join(self.plain(prompt)?, self.plain(response)?)
    }

    /// Encodes pairs; a prompt shared by several pairs is tokenized once.
    pub fn encode_all(&self, items: &[(&str, &str)]) -> Result<Vec<PairTokens>, String> {
        let mut prompts: HashMap<&str, Encoding> = HashMap::new();
        let mut out = Vec::with_capacity(items.len());
        for &(p, r) in items {
            let enc_p = match prompts.get(p) {
                Some(e) => e.clone(),
                None => {
                    let e = self.plain(p)?;
                    prompts.insert(p, e.clone());
                    e
                }
            };
            out.push(self.join(enc_p, self.plain(r)?)?);
        }
        Ok(out)
    }

    fn join(&self, mut p: Encoding, mut r: Encoding) -> Result<PairTokens, String> {
        let budget = self.max_length - self.special;
        let truncated = p.len() + r.len() > budget;
        if truncated {
            let keep_r = r.len().min(budget);
            let keep_p = budget - keep_r;
            p.truncate(keep_p, 0, TruncationDirection::Left);
            r.truncate(keep_r, 0, TruncationDirection::Right);
        }
        let pair = self.tok.post_process(p, Some(r), true).map_err(|e| e.to_string())?;
        Ok(PairTokens {
            ids: pair.get_ids().iter().map(|&i| i as i64).collect(),
            types: pair.get_type_ids().iter().map(|&t| t as i64).collect(),
            truncated,
        })
    }
}

fn preview(text: &str) -> String {
    text.chars().take(40).collect()
}
