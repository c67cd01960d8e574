//! The LibTorch this process loaded: version, library path, threads and devices.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::error::{Error, Result};

/// Where tensors live. `auto` picks CUDA when LibTorch sees a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
}

/// What `rmlab doctor` reports, and what runs record.
#[derive(Clone, Debug)]
pub struct TorchRuntime {
    /// Version of the loaded LibTorch (e.g. `2.13.0+cu130`), when it can be read.
    pub version: Option<String>,
    /// Directory of the loaded `libtorch_cpu.so`.
    pub lib_dir: Option<PathBuf>,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    pub intra_op_threads: i32,
}

impl TorchRuntime {
    pub fn detect() -> TorchRuntime {
        let lib_dir = loaded_lib_dir();
        TorchRuntime {
            version: lib_dir.as_ref().and_then(|d| version_near(d)),
            lib_dir,
            cuda_available: tch::Cuda::is_available(),
            cuda_devices: tch::Cuda::device_count(),
            cudnn_available: tch::Cuda::cudnn_is_available(),
            intra_op_threads: tch::get_num_threads(),
        }
    }
}

/// The directory of the `libtorch_cpu.so` mapped into this process (from /proc/self/maps).
fn loaded_lib_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| PathBuf::from(p).parent().map(PathBuf::from))
}

/// LibTorch's version: a Python wheel has `torch/version.py` beside `torch/lib`; a standalone
/// LibTorch has `build-version` beside `lib`.
fn version_near(lib_dir: &std::path::Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        return text
            .lines()
            .find_map(|l| l.strip_prefix("__version__ = "))
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
    }
    std::fs::read_to_string(root.join("build-version")).ok().map(|v| v.trim().to_string())
}

/// Sets LibTorch's intra-op threads (process-wide) and one inter-op thread.
pub fn set_threads(threads: usize) {
    tch::set_num_threads(threads as i32);
}

/// The device a config asks for: `auto` is CUDA when available. Asking for CUDA on a machine
/// without it is an error, not a silent fallback.
pub fn resolve_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(Error::system(
            "model.device = \"cuda\" but LibTorch sees no CUDA device (run `rmlab doctor`)",
        )),
    }
}

/// A device's name as stored in the runs table.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// What `rmlab doctor` prints: LibTorch's version and library path, CUDA, threads, cores, and a
/// tensor check (a CPU sum, proving LibTorch is loaded and works, not only linked). `Err` when
/// the check fails.
pub fn doctor_report() -> Result<String> {
    let sum = std::panic::catch_unwind(|| {
        tch::Tensor::from_slice(&[1.0f32, 2.0]).sum(tch::Kind::Float).double_value(&[])
    });
    let rt = TorchRuntime::detect();
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<15}{v}\n"));
    line("rmlab", env!("CARGO_PKG_VERSION").to_string());
    line("torch", rt.version.clone().unwrap_or_else(|| "unknown".into()));
    line(
        "library path",
        rt.lib_dir.as_ref().map_or("not found in /proc/self/maps".into(), |d| d.display().to_string()),
    );
    line("cuda", if rt.cuda_available { "available" } else { "not available" }.into());
    line("cuda devices", rt.cuda_devices.to_string());
    line("cudnn", if rt.cudnn_available { "available" } else { "not available" }.into());
    line("threads", format!("{} intra-op (LibTorch default; sweeps set --threads)", rt.intra_op_threads));
    line("cores", std::thread::available_parallelism().map_or(1, |n| n.get()).to_string());
    match sum {
        Ok(3.0) => {
            line("tensor check", "ok".into());
            Ok(out)
        }
        Ok(v) => Err(Error::system(format!("tensor check: 1 + 2 gave {v}"))),
        Err(_) => Err(Error::system("tensor check: LibTorch panicked on a CPU sum")),
    }
}
