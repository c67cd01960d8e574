//! The weights of a Hugging Face checkpoint directory by tensor name: `model.safetensors`, or
//! the shards `model.safetensors.index.json` lists, read as float32.

use std::collections::HashMap;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Every tensor of the checkpoint in `dir`, by name, as float32 (F32, F16 and BF16 are read;
/// any other kind is refused with the tensor's name and file, since an integer weight would
/// "load" as nonsense).
pub fn read(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<std::path::PathBuf> = if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::unreadable(&index, e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::unreadable(&index, format!("not JSON: {e}")))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::unreadable(&index, "no `weight_map` object"))?;
        let mut shards: Vec<String> = map.values().filter_map(|f| f.as_str().map(str::to_string)).collect();
        shards.sort();
        shards.dedup();
        if let Some(bad) = shards.iter().find(|s| s.contains('/') || s.contains('\\') || s.starts_with('.')) {
            return Err(Error::unreadable(
                &index,
                format!("shard `{bad}` is not a file name in the checkpoint"),
            ));
        }
        shards.iter().map(|s| dir.join(s)).collect()
    } else {
        vec![dir.join("model.safetensors")]
    };
    let mut out = HashMap::new();
    for file in files {
        let tensors = Tensor::read_safetensors(&file)
            .map_err(|e| Error::unreadable(&file, format!("not a readable safetensors file: {e}")))?;
        for (name, t) in tensors {
            let t = match t.kind() {
                Kind::Float => t,
                Kind::Half | Kind::BFloat16 => t.to_kind(Kind::Float),
                other => {
                    return Err(Error::unreadable(
                        &file,
                        format!("tensor `{name}` is {other:?}; weights must be F32, F16 or BF16"),
                    ));
                }
            };
            out.insert(name, t);
        }
    }
    Ok(out)
}
