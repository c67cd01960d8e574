#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU and PyTorch 2.11 but no Rust toolchain
# and no network, from the repository root of a copy of this tree that carries device/bin/
# (built here by scripts/device-build.sh):
#
#   scripts/device-check.sh [OUT]      # OUT defaults to device/out; $OUT when set (device runner)
#
# 1. points the carried binaries at that machine's LibTorch (LD_LIBRARY_PATH) and checks that
#    rmlab sees CUDA (`rmlab doctor`);
# 2. runs experiments/quick.toml on CUDA and on the CPU and prints both summaries;
# 3. runs a short MiniLM fine-tune (experiments/finetune.toml, bf16, 20 steps) on CUDA;
# 4. runs the bench's GPU suite: training steps/s on CUDA against the same run on the CPU and
#    against PyTorch eager on the same card (loss curves checked first), and the lambda sweep
#    vectorized against one cell at a time on CUDA; MiniLM's embedding pass and fine-tuning
#    steps on CUDA against PyTorch on the same card (embeddings and loss curves checked
#    first). Results: OUT/bench-cuda.json. The MiniLM weights come from device/encoders/
#    (float16, written by device-build.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-${OUT:-device/out}}
mkdir -p "$out"
say() { printf '[device-check] %s\n' "$*" >&2; }

for b in device/bin/rmlab device/bin/bench; do
  [ -x "$b" ] || { echo "device-check: $b missing: run scripts/device-build.sh on the build machine and carry device/bin" >&2; exit 2; }
done
python=${PYTHON:-$(command -v python3 || command -v python)}
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') \
  || { echo "device-check: $python cannot import torch" >&2; exit 2; }
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RMLAB_REPO="$PWD"
export RMLAB_ENCODERS="$PWD/device/encoders"
[ -f device/encoders/minilm-l6/model.safetensors ] || { echo "device-check: device/encoders/minilm-l6 missing: run scripts/device-build.sh and carry device/encoders" >&2; exit 2; }
say "python $python, torch $("$python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true

device/bin/rmlab doctor | tee "$out/doctor.txt"
grep -Eq '^cuda +available' "$out/doctor.txt" || { echo "device-check: rmlab does not see CUDA (see $out/doctor.txt)" >&2; exit 1; }

for dev in cuda cpu; do
  rm -f "$out/quick-$dev.sqlite"
  say "quick sweep on $dev"
  /usr/bin/time -f "quick on $dev: %e s" device/bin/rmlab sweep experiments/quick.toml \
    --db "$out/quick-$dev.sqlite" --set model.device=$dev 2>&1 | tail -2
  device/bin/rmlab query summary --db "$out/quick-$dev.sqlite" -e quick --metrics accuracy,loss_total --split val | tee "$out/quick-$dev.txt"
done

say "MiniLM fine-tune on CUDA (experiments/finetune.toml, 20 steps, bf16)"
rm -f "$out/finetune.sqlite"
/usr/bin/time -f "finetune on cuda: %e s" device/bin/rmlab sweep experiments/finetune.toml --db "$out/finetune.sqlite" \
  --set model.device=cuda --set train.steps=20 --set eval.every=10 --set model.max_length=128 2>&1 | tail -3
device/bin/rmlab query summary --db "$out/finetune.sqlite" -e finetune --metrics accuracy,loss_total --split val | tee "$out/finetune.txt"

say "bench GPU suite"
device/bin/bench --device cuda --bin device/bin/rmlab --python "$python" --out "$out/bench-cuda.json" >/dev/null
"$python" - "$out/bench-cuda.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = r["device"]
print("machine:", r["machine"])
for name in ("small", "wide"):
    g, c = d[name]["cuda"], d[name]["cpu"]
    print(f"{g['model']}: rmlab CUDA {g['rmlab_steps_per_s']:.0f} steps/s, PyTorch CUDA {g['torch_steps_per_s']:.0f} "
          f"({g['speedup']:.2f}×); rmlab CPU {c['rmlab_steps_per_s']:.0f} steps/s (CUDA/CPU {d[name]['rmlab_cuda_over_cpu']:.2f}×); "
          f"max |Δloss| {g['max_abs_loss_diff']:.2e}")
v = d["vectorized_sweep_cuda"]
print(f"lambda sweep on CUDA: vectorized {v['vectorized_s']:.1f} s, one at a time {v['one_at_a_time_s']:.1f} s ({v['speedup']:.2f}×)")
e = r["encoder"]["embedding_cuda"]
print(f"{e['setup']}: rmlab {e['rmlab_texts_per_s']:.0f} texts/s, PyTorch {e['torch_texts_per_s']:.0f} ({e['speedup']:.2f}×), max |Δ| {e['max_abs_diff_first_batch']:.1e}")
f = r["encoder"]["finetune_minilm_cuda"]
print(f"{f['setup']}: rmlab {f['rmlab_steps_per_s']:.1f} steps/s, PyTorch {f['torch_steps_per_s']:.1f} ({f['speedup']:.2f}×), max |Δloss| {f['max_abs_loss_diff']:.1e}")
PY
