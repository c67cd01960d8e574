# rmlab tasks. `just --list` shows them; scripts/bootstrap.sh sets up a fresh machine.

set shell := ["bash", "-euo", "pipefail", "-c"]

# torch-sys finds LibTorch through the project venv's python.
export VIRTUAL_ENV := justfile_directory() / ".venv"
export PATH := justfile_directory() / ".venv/bin:" + env_var("PATH")
# Only needs to be set; the venv path makes torch-sys rebuild when a shared target dir moves clones.
export LIBTORCH_USE_PYTORCH := justfile_directory() / ".venv"

target := env_var_or_default("CARGO_TARGET_DIR", justfile_directory() / "target")
bin := target / "release/rmlab"
db := "results/results.sqlite"

# List the recipes.
default:
    @just --list

# Set up a fresh machine: .venv with torch 2.13.0 and just, then the release binary (idempotent).
bootstrap:
    scripts/bootstrap.sh

# Build the release binary.
build:
    cargo build --release --locked --quiet

# Run experiments/NAME.toml into results/results.sqlite; FLAGS go to `rmlab sweep` (--force, --dry-run, --db, --threads).
sweep NAME *FLAGS: build
    {{bin}} sweep experiments/{{NAME}}.toml {{FLAGS}}

# Show each cell of experiments/NAME.toml in store DB as done, running, failed, missing or stale; FLAGS go to `rmlab status` (--set).
status NAME DB=db *FLAGS: build
    {{bin}} status experiments/{{NAME}}.toml --db {{DB}} {{FLAGS}}

# Draw the figures of every experiment with finished runs in store DB into OUT/<experiment>/ (SVG, PNG, JSON).
figures DB=db OUT="results/figures": build
    #!/usr/bin/env bash
    set -euo pipefail
    for spec in experiments/*.toml; do
        name=$(basename "$spec" .toml)
        if {{bin}} query runs --db "{{DB}}" -e "$name" --where status=finished --format csv 2>/dev/null | sed -n 2p | grep -q .; then
            {{bin}} plot "$spec" --db "{{DB}}" --out-dir "{{OUT}}"
        else
            echo "skipping $name: no finished runs in {{DB}} (just sweep $name)"
        fi
    done

# Draw the figures of experiments/NAME.toml from store DB into OUT/NAME/; FLAGS go to `rmlab plot` (--set).
plot NAME DB=db OUT="results/figures" *FLAGS: build
    {{bin}} plot experiments/{{NAME}}.toml --db {{DB}} --out-dir {{OUT}} {{FLAGS}}

# Write the HTML report of experiments/NAME.toml from store DB to OUT (figures, summaries with CIs, cells, config, provenance); FLAGS go to `rmlab report` (--set).
report NAME DB=db OUT=("results/reports/" + NAME + ".html") *FLAGS: build
    mkdir -p "$(dirname "{{OUT}}")"
    {{bin}} report experiments/{{NAME}}.toml --db {{DB}} --out {{OUT}} {{FLAGS}}

# Run the rmlab binary with ARGS (the same as .venv/bin/rmlab, which bootstrap links to it).
rmlab *ARGS: build
    {{bin}} {{ARGS}}

# Check that every spec in experiments/ parses and expands.
check-specs: build
    {{bin}} check experiments/*.toml

# Report LibTorch's version, library path, CUDA and threads.
doctor: build
    {{bin}} doctor

# Run the test suite: unit, PyTorch fixtures, CLI, store; then the notebook against a fresh quick sweep.
test: build
    cargo test --release --locked
    rm -rf results/test && mkdir -p results/test
    {{bin}} sweep experiments/quick.toml --db results/test/quick.sqlite
    CI=true RMLAB_NOTEBOOK_OUT=results/test/notebook scripts/run-notebook.sh results/test/quick.sqlite quick

# Fuzz TARGET (spec, preference_jsonl, preference_gz, preference_parquet, embeddings, encoder, store) for SECONDS with libFuzzer, coverage-guided, on stable Rust; FLAGS go to libFuzzer. `cargo test --test fuzz_corpus` is the short smoke run.
fuzz TARGET SECONDS *FLAGS:
    fuzz/run.sh {{TARGET}} {{SECONDS}} {{FLAGS}}

# Build device/bin/{rmlab,bench} against LibTorch 2.11 (.venv-device, tch 0.24) for the GPU machine; run scripts/device-check.sh there.
device-build:
    scripts/device-build.sh

# Run a sweep as a SLURM job array on a real single-node SLURM cluster started here (needs root; installs slurm-wlm and munge).
test-slurm: build
    tests/slurm/sweep.sh {{bin}}

# Execute notebooks/results.ipynb headlessly against DB (figures land in results/notebook/).
notebook-check DB=db EXP="lambda":
    scripts/run-notebook.sh {{DB}} {{EXP}}

# Open notebooks/results.ipynb in JupyterLab (installed into .venv on first use).
notebook:
    .venv/bin/python -c "import jupyterlab" 2>/dev/null || .venv/bin/pip install -q jupyterlab
    RMLAB_DB={{justfile_directory()}}/{{db}} .venv/bin/jupyter lab notebooks/results.ipynb

# Regenerate the PyTorch-computed test fixtures (tests/fixtures/*.json; the encoder's need the Python tokenizers and transformers, installed here on first use).
fixtures:
    .venv/bin/python tests/fixtures/gen_loss_fixture.py
    .venv/bin/python tests/fixtures/gen_schedule_fixture.py
    .venv/bin/python tests/fixtures/gen_clip_fixture.py
    .venv/bin/python -c "import tokenizers, transformers" 2>/dev/null || .venv/bin/pip install -q tokenizers==0.23.3 transformers==5.24.0
    .venv/bin/python tests/fixtures/gen_encoder_fixture.py

# Run every benchmark (rmlab vs PyTorch eager, sweep scaling, logging, SQLite, 10 M-row query, the engine on scale.toml's cells and, after `just sweep scale`, its store; the encoder); writes results/bench.json.
bench *FLAGS: build
    cargo bench --locked --bench bench -- {{FLAGS}}

# Where the batched engine's time goes on 32 of scale.toml's cells (perf, grouped by activity).
profile-scale: build
    scripts/profile-scale.sh {{bin}}

# Open store DB in sqlite3.
db DB=db:
    sqlite3 {{DB}}
