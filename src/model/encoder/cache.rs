//! The on-disk cache of a frozen encoder's pooled embeddings, content-addressed: one
//! safetensors file per key, written atomically (a temporary file renamed into place), so that
//! concurrent writers and interrupted runs never leave a partial file under a key. Each file
//! holds the SHA-256 of its content, checked on every read: a file changed after it was written
//! (edited values, a damaged disk) is named on stderr and computed again, never used.

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

/// SHA-256 of embeddings' content: width, count, values (little-endian float32) and
/// truncation flags, so that any changed value, flag or shape changes it.
fn content_sha256(emb: &Embeddings) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"rmlab-embeddings-content-v1");
    h.update((emb.dim as u64).to_le_bytes());
    h.update((emb.truncated.len() as u64).to_le_bytes());
    for v in &emb.values {
        h.update(v.to_le_bytes());
    }
    h.update(emb.truncated.iter().map(|&t| u8::from(t)).collect::<Vec<u8>>());
    h.finalize().into()
}

/// What the cache holds under a key.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    /// The embeddings, their checksum verified.
    Hit(Embeddings),
    /// No file under the key.
    Absent,
    /// A file that cannot be used, and why: unreadable, not shaped as embeddings, without a
    /// checksum (written before files had one), or whose content does not match its checksum.
    Invalid(String),
}

/// The embeddings cached under `key`, their checksum verified.
pub fn lookup(dir: &Path, key: &str) -> Lookup {
    let file = path(dir, key);
    if !file.exists() {
        return Lookup::Absent;
    }
    let tensors: HashMap<String, Tensor> = match Tensor::read_safetensors(&file) {
        Ok(t) => t.into_iter().collect(),
        Err(e) => return Lookup::Invalid(format!("not a readable safetensors file ({e})")),
    };
    let (Some(e), Some(t)) = (tensors.get("embeddings"), tensors.get("truncated")) else {
        return Lookup::Invalid("lacks the `embeddings` or `truncated` tensor".into());
    };
    let (n, dim) = match e.size()[..] {
        [n, d] => (n, d as usize),
        _ => return Lookup::Invalid(format!("embeddings of shape {:?}, not [N, H]", e.size())),
    };
    if t.size() != [n] || e.kind() != Kind::Float {
        return Lookup::Invalid("embeddings and truncation flags do not fit together".into());
    }
    let Some(stored) = tensors.get("sha256") else {
        return Lookup::Invalid("has no checksum (written by an older rmlab)".into());
    };
    let read = || -> Option<(Embeddings, Vec<u8>)> {
        let emb = Embeddings {
            values: Vec::<f32>::try_from(e.flatten(0, -1)).ok()?,
            dim,
            truncated: Vec::<u8>::try_from(t.to_kind(Kind::Uint8))
                .ok()?
                .into_iter()
                .map(|b| b != 0)
                .collect(),
        };
        Some((emb, Vec::<u8>::try_from(stored.to_kind(Kind::Uint8)).ok()?))
    };
    match read() {
        None => Lookup::Invalid("its tensors cannot be read".into()),
        Some((emb, sha)) if sha[..] == content_sha256(&emb)[..] => Lookup::Hit(emb),
        Some(_) => {
            Lookup::Invalid("its content does not match its SHA-256 (changed after it was written)".into())
        }
    }
}

/// The embeddings cached under `key`, or `None` when absent or unusable; an unusable file is
/// named on stderr (one line, with why), then computed again and replaced by the caller.
pub fn load(dir: &Path, key: &str) -> Option<Embeddings> {
    match lookup(dir, key) {
        Lookup::Hit(emb) => Some(emb),
        Lookup::Absent => None,
        Lookup::Invalid(why) => {
            use std::io::Write as _;
            // Dropped if stderr is closed: a warning must never stop the run it warns about.
            let _ = writeln!(
                std::io::stderr(),
                "warning: embedding cache {}: {why}; not used, computing the embeddings again",
                path(dir, key).display()
            );
            None
        }
    }
}

/// Writes `emb` under `key` atomically: a temporary file in `dir`, then a rename.
pub fn store(dir: &Path, key: &str, emb: &Embeddings) -> crate::error::Result<PathBuf> {
    use crate::error::Error;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let n = emb.truncated.len() as i64;
    let values = Tensor::from_slice(&emb.values).view([n, emb.dim as i64]);
    let truncated = Tensor::from_slice(&emb.truncated.iter().map(|&b| b as u8).collect::<Vec<u8>>());
    let sha = Tensor::from_slice(&content_sha256(emb));
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let tmp = dir.join(format!(".{key}.{}.{nanos}.tmp", std::process::id()));
    let target = path(dir, key);
    let written = Tensor::write_safetensors(
        &[("embeddings", &values), ("truncated", &truncated), ("sha256", &sha)],
        &tmp,
    )
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
        assert!(matches!(lookup(dir.path(), &key), Lookup::Invalid(_)));
        assert_ne!(
            texts_sha256(&[("ab", "c")]),
            texts_sha256(&[("a", "bc")]),
            "lengths separate the strings"
        );
    }

    /// Values changed in place, shape kept (what a damaged or edited file looks like): the
    /// checksum no longer matches and the file is not used; a file without a checksum neither.
    #[test]
    fn a_changed_file_is_detected_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let emb = Embeddings { values: vec![0.5, -1.0, 2.0, 0.0], dim: 2, truncated: vec![false, true] };
        let key = parts(64).key();
        store(dir.path(), &key, &emb).unwrap();
        assert_eq!(lookup(dir.path(), &key), Lookup::Hit(emb.clone()));
        let file = path(dir.path(), &key);
        let mut tensors: HashMap<String, Tensor> =
            Tensor::read_safetensors(&file).unwrap().into_iter().collect();
        let tampered = tensors["embeddings"].full_like(1000.0);
        tensors.insert("embeddings".into(), tampered);
        let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        Tensor::write_safetensors(&named, &file).unwrap();
        match lookup(dir.path(), &key) {
            Lookup::Invalid(why) => assert!(why.contains("does not match its SHA-256"), "{why}"),
            other => panic!("a tampered file was not detected: {other:?}"),
        }
        assert_eq!(load(dir.path(), &key), None);
        // The same tensors without their checksum: an older rmlab's file, not trusted either.
        Tensor::write_safetensors(
            &[("embeddings", &tensors["embeddings"]), ("truncated", &tensors["truncated"])],
            &file,
        )
        .unwrap();
        assert!(matches!(lookup(dir.path(), &key), Lookup::Invalid(w) if w.contains("no checksum")));
        // Flipping one truncation flag is a change too.
        store(dir.path(), &key, &emb).unwrap();
        let mut flags: HashMap<String, Tensor> =
            Tensor::read_safetensors(&file).unwrap().into_iter().collect();
        let flipped = Tensor::from_slice(&[1u8, 1]);
        flags.insert("truncated".into(), flipped);
        let named: Vec<(&str, &Tensor)> = flags.iter().map(|(k, v)| (k.as_str(), v)).collect();
        Tensor::write_safetensors(&named, &file).unwrap();
        assert!(matches!(lookup(dir.path(), &key), Lookup::Invalid(_)));
    }
}
