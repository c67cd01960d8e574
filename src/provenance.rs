//! Where a result came from: code version, machine, LibTorch.

use std::path::Path;
use std::process::Command;

/// Recorded with every run.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    /// `git rev-parse HEAD` of the repository holding the spec, if any.
    pub git_commit: Option<String>,
    /// Whether that work tree had uncommitted changes.
    pub git_dirty: Option<bool>,
    pub host: Option<String>,
    pub rmlab_version: String,
    pub torch_version: Option<String>,
}

impl Provenance {
    /// Collects provenance for runs of a spec at `spec_path`.
    pub fn collect(spec_path: &Path, torch_version: Option<String>) -> Provenance {
        let dir = spec_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let git_commit = git(&["rev-parse", "HEAD"]);
        let git_dirty = git_commit
            .as_ref()
            .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
            .map(|s| !s.is_empty());
        let host = host_name();
        Provenance {
            git_commit,
            git_dirty,
            host,
            rmlab_version: format!("{}{}", env!("CARGO_PKG_VERSION"), env!("RMLAB_BUILD")),
            torch_version,
        }
    }
}

/// This machine's host name.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// Whether the rmlab process that recorded a run is still alive: `Some(false)` when it ran on
/// this host and no rmlab process has that pid any more, `None` when it cannot be told (another
/// host, or no /proc).
pub fn run_process_alive(host: Option<&str>, pid: Option<i64>) -> Option<bool> {
    let (host, pid) = (host?, pid?);
    if host_name().as_deref() != Some(host) || !Path::new("/proc/self").exists() {
        return None;
    }
    if pid == i64::from(std::process::id()) {
        return Some(true);
    }
    // A reused pid belongs to some other program: then the run's own process is gone.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    Some(String::from_utf8_lossy(&cmdline).contains("rmlab"))
}
