#!/usr/bin/env bash
# Where the batched engine's time goes on paper-scale cells: `perf record` of the same 30 cells
# of experiments/scale.toml that `just bench` times (the first group `just sweep scale` trains
# at 1 000 prompts, one random pair a prompt, ε = 0.1: seeds 0-5, each with λ = 0 and
# pair_sum_sq at four λ), trained by `rmlab sweep --jobs 1 --threads 1` into a scratch store,
# then the samples summed by what they were doing.
#
#   scripts/profile-scale.sh [RMLAB_BINARY]        (needs perf: apt-get install linux-perf)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RMLAB=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release/rmlab}
command -v perf >/dev/null || { echo "profile-scale: perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
work=$(mktemp -d /tmp/rmlab-profile.XXXXXX)
trap 'rm -rf "$work"' EXIT
spec=$ROOT/experiments/scale.toml

only=$("$RMLAB" status "$spec" --db "$work/none.sqlite" |
  grep -E 'data.flip=0.1 data.n_prompts=1000 data.graph=random loss.regularizer=(none|pair_sum_sq) .* seed=[0-5]$' |
  awk '{print $3}' | paste -sd, -)
[ "$(tr ',' '\n' <<<"$only" | wc -l)" = 30 ] || { echo "profile-scale: expected 30 cells" >&2; exit 1; }

perf record -q -F 999 -o "$work/perf.data" -- \
  "$RMLAB" sweep "$spec" --db "$work/profile.sqlite" --only "$only" --jobs 1 --threads 1 >/dev/null 2>&1
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
  awk '
    /^ +[0-9.]+%/ {
      pct = $1; sub("%", "", pct); sym = $0
      if (sym ~ /sgemm_kernel/) k = "matmul: MKL sgemm inner kernel"
      else if (sym ~ /sgemm_(scopy|mscale)|sgemm_.*copy/) k = "matmul: MKL packing and scaling"
      else if (sym ~ /memmove|memcpy/) k = "memory copies (batch row gather, tensor copies)"
      else if (sym ~ /adam|FlatOptimizer|sSqrt|vsqrt/) k = "optimizer (host Adam, sqrt)"
      else if (sym ~ /relu_head|kernels::/) k = "host kernels (ReLU + head pass)"
      else if (sym ~ /mul_kernel|add_kernel|VectorizedLoop|threshold|sum_kernel|reduce/) k = "element-wise and reductions (LibTorch)"
      else if (sym ~ /rand|StandardNormal|chacha|ChaCha|synthetic/) k = "data generation"
      else if (sym ~ /\[k\]/) k = "kernel (page faults, clearing pages)"
      else if (sym ~ /truth|metrics|TruthIndex|evaluator|sort|quicksort/) k = "evaluation metrics (host)"
      else if (sym ~ /malloc|free|_int_|c10::|at::|dispatch|Dispatch|OperatorEntry/) k = "allocation and dispatch"
      else k = "other"
      total[k] += pct
    }
    END { for (k in total) printf "%6.1f%%  %s\n", total[k], k }' | sort -rn
