//! The on-disk cache of a frozen encoder's pooled embeddings, content-addressed: one
//! safetensors file per key, written atomically (a temporary file renamed into place), so that
//! concurrent writers and interrupted runs never leave a partial file under a key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

/// What a cache key is made of: everything the embeddings depend on.
#[derive(Clone, Debug)]
pub struct KeyParts<'a> {
    /// [`crate::experiment::checkpoint::sha256`] of config, tokenizer and weights.
    pub encoder_sha256: &'a str,
    /// SHA-256 of the tokenizer file alone (also inside `encoder_sha256`; kept for the record).
    pub tokenizer_sha256: &'a str,
    pub max_length: usize,
    pub pooling: &'a str,
    pub precision: &'a str,
    /// `cpu` or `cuda`: float rounding differs between them.
    pub device: &'a str,
    /// SHA-256 of the data file the texts came from.
    pub data_sha256: &'a str,
    /// SHA-256 of the (prompt, response) texts in order (the data file as read: which rows,
    /// how prompts were split off).
    pub texts_sha256: &'a str,
}

impl KeyParts<'_> {
    /// The key: SHA-256 of the parts, 32 hex digits.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            "rmlab-embeddings-v1",
            self.encoder_sha256,
            self.tokenizer_sha256,
            &self.max_length.to_string(),
            self.pooling,
            self.precision,
            self.device,
            self.data_sha256,
            self.texts_sha256,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// SHA-256 (hex) of a list of (prompt, response) texts, each string length-prefixed.
pub fn texts_sha256(items: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    for (p, r) in items {
        for s in [p, r] {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Cached embeddings of N texts.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    /// Row-major `[N, H]`.
    pub values: Vec<f32>,
    pub dim: usize,
    /// Whether each text's pair was cut to `max_length`.
    pub truncated: Vec<bool>,
}

/// The file of `key` under `dir`.
pub fn path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.safetensors"))
}

/// The embeddings cached under `key`, or `None` when absent or unreadable (then they are
/// computed again and the file replaced).
pub fn load(dir: &Path, key: &str) -> Option<Embeddings> {
    let tensors: HashMap<String, Tensor> =
        Tensor::read_safetensors(path(dir, key)).ok()?.into_iter().collect();
    let (e, t) = (tensors.get("embeddings")?, tensors.get("truncated")?);
    let (n, dim) = match e.size()[..] {
        [n, d] => (n, d as usize),
        _ => return None,
    };
    if t.size() != [n] || e.kind() != Kind::Float {
        return None;
    }
    Some(Embeddings {
        values: Vec::<f32>::try_from(e.flatten(0, -1)).ok()?,
        dim,
        truncated: Vec::<u8>::try_from(t.to_kind(Kind::Uint8)).ok()?.into_iter().map(|b| b != 0).collect(),
    })
}

/// Writes `emb` under `key` atomically: a temporary file in `dir`, then a rename.
pub fn store(dir: &Path, key: &str, emb: &Embeddings) -> crate::error::Result<PathBuf> {
    use crate::error::Error;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let n = emb.truncated.len() as i64;
    let values = Tensor::from_slice(&emb.values).view([n, emb.dim as i64]);
    let truncated = Tensor::from_slice(&emb.truncated.iter().map(|&b| b as u8).collect::<Vec<u8>>());
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let tmp = dir.join(format!(".{key}.{}.{nanos}.tmp", std::process::id()));
    let target = path(dir, key);
    let written = Tensor::write_safetensors(&[("embeddings", &values), ("truncated", &truncated)], &tmp)
        .map_err(|e| Error::io(&tmp, std::io::Error::other(e)))
        .and_then(|()| std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| target)
}

/// A lock per key within this process, so that two workers needing the same embeddings
/// compute them once (the second waits, then reads the file).
pub fn key_lock(key: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .expect("cache locks")
        .entry(key.to_string())
        .or_default()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(max_length: usize) -> KeyParts<'static> {
        KeyParts {
            encoder_sha256: "e",
            tokenizer_sha256: "t",
            max_length,
            pooling: "mean",
            precision: "fp32",
            device: "cpu",
            data_sha256: "d",
            texts_sha256: "x",
        }
    }

    #[test]
    fn round_trip_and_keys_follow_their_parts() {
        let dir = tempfile::tempdir().unwrap();
        let emb = Embeddings {
            values: vec![1.0, -2.5, 3.0, 0.25, 5.0, 6.0],
            dim: 2,
            truncated: vec![false, true, false],
        };
        let key = parts(256).key();
        assert_ne!(key, parts(128).key());
        assert_eq!(key.len(), 32);
        assert!(load(dir.path(), &key).is_none());
        store(dir.path(), &key, &emb).unwrap();
        assert_eq!(load(dir.path(), &key), Some(emb));
        let leftovers: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "only the keyed file, no temporary: {leftovers:?}");
        std::fs::write(path(dir.path(), &key), b"garbage").unwrap();
        assert!(load(dir.path(), &key).is_none(), "an unreadable file is a miss, not an error");
        assert_ne!(
            texts_sha256(&[("ab", "c")]),
            texts_sha256(&[("a", "bc")]),
            "lengths separate the strings"
        );
    }
}
