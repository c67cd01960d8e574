#!/usr/bin/env bash
# Execute notebooks/results.ipynb headlessly (CI) against a results store.
#
#   scripts/run-notebook.sh DB.sqlite [EXPERIMENT]
#
# DB is exported as RMLAB_DB (made absolute), EXPERIMENT (default: $RMLAB_EXPERIMENT, else the notebook's
# default `lambda`) as RMLAB_EXPERIMENT. Runs in the project venv's kernel ("rmlab", registered into .venv on
# first use), 120 s per cell. Exits non-zero, printing the error, if any cell fails. The committed notebook is
# never written: the executed copy and its figures go to $RMLAB_NOTEBOOK_OUT (default results/notebook/,
# gitignored). Needs: notebooks/requirements.txt installed into .venv.
set -euo pipefail

usage() { echo "usage: $0 DB.sqlite [EXPERIMENT]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
NOTEBOOK="$ROOT/notebooks/results.ipynb"
KERNEL=rmlab

[ -x "$PY" ] || { echo "error: $PY not found; run scripts/bootstrap.sh" >&2; exit 1; }
[ -f "$1" ] || { echo "error: no such database: $1" >&2; exit 1; }
RMLAB_DB="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
export RMLAB_DB
if [ $# -eq 2 ]; then export RMLAB_EXPERIMENT="$2"; fi
OUT_DIR="${RMLAB_NOTEBOOK_OUT:-$ROOT/results/notebook}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"

# A store the notebook cannot read is an error here (CI), although the notebook itself only prints a message.
"$PY" - "$RMLAB_DB" <<'PY' || exit 1
import sqlite3, sys
from pathlib import Path
path = sys.argv[1]
try:
    con = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
except sqlite3.DatabaseError as exc:
    sys.exit(f"error: {path} is not an SQLite database: {exc}")
missing = {"experiments", "runs", "params", "metrics"} - tables
if missing:
    sys.exit(f"error: {path} is not an rmlab results store (missing tables: {', '.join(sorted(missing))})")
PY

if ! "$PY" -c 'import nbclient, nbformat, ipykernel, polars, matplotlib' 2>/dev/null; then
  echo "error: notebook dependencies missing; run: $PY -m pip install -r notebooks/requirements.txt" >&2
  exit 1
fi

# Register the venv's python as kernel "rmlab" inside the venv (idempotent: only when missing or stale).
SPEC="$ROOT/.venv/share/jupyter/kernels/$KERNEL/kernel.json"
if ! "$PY" - "$SPEC" "$PY" <<'PY' 2>/dev/null
import json, os, sys
spec, py = sys.argv[1], sys.argv[2]
argv0 = json.load(open(spec))["argv"][0]
sys.exit(0 if os.path.realpath(argv0) == os.path.realpath(py) or os.path.samefile(argv0, py) else 1)
PY
then
  echo "[run-notebook] registering kernel '$KERNEL' in .venv" >&2
  "$PY" -m ipykernel install --sys-prefix --name "$KERNEL" --display-name "rmlab (.venv)" >/dev/null
fi

# Keep Jupyter's runtime files (kernel connection files) out of $HOME; no terminal or stdin needed.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
export JUPYTER_RUNTIME_DIR="$SCRATCH/runtime" IPYTHONDIR="$SCRATCH/ipython" JUPYTER_PLATFORM_DIRS=1
export MPLCONFIGDIR="$SCRATCH/mpl" PYDEVD_DISABLE_FILE_VALIDATION=1

echo "[run-notebook] db=$RMLAB_DB experiment=${RMLAB_EXPERIMENT:-lambda (notebook default)}" >&2
"$PY" - "$NOTEBOOK" "$OUT_DIR" "$KERNEL" <<'PY'
import base64, os, re, sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

nb_path, out_dir, kernel = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
ansi = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
say = lambda msg: print(f"[run-notebook] {msg}", file=sys.stderr, flush=True)

nb = nbformat.read(nb_path, as_version=4)
dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
if dirty:
    msg = f"{nb_path.name} has outputs in code cells {dirty}; clear them before committing"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        say("error: " + msg)
        sys.exit(1)
    say("warning: " + msg)

current = {"index": None}
client = NotebookClient(nb, timeout=120, kernel_name=kernel, allow_errors=False,
                        resources={"metadata": {"path": str(nb_path.parent)}})
client.on_cell_start = lambda cell, cell_index: current.update(index=cell_index)

failed = None
try:
    client.execute()
except Exception as exc:   # CellExecutionError, CellTimeoutError, DeadKernelError, kernel start failures
    failed = exc

executed = out_dir / "results.executed.ipynb"
nbformat.write(nb, executed)
for old in out_dir.glob("figure-*.png"):
    old.unlink()
figures = []
for i, cell in enumerate(nb.cells):
    if cell.cell_type != "code":
        continue
    k = 0
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            text = out["text"].rstrip()
            if text:
                print(f"--- cell {i} ---\n{text}")
        png = out.get("data", {}).get("image/png") if out.get("output_type") in ("display_data", "execute_result") else None
        if png:
            k += 1
            path = out_dir / f"figure-cell{i:02d}-{k}.png"
            path.write_bytes(base64.b64decode(png))
            figures.append(path.name)

if failed is not None:
    where = "before the first cell" if current["index"] is None else f"in cell {current['index']}"
    say(f"FAILED {where} ({type(failed).__name__}):")
    print(ansi.sub("", str(failed)), file=sys.stderr)
    say(f"partially executed notebook: {executed}")
    sys.exit(1)
say(f"ok: all cells ran; executed copy {executed}; figures: {', '.join(figures) or 'none'}")
PY
