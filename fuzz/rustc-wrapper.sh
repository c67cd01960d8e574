#!/usr/bin/env bash
# RUSTC_WRAPPER of fuzz/build.sh: adds libFuzzer's coverage instrumentation (SanitizerCoverage:
# 8-bit edge counters, the PC table, comparison tracing) to rmlab and the fuzz targets only, so
# the dependencies are the plain release build's, reused, not rebuilt. Every flag is stable
# rustc (-C passes, -C llvm-args); no nightly is needed.
set -euo pipefail
rustc=$1
shift
crate=""
prev=""
for a in "$@"; do
    if [[ $prev == --crate-name ]]; then crate=$a; fi
    prev=$a
done
case "$crate" in
    rmlab | rmlab_fuzz | fuzz_*)
        exec "$rustc" "$@" \
            -Cpasses=sancov-module \
            -Cllvm-args=-sanitizer-coverage-level=4 \
            -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
            -Cllvm-args=-sanitizer-coverage-pc-table \
            -Cllvm-args=-sanitizer-coverage-trace-compares \
            --cfg fuzzing
        ;;
    *) exec "$rustc" "$@" ;;
esac
