#!/usr/bin/env bash
# End-to-end test of `rmlab slurm` on a real single-node SLURM cluster (scripts/slurm-local.sh).
#
#   tests/slurm/sweep.sh [RMLAB_BINARY]
#
# 1. Submits the job array for experiments/quick.toml (one cell per task) and its merge job,
#    waits for the merge, and checks that every cell is in the merged store exactly once.
# 2. Deletes two runs from the store, re-submits: only those two cells run; still each once.
# 3. With every cell done, `rmlab slurm --submit` submits nothing.
# 4. experiments/real.toml, whose data path is relative to the spec: the tasks (which run a copy
#    of the spec elsewhere) read it, six cells packed into each task.
# 5. A task that reaches its time limit: SLURM's SIGTERM before the limit makes it save the cells
#    it finished; the merge takes those and no half-trained run.
# 6. A packed task: quick.toml's four compatible cells in one task, trained as one batched group.
# Needs root (to install and start SLURM). Leaves the cluster running.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RMLAB=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/release/rmlab}
RMLAB=$(cd "$(dirname "$RMLAB")" && pwd)/$(basename "$RMLAB")
TIMEOUT=${SLURM_TEST_TIMEOUT:-300}
SPEC=$ROOT/experiments/quick.toml

"$ROOT/scripts/slurm-local.sh" up

work=$(mktemp -d /tmp/rmlab-slurm.XXXXXX)
chmod 0755 "$work"
db=$work/results.sqlite

fail() {
  echo "slurm sweep test: FAILED: $*" >&2
  for f in "$work"/slurm/*/*.out; do [ -e "$f" ] && { echo "----- $f -----" >&2; cat "$f" >&2; }; done
  echo "(files kept in $work)" >&2
  exit 1
}

# Submits the array and merge jobs (SPEC, or $1 with more flags after it); waits until the merge
# job has ended.
submit_and_wait() {
  local spec=${1:-$SPEC}
  local flags=("${@:2}")
  [ ${#flags[@]} -gt 0 ] || flags=(--cells-per-task 1 --time 00:10:00 --out "$work/quick.sbatch")
  local out
  out=$("$RMLAB" slurm "$spec" --db "$db" "${flags[@]}" --submit) || fail "rmlab slurm --submit failed"
  echo "$out"
  local merge
  merge=$(awk '$1 == "merge" {print $2}' <<<"$out")
  [ -n "$merge" ] || fail "no merge job id in: $out"
  local t0=$SECONDS state=""
  while (( SECONDS - t0 < TIMEOUT )); do
    state=$(scontrol show job "$merge" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
    case "$state" in
      COMPLETED) echo "merge job $merge completed after $((SECONDS - t0)) s"; return 0 ;;
      FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) fail "merge job $merge ended $state" ;;
    esac
    sleep 1
  done
  fail "merge job $merge not done after ${TIMEOUT} s (state: ${state:-unknown})"
}

# Asserts: N finished runs of quick, each config hash exactly once.
check_once() {
  "$ROOT/.venv/bin/python" - "$db" "$1" <<'PY' || fail "store check"
import sqlite3, sys
db, expected = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
n = c.execute("SELECT count(*) FROM runs WHERE experiment = 'quick' AND status = 'finished'").fetchone()[0]
dup = c.execute("SELECT count(*) FROM (SELECT config_hash FROM runs GROUP BY config_hash HAVING count(*) > 1)").fetchone()[0]
rows = c.execute("SELECT count(*) FROM metrics").fetchone()[0]
print(f"store: {n} finished runs, {dup} duplicated cells, {rows} metric rows")
assert n == expected, f"expected {expected} finished runs, found {n}"
assert dup == 0, "a cell has two runs"
PY
}

echo "== 1. full sweep as an array"
submit_and_wait
check_once 4
grep -q 'SBATCH --array=0-3' "$work/quick.sbatch" || fail "expected a 4-task array"

echo "== 2. two runs lost: only they are resubmitted"
"$ROOT/.venv/bin/python" - "$db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA foreign_keys = ON")
c.execute("DELETE FROM runs WHERE id IN (SELECT id FROM runs ORDER BY id LIMIT 2)")
c.commit()
PY
check_once 2
submit_and_wait
grep -q 'SBATCH --array=0-1$' "$work/quick.sbatch" || fail "expected a 2-task array on resubmission"
check_once 4

echo "== 3. nothing left"
out=$("$RMLAB" slurm "$SPEC" --db "$db" --out "$work/again.sbatch" --submit 2>&1)
echo "$out"
grep -q "nothing to submit" <<<"$out" || fail "expected nothing to submit"
[ ! -e "$work/again.sbatch" ] || fail "no script should be written when nothing is left"

echo "== 4. real.toml: a data path relative to the spec, six cells a task"
submit_and_wait "$ROOT/experiments/real.toml" --cells-per-task 6 --cpus-per-task 1 --time 00:10:00 --out "$work/real.sbatch"
grep -q 'paths_relative_to' "$work"/slurm/real-*/spec.toml || fail "the spec copy does not say where its paths are read from"
"$ROOT/.venv/bin/python" - "$db" <<'PY' || fail "real.toml store check"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
n, total = c.execute("SELECT sum(status = 'finished'), count(*) FROM runs WHERE experiment = 'real'").fetchone()
print(f"real: {n} finished of {total} runs")
assert n == total and n > 0, "every real.toml cell finishes in its task"
PY
out=$("$RMLAB" status "$ROOT/experiments/real.toml" --db "$db" | tail -1)
echo "$out"
grep -q "(.* done) in" <<<"$out" && ! grep -q "missing" <<<"$out" || fail "real.toml cells are not all done: $out"

echo "== 5. a task stopped at its time limit keeps the cells it finished"
# SLURM sends the task's shell SIGTERM before its time limit (`--signal=B:TERM@…`, checked in the
# script); here it is sent as soon as a few cells are done, with the same call SLURM makes, so
# the test does not hang on the scheduler's signal timing. Each cell has its own learning rate,
# so cells train one at a time and finish one by one.
slow=$work/slow.toml
lrs=$(seq 1 40 | awk '{printf "%s%.4f", (NR>1?", ":""), 0.01 + $1 / 10000}')
sed -e 's/^name = "quick"/name = "slow"/' -e 's/^steps = 100/steps = 3000/' -e 's/^seeds = 2/seeds = 1/' \
    -e "s/^\"loss.lambda\" = .*/\"train.lr\" = [$lrs]/" "$SPEC" >"$slow"
out=$("$RMLAB" slurm "$slow" --db "$db" --cells-per-task 40 --cpus-per-task 1 --time 00:30:00 \
      --out "$work/slow.sbatch" --submit) || fail "rmlab slurm --submit failed (slow)"
echo "$out"
grep -q 'SBATCH --signal=B:TERM@120' "$work/slow.sbatch" || fail "no --signal line in the array script"
arr=$(awk '$1 == "array" {print $2}' <<<"$out")
merge=$(awk '$1 == "merge" {print $2}' <<<"$out")
task_db="${TMPDIR:-/tmp}/rmlab-$arr-0/task.sqlite"
t0=$SECONDS
until [ -f "$task_db" ] && [ "$("$ROOT/.venv/bin/python" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM runs WHERE status = 'finished'\").fetchone()[0])" "$task_db" 2>/dev/null || echo 0)" -ge 3 ]; do
  (( SECONDS - t0 < TIMEOUT )) || fail "the slow task finished no 3 cells in ${TIMEOUT} s"
  sleep 0.5
done
scancel --batch --signal=TERM "${arr}_0" || fail "scancel --signal=TERM failed"
t0=$SECONDS
while (( SECONDS - t0 < TIMEOUT )); do
  state=$(scontrol show job "$merge" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
  [ "$state" = COMPLETED ] && break
  case "$state" in FAILED|CANCELLED|TIMEOUT) fail "merge job $merge ended $state" ;; esac
  sleep 1
done
grep -h "time limit near" "$work"/slurm/slow-*/*.out || fail "the task did not stop on SIGTERM"
[ ! -e "${TMPDIR:-/tmp}/rmlab-$arr-0" ] || fail "the task's local store was not removed after a good copy"
"$ROOT/.venv/bin/python" - "$db" <<'PY' || fail "time-limit store check"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
finished, running = c.execute(
    "SELECT sum(status = 'finished'), sum(status = 'running') FROM runs WHERE experiment = 'slow'").fetchone()
print(f"slow: {finished} of 40 cells finished before SIGTERM and were merged; {running or 0} running")
assert finished and 3 <= finished < 40, "the finished cells are kept, and the task did stop early"
assert not running, "a half-trained run was merged"
PY

echo "== 6. a packed task: four compatible cells trained as one batched group"
db=$work/packed.sqlite
submit_and_wait "$SPEC" --cells-per-task 4 --cpus-per-task 1 --time 00:10:00 --out "$work/packed.sbatch"
grep -q 'SBATCH --array=0-0$' "$work/packed.sbatch" || fail "expected one task for four cells"
check_once 4
"$ROOT/.venv/bin/python" - "$db" <<'PY' || fail "packed task store check"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
groups = c.execute("SELECT DISTINCT engine, batch_group FROM runs WHERE experiment = 'quick'").fetchall()
print(f"packed: engine and group of the four runs: {groups}")
assert len(groups) == 1 and groups[0][0] == "batched" and groups[0][1].endswith(":4"), \
    "the task's four cells were not trained as one batched group"
PY

rm -rf "$work"
echo "slurm sweep test: ok"
