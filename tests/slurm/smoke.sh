#!/usr/bin/env bash
# Smoke test: a real local SLURM runs a job array and a job that depends on it.
#
# Brings the single-node cluster up (scripts/slurm-local.sh up), submits a 4-task array
# whose tasks each write task-$SLURM_ARRAY_TASK_ID.txt (the id comes from slurmstepd, not
# from us), and a --dependency=afterany:<array> job that concatenates them into merged.txt.
# Prints `slurm smoke: ok` and exits 0, or names what is missing and exits 1.
# Needs root (for `up`). Leaves the cluster running; `scripts/slurm-local.sh down` stops it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TIMEOUT=${SLURM_SMOKE_TIMEOUT:-120}
N=4

"$ROOT/scripts/slurm-local.sh" up

# Jobs run as the submitting user on this node, so a local temp dir is shared storage.
work=$(mktemp -d /tmp/slurm-smoke.XXXXXX)
chmod 0755 "$work"
arr=""; dep=""

fail() {
  echo "slurm smoke: FAILED: $*" >&2
  for j in $arr $dep; do
    echo "----- scontrol show job $j -----" >&2
    scontrol show job "$j" >&2 2>&1 || true
  done
  echo "----- files in $work (kept for inspection) -----" >&2
  ls -la "$work" >&2 || true
  for f in "$work"/*.out; do
    [ -e "$f" ] || continue
    echo "----- $f -----" >&2; cat "$f" >&2
  done
  [ -n "$arr$dep" ] && scancel $arr $dep 2>/dev/null || true
  exit 1
}

cat >"$work/task.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
# Fails if SLURM did not set the array variables.
echo "task ${SLURM_ARRAY_TASK_ID:?} of array ${SLURM_ARRAY_JOB_ID:?} (job ${SLURM_JOB_ID:?}) on $(hostname -s)" \
  > "task-${SLURM_ARRAY_TASK_ID}.txt"
EOF
cat >"$work/merge.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
cat task-*.txt > merged.txt
EOF

t0=$SECONDS
arr=$(sbatch --parsable --job-name=smoke-array --array=0-$((N - 1)) --ntasks=1 --cpus-per-task=1 \
  --mem=100M --time=5 --chdir="$work" --output="$work/array-%A_%a.out" "$work/task.sh" </dev/null) \
  || fail "sbatch of the array job was refused"
arr=${arr%%;*}   # --parsable prints "jobid[;cluster]"
echo "submitted array job $arr (tasks 0-$((N - 1)))"

# --wait blocks until the dependent job ends and returns its exit code; `timeout` bounds it.
set +e
timeout "$TIMEOUT" sbatch --parsable --wait --job-name=smoke-merge --dependency="afterany:$arr" \
  --ntasks=1 --mem=100M --time=5 --chdir="$work" --output="$work/merge.out" "$work/merge.sh" \
  </dev/null >"$work/merge.sbatch" 2>"$work/merge.sbatch.err"
rc=$?
set -e
dep=$(head -n 1 "$work/merge.sbatch" | cut -d';' -f1)
[ -n "$dep" ] || fail "sbatch of the dependent job was refused: $(cat "$work/merge.sbatch.err")"
echo "sbatch --wait on dependent job $dep (afterany:$arr) returned rc=$rc after $((SECONDS - t0)) s"
[ "$rc" -ne 124 ] || fail "dependent job $dep did not finish within ${TIMEOUT} s"
[ "$rc" -eq 0 ] || fail "dependent job $dep exited with $rc: $(cat "$work/merge.sbatch.err")"

missing=()
for i in $(seq 0 $((N - 1))); do
  f="$work/task-$i.txt"
  if [ ! -s "$f" ]; then missing+=("task-$i.txt"); continue; fi
  grep -q "^task $i of array $arr " "$f" || missing+=("task-$i.txt with 'task $i of array $arr' (got: $(cat "$f"))")
done
if [ ! -s "$work/merged.txt" ]; then
  missing+=("merged.txt")
elif [ "$(wc -l <"$work/merged.txt")" -ne "$N" ]; then
  missing+=("merged.txt with $N lines (has $(wc -l <"$work/merged.txt"))")
fi
[ "${#missing[@]}" -eq 0 ] || fail "missing: ${missing[*]}"

cat "$work/merged.txt"
rm -rf "$work"
echo "slurm smoke: ok"
