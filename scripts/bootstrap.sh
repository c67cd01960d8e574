#!/usr/bin/env bash
# Idempotent set-up for rmlab on a fresh machine with Rust and python3.
#
#   .venv/            project-local virtualenv: torch==2.13.0 (LibTorch for tch), just, and the
#                     notebook's packages (notebooks/requirements.txt)
#   release binary    ${CARGO_TARGET_DIR:-target}/release/rmlab
#
# A second run only checks: each step is skipped when its result is already there.
set -euo pipefail

cd "$(dirname "$0")/.."
TORCH_VERSION=2.13.0
JUST_VERSION=1.59.0
VENV=.venv

say() { printf '[bootstrap] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi

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
# matplotlib). A stamp of the requirements file makes a second run a no-op.
reqs=notebooks/requirements.txt
stamp="$VENV/.rmlab-notebook-requirements"
if [ ! -f "$stamp" ] || ! cmp -s "$reqs" "$stamp"; then
  say "installing the notebook's Python packages ($reqs)"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r "$reqs"
  cp "$reqs" "$stamp"
fi

if [ ! -x "$VENV/bin/just" ]; then
  say "installing just into $VENV (PyPI package rust-just)"
  "$VENV/bin/pip" install --disable-pip-version-check -q "rust-just==$JUST_VERSION"
fi

# torch-sys finds LibTorch through the active venv's python.
export VIRTUAL_ENV="$PWD/$VENV"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
say "building the release binary (the first build takes ~20 min on 2 cores)"
cargo build --release --locked --quiet
say "ready: $(ls "${CARGO_TARGET_DIR:-target}/release/rmlab")"
