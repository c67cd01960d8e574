//! Link-time fixes for LibTorch from a Python wheel.
//!
//! torch-sys links `libtorch_cpu` and `libtorch`; with `--as-needed` the linker then drops
//! `libtorch_cuda`, because no symbol of ours names it, and CUDA is silently unavailable at run
//! time. We force it in when the wheel ships it, and embed an rpath to torch's lib directory so
//! the binary (and every test binary) runs without `LD_LIBRARY_PATH`.

use std::path::Path;

fn main() {
    build_commit();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // torch-sys declares `links = "tch"` and exports its lib dir as `libtorch_lib`.
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB unset: no rpath to LibTorch embedded");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rustc-env=RMLAB_LIBTORCH_BUILD_DIR={lib_dir}");
}

/// What the binary is built from: an uncommitted change here makes it `.dirty`.
const SOURCES: [&str; 5] = ["src", "build.rs", "Cargo.toml", "Cargo.lock", "assets"];

/// The commit the binary is built from (`+abc1234`, `.dirty` with uncommitted changes), so runs
/// record the code that made them rather than the state of the tree when they ran.
fn build_commit() {
    // The flag is about the files the binary is built from: rerun when they change, not only
    // when a commit or `git add` moves HEAD or the index.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let build = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            let mut args = vec!["status", "--porcelain", "--untracked-files=no", "--"];
            args.extend(SOURCES);
            let dirty = git(&args).is_some_and(|s| !s.is_empty());
            format!("+{commit}{}", if dirty { ".dirty" } else { "" })
        }
        None => String::new(),
    };
    println!("cargo:rustc-env=RMLAB_BUILD={build}");
}
