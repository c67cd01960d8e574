//! GGUF files (llama.cpp's model format): the header's metadata and tensor table, and each
//! tensor dequantized to float32 from the types small Llama checkpoints use (F32, F16, BF16,
//! Q8_0, Q4_1). Every count and length is bounded and every tensor checked to lie inside the
//! file before anything is allocated, so a damaged file is an error, never an abort.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use half::{bf16, f16};

/// "GGUF" read as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;
/// Longest string in the header (a chat template is a few KiB; a vocabulary entry, bytes).
const MAX_STRING: u64 = 1 << 24;
/// Most entries of one metadata array (a vocabulary of 49 152 tokens; merges, about as many).
const MAX_ARRAY: u64 = 1 << 24;
/// Most metadata entries and most tensors.
const MAX_ENTRIES: u64 = 1 << 16;
/// Most dimensions of a tensor (ggml's own limit).
const MAX_DIMS: u32 = 4;
/// Values of a quantized block (Q8_0, Q4_1).
const BLOCK: u64 = 32;

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Uint(u) => Some(u),
            Value::Int(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(f) => Some(f),
            Value::Uint(u) => Some(u as f64),
            Value::Int(i) => Some(i as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A tensor's storage type, by ggml's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_1,
    /// A type rmlab does not dequantize (its ggml number).
    Other(u32),
}

impl TensorType {
    fn of(code: u32) -> TensorType {
        match code {
            0 => TensorType::F32,
            1 => TensorType::F16,
            3 => TensorType::Q4_1,
            8 => TensorType::Q8_0,
            30 => TensorType::BF16,
            c => TensorType::Other(c),
        }
    }

    /// Bytes of `n` values, `None` for a type not read or a count not whole blocks.
    fn bytes(self, n: u64) -> Option<u64> {
        match self {
            TensorType::F32 => n.checked_mul(4),
            TensorType::F16 | TensorType::BF16 => n.checked_mul(2),
            TensorType::Q8_0 if n.is_multiple_of(BLOCK) => (n / BLOCK).checked_mul(34),
            TensorType::Q4_1 if n.is_multiple_of(BLOCK) => (n / BLOCK).checked_mul(20),
            _ => None,
        }
    }
}

/// One entry of the tensor table.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml's order, fastest-varying first (a weight `[out, in]` is `[in, out]`).
    pub dims: Vec<u64>,
    pub kind: TensorType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The shape in row-major order, as PyTorch and safetensors write it.
    pub fn shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }

    pub fn len(&self) -> u64 {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A GGUF file's header; tensors are read from the file on demand.
#[derive(Debug)]
pub struct Gguf {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    path: PathBuf,
    data_start: u64,
}

struct Header<R> {
    r: R,
}

impl<R: Read> Header<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(|e| format!("header ends early: {e}"))?;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.bytes::<8>().map(u64::from_le_bytes)
    }
    fn count(&mut self, what: &str, max: u64) -> Result<u64, String> {
        let n = self.u64()?;
        if n > max {
            return Err(format!("{what} is {n}, more than the {max} allowed"));
        }
        Ok(n)
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.count("a string's length", MAX_STRING)?;
        let mut b = Vec::new();
        (&mut self.r).take(n).read_to_end(&mut b).map_err(|e| format!("header ends early: {e}"))?;
        if b.len() as u64 != n {
            return Err("header ends inside a string".into());
        }
        String::from_utf8(b).map_err(|_| "a header string is not UTF-8".into())
    }
    fn value(&mut self, kind: u32, depth: u32) -> Result<Value, String> {
        Ok(match kind {
            0 => Value::Uint(self.bytes::<1>()?[0] as u64),
            1 => Value::Int(self.bytes::<1>()?[0] as i8 as i64),
            2 => Value::Uint(u16::from_le_bytes(self.bytes::<2>()?) as u64),
            3 => Value::Int(i16::from_le_bytes(self.bytes::<2>()?) as i64),
            4 => Value::Uint(self.u32()? as u64),
            5 => Value::Int(i32::from_le_bytes(self.bytes::<4>()?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.bytes::<4>()?) as f64),
            7 => match self.bytes::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("a bool is {b}")),
            },
            8 => Value::String(self.string()?),
            9 if depth == 0 => {
                let elem = self.u32()?;
                let n = self.count("an array's length", MAX_ARRAY)?;
                // Grown as read, so a false length fails at the file's end, not in the allocator.
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(self.value(elem, depth + 1)?);
                }
                Value::Array(v)
            }
            9 => return Err("an array of arrays".into()),
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.bytes::<8>()?)),
            12 => Value::Float(f64::from_le_bytes(self.bytes::<8>()?)),
            k => return Err(format!("unknown metadata type {k}")),
        })
    }
}

impl Gguf {
    /// Reads the header of the GGUF file at `path` (versions 2 and 3, little-endian) and checks
    /// that every tensor's data lies inside the file.
    pub fn open(path: &Path) -> Result<Gguf, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let file_len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut h = Header { r: BufReader::new(file) };
        let magic = h.u32().map_err(|_| "not a GGUF file (shorter than its magic)".to_string())?;
        if magic != MAGIC {
            return Err("not a GGUF file (no GGUF magic)".into());
        }
        let version = h.u32()?;
        if !(2..=3).contains(&version) {
            return Err(format!("GGUF version {version} is not read (2 and 3 are)"));
        }
        let n_tensors = h.count("the tensor count", MAX_ENTRIES)?;
        let n_kv = h.count("the metadata count", MAX_ENTRIES)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = h.string()?;
            let kind = h.u32()?;
            let value = h.value(kind, 0).map_err(|e| format!("metadata `{key}`: {e}"))?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = h.string()?;
            let n_dims = h.u32()?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(format!("tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS})"));
            }
            let dims = (0..n_dims).map(|_| h.u64()).collect::<Result<Vec<_>, _>>()?;
            let kind = TensorType::of(h.u32()?);
            let offset = h.u64()?;
            tensors.push(TensorInfo { name, dims, kind, offset });
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => v
                .as_u64()
                .filter(|a| *a > 0 && a.is_power_of_two())
                .ok_or_else(|| format!("general.alignment = {v:?} is not a power of two"))?,
        };
        let header_end = h.r.stream_position().map_err(|e| e.to_string())?;
        let data_start = header_end.div_ceil(alignment) * alignment;
        let gguf = Gguf { version, metadata, tensors, path: path.to_path_buf(), data_start };
        for t in &gguf.tensors {
            let n = t.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).filter(|n| *n > 0);
            let end = n
                .and_then(|n| t.kind.bytes(n))
                .and_then(|b| gguf.data_start.checked_add(t.offset)?.checked_add(b));
            match (n, end) {
                (None, _) => return Err(format!("tensor `{}` has dimensions {:?}", t.name, t.dims)),
                (_, Some(end)) if end > file_len => {
                    return Err(format!("tensor `{}` runs past the end of the file", t.name));
                }
                _ => {}
            }
        }
        Ok(gguf)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A tensor's values as float32, row-major in [`TensorInfo::shape`]: Q8_0 blocks as
    /// q · d, Q4_1 blocks as q · d + m (each block's 16 bytes holding values j in their low
    /// nibbles and j + 16 in their high ones), as ggml dequantizes them.
    pub fn read_f32(&self, info: &TensorInfo) -> Result<Vec<f32>, String> {
        let n = info.len();
        let bytes = info.kind.bytes(n).ok_or_else(|| {
            format!(
                "tensor `{}` is of type {:?}, which rmlab does not read (F32, F16, BF16, Q8_0, Q4_1)",
                info.name, info.kind
            )
        })?;
        let mut f = File::open(&self.path).map_err(|e| e.to_string())?;
        f.seek(SeekFrom::Start(self.data_start + info.offset)).map_err(|e| e.to_string())?;
        let mut raw = vec![0u8; bytes as usize];
        f.read_exact(&mut raw).map_err(|e| format!("tensor `{}`: {e}", info.name))?;
        let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
        Ok(match info.kind {
            TensorType::F32 => {
                raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            }
            TensorType::F16 => raw.chunks_exact(2).map(half).collect(),
            TensorType::BF16 => {
                raw.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            }
            TensorType::Q8_0 => raw
                .chunks_exact(34)
                .flat_map(|b| {
                    let d = half(&b[..2]);
                    b[2..].iter().map(move |&q| q as i8 as f32 * d)
                })
                .collect(),
            TensorType::Q4_1 => raw
                .chunks_exact(20)
                .flat_map(|b| {
                    let (d, m) = (half(&b[..2]), half(&b[2..4]));
                    let qs = &b[4..];
                    let lo = qs.iter().map(move |&q| (q & 0x0F) as f32 * d + m);
                    let hi = qs.iter().map(move |&q| (q >> 4) as f32 * d + m);
                    lo.chain(hi).collect::<Vec<f32>>()
                })
                .collect(),
            TensorType::Other(_) => unreachable!("bytes() is None for other types"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoder")
    }

    /// Metadata and every tensor equal what the `gguf` package wrote and dequantizes
    /// (tests/fixtures/gen_gguf_fixture.py), bit for bit.
    #[test]
    fn equals_the_gguf_package() {
        let g = Gguf::open(&fixture().join("tiny.gguf")).unwrap();
        let want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture().join("tiny_gguf.json")).unwrap())
                .unwrap();
        assert_eq!(g.version, 3);
        for (key, v) in want["metadata"].as_object().unwrap() {
            let got = &g.metadata[key];
            match v {
                serde_json::Value::String(s) => assert_eq!(got.as_str(), Some(s.as_str()), "{key}"),
                serde_json::Value::Bool(b) => assert_eq!(got, &Value::Bool(*b), "{key}"),
                serde_json::Value::Number(n) => assert_eq!(got.as_f64(), n.as_f64(), "{key}"),
                serde_json::Value::Array(a) => {
                    let Value::Array(items) = got else { panic!("{key} is {got:?}") };
                    assert_eq!(items.len(), a.len(), "{key}");
                    for (i, w) in items.iter().zip(a) {
                        match w {
                            serde_json::Value::String(s) => assert_eq!(i.as_str(), Some(s.as_str())),
                            w => assert_eq!(i.as_f64(), w.as_f64()),
                        }
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(g.metadata["test.big"], Value::Uint((1 << 40) + 3));
        assert_eq!(g.metadata["test.negative"], Value::Int(-7));
        let tensors = want["tensors"].as_object().unwrap();
        assert_eq!(g.tensors.len(), tensors.len());
        for (name, t) in tensors {
            let info = g.tensor(name).unwrap();
            let shape: Vec<i64> = serde_json::from_value(t["shape"].clone()).unwrap();
            assert_eq!(info.shape(), shape, "{name}");
            let values: Vec<f32> = serde_json::from_value(t["values"].clone()).unwrap();
            let got = g.read_f32(info).unwrap();
            assert_eq!(got.len(), values.len(), "{name}");
            let differ = got.iter().zip(&values).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differ, 0, "{name} ({:?}): {differ} values differ", info.kind);
        }
    }

    /// Damaged files are errors that say what is wrong: cut short anywhere, a false count,
    /// a tensor past the end, an unknown type.
    #[test]
    fn damaged_files_are_errors() {
        let good = std::fs::read(fixture().join("tiny.gguf")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |bytes: &[u8]| {
            let p = dir.path().join("x.gguf");
            std::fs::write(&p, bytes).unwrap();
            p
        };
        // Cut at every length up to the data section: an error each time, never a panic.
        let g = Gguf::open(&fixture().join("tiny.gguf")).unwrap();
        for cut in 0..g.data_start as usize {
            assert!(Gguf::open(&write(&good[..cut])).is_err(), "cut at {cut}");
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(Gguf::open(&write(&bad)).unwrap_err(), "not a GGUF file (no GGUF magic)");
        let mut bad = good.clone();
        bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Gguf::open(&write(&bad)).unwrap_err().contains("the tensor count is 18446744073709551615"));
        // The last tensor's data cut off by one byte (the file pads after it).
        let end =
            g.tensors.iter().map(|t| g.data_start + t.offset + t.kind.bytes(t.len()).unwrap()).max().unwrap();
        assert!(Gguf::open(&write(&good[..end as usize])).is_ok());
        let err = Gguf::open(&write(&good[..end as usize - 1])).unwrap_err();
        assert!(err.contains("runs past the end of the file"), "{err}");
        // An unknown tensor type reads its header but not its values.
        let mut info = g.tensors[0].clone();
        info.kind = TensorType::Other(12);
        assert!(g.read_f32(&info).unwrap_err().contains("Other(12), which rmlab does not read"));
    }
}
