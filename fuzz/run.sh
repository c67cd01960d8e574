#!/usr/bin/env bash
# Builds the libFuzzer binaries (stable Rust: rustc-wrapper.sh instruments rmlab and the targets
# only) and fuzzes TARGET for SECONDS of wall time: `fuzz/run.sh TARGET SECONDS [libFuzzer flags]`,
# or `fuzz/run.sh build`. Seeds come from fuzz/corpus/TARGET (read only); what the fuzzer finds
# goes to $CARGO_TARGET_DIR/fuzz-corpus/TARGET, crashes, hangs (-timeout) and out-of-memory
# inputs to fuzz/artifacts/TARGET/. Exit status 0 only if the run ended with none.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target_dir
export RUSTC_WRAPPER=$root/fuzz/rustc-wrapper.sh
# As the justfile: torch-sys finds LibTorch through the project venv's python.
export VIRTUAL_ENV=${VIRTUAL_ENV:-$root/.venv}
export PATH=$VIRTUAL_ENV/bin:$PATH LIBTORCH_USE_PYTORCH=${LIBTORCH_USE_PYTORCH:-$VIRTUAL_ENV}

(cd "$root/fuzz" && cargo build --release --locked --bins --quiet)
[[ ${1:-} == build ]] && exit 0

target=${1:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags]}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags]}
shift 2
[[ -d $root/fuzz/corpus/$target ]] || { echo "no such target: $target (see fuzz/corpus/)" >&2; exit 2; }
found=$target_dir/fuzz-corpus/$target
artifacts=$root/fuzz/artifacts/$target
mkdir -p "$found" "$artifacts"
# One thread each for LibTorch and polars: the machine is shared, and one input at a time.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 POLARS_MAX_THREADS=1 RAYON_NUM_THREADS=1
# -timeout: an input running 30 s is a hang; -rss_limit_mb: one using 2 GiB is a failure.
exec "$target_dir/release/fuzz_$target" "$found" "$root/fuzz/corpus/$target" \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$@"
