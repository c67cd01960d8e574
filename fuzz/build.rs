//! An rpath to LibTorch's lib directory, as the main crate's build.rs embeds, so the fuzz
//! binaries run without `LD_LIBRARY_PATH` (link arguments of rmlab's build script apply to
//! rmlab's own targets only).

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}
