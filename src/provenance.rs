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

/// A process's identity on this machine: `<boot id>:<start time>` (clock ticks since boot,
/// from /proc), which a reused pid never repeats. `None` without /proc.
pub fn process_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so fields count from the
    // last ')'; the start time is field 22 of the line, the 20th after it.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{}:{start}", boot.trim()))
}

/// Whether the process that recorded a run is still alive: `Some(false)` when it ran on this
/// host and no process with its pid and start time exists any more, `None` when it cannot be
/// told (another host, or no /proc). `identity` is [`process_identity`] as recorded with the
/// run; runs recorded without one are matched by pid and an rmlab command line.
pub fn run_process_alive(host: Option<&str>, pid: Option<i64>, identity: Option<&str>) -> Option<bool> {
    let (host, pid) = (host?, pid?);
    if host_name().as_deref() != Some(host) || !Path::new("/proc/self").exists() {
        return None;
    }
    if pid == i64::from(std::process::id()) {
        return Some(true);
    }
    let pid = u32::try_from(pid).ok()?;
    match identity {
        Some(id) => Some(process_identity(pid).as_deref() == Some(id)),
        None => {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
            Some(String::from_utf8_lossy(argv0).ends_with("rmlab"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_tells_a_live_process_from_a_reused_pid() {
        let me = std::process::id();
        let id = process_identity(me).expect("/proc on Linux");
        assert_eq!(process_identity(me).as_deref(), Some(id.as_str()), "stable");
        let host = host_name();
        let child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let pid = child.id();
        let child_id = process_identity(pid).unwrap();
        assert_ne!(child_id, id);
        assert_eq!(run_process_alive(host.as_deref(), Some(pid as i64), Some(&child_id)), Some(true));
        // The same pid with another start time is another process: the run's own is gone.
        let other = format!("{}:1", child_id.split(':').next().unwrap());
        assert_eq!(run_process_alive(host.as_deref(), Some(pid as i64), Some(&other)), Some(false));
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(run_process_alive(host.as_deref(), Some(pid as i64), Some(&child_id)), Some(false));
        assert_eq!(run_process_alive(Some("another-host"), Some(pid as i64), Some(&child_id)), None);
    }
}
