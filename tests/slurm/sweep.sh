#!/usr/bin/env bash
# End-to-end test of `rmlab slurm` on a real single-node SLURM cluster (scripts/slurm-local.sh).
#
#   tests/slurm/sweep.sh [RMLAB_BINARY]
#
# 1. Submits the job array for experiments/quick.toml (one cell per task) and its merge job,
#    waits for the merge, and checks that every cell is in the merged store exactly once.
# 2. Deletes two runs from the store, re-submits: only those two cells run; still each once.
# 3. With every cell done, `rmlab slurm --submit` submits nothing.
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

# Submits the array and merge jobs; waits until the merge job has ended.
submit_and_wait() {
  local out
  out=$("$RMLAB" slurm "$SPEC" --db "$db" --cells-per-task 1 --time 00:10:00 --out "$work/quick.sbatch" --submit) \
    || fail "rmlab slurm --submit failed"
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

rm -rf "$work"
echo "slurm sweep test: ok"
