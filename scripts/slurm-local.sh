#!/usr/bin/env bash
# Single-node SLURM test cluster on this machine (localhost), for CI and local tests.
#
#   scripts/slurm-local.sh up       install (apt, only if missing), configure, start munged,
#                                   slurmctld and slurmd, wait for the node to be idle
#   scripts/slurm-local.sh down     stop slurmd, slurmctld and munged
#   scripts/slurm-local.sh status   show daemons and node state; exit 0 when all are up, 3 if not
#
# Written for Debian/Ubuntu without systemd (containers, CI VMs): daemons are started
# directly. Needs root. Never reads stdin, so it runs the same under CI=true without a tty.
# `up` is idempotent: running daemons with an unchanged config are left alone; a changed
# config restarts slurmctld and slurmd.
#
# There is no accounting daemon (no slurmdbd), so `sacct` does not work here: use the job's
# output files, `sbatch --wait` or `scontrol show job <id>` (kept MinJobAge seconds after it ends).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
STATE_DIR=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
LOG_DIR=/var/log/slurm
CTLD_LOG=$LOG_DIR/slurmctld.log
SLURMD_LOG=$LOG_DIR/slurmd.log
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid
MUNGE_LOG=/var/log/munge/munged.log
PARTITION=debug
UP_TIMEOUT=${SLURM_LOCAL_UP_TIMEOUT:-60}

say() { printf '[slurm-local] %s\n' "$*" >&2; }

# Print the last lines of the given logs, then exit 1.
die() {
  local msg=$1; shift
  say "ERROR: $msg"
  local f
  for f in "$@"; do
    if [ -s "$f" ]; then
      printf -- '----- tail of %s -----\n' "$f" >&2
      tail -n 25 "$f" >&2
    else
      printf -- '----- %s: missing or empty -----\n' "$f" >&2
    fi
  done
  exit 1
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, writes /etc/slurm, starts daemons)"
}

# pid_alive PIDFILE NAME: true when PIDFILE names a live process whose command is NAME.
pid_alive() {
  local pidfile=$1 name=$2 pid
  [ -r "$pidfile" ] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [ -n "$pid" ] || return 1
  [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  # A killed daemon can linger a moment as a zombie (state Z/X); that is not alive.
  case "$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$pid/stat" 2>/dev/null)" in
    Z|X|x|"") return 1 ;;
  esac
}

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

# stop_pidfile PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pidfile() {
  local pidfile=$1 name=$2 pid i
  pid_alive "$pidfile" "$name" || { rm -f "$pidfile"; return 0; }
  pid=$(tr -dc '0-9' <"$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 30); do
    pid_alive "$pidfile" "$name" || { rm -f "$pidfile"; return 0; }
    sleep 0.5
  done
  say "$name (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
  rm -f "$pidfile"
}

install_if_missing() {
  if command -v sbatch >/dev/null && command -v slurmctld >/dev/null \
     && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null || die "sbatch/munged missing and no apt-get to install slurm-wlm and munge"
  say "installing slurm-wlm and munge with apt (about 20 s)"
  local t0=$SECONDS
  # noninteractive + </dev/null: no debconf prompts, works without a terminal in CI.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/tmp/slurm-local-apt.log 2>&1 \
    || die "apt-get update failed" /tmp/slurm-local-apt.log
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge \
    </dev/null >>/tmp/slurm-local-apt.log 2>&1 \
    || die "apt-get install slurm-wlm munge failed" /tmp/slurm-local-apt.log
  say "installed in $((SECONDS - t0)) s"
}

start_munge() {
  if munge_ok; then return 0; fi
  # A munged that is running but not answering (stale socket, dead pid file) is replaced.
  stop_pidfile "$MUNGE_PID" munged
  id munge >/dev/null 2>&1 || die "user 'munge' does not exist (is the munge package installed?)"
  # munged refuses to start unless its directories are owned by the munge user and not
  # writable by others, and the key is readable only by munge.
  install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
  if [ ! -s "$MUNGE_KEY" ]; then
    say "creating $MUNGE_KEY"
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$MUNGE_KEY" --force
    else
      dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
    fi
  fi
  chown munge:munge "$MUNGE_KEY"
  chmod 0400 "$MUNGE_KEY"
  # No systemd: run munged as the munge user ourselves. It forks into the background.
  runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1 \
    || die "munged failed to start" "$MUNGE_LOG"
  local i
  for i in $(seq 1 20); do munge_ok && return 0; sleep 0.25; done
  die "munged started but 'munge -n | unmunge' does not work" "$MUNGE_LOG"
}

# Write the config for this node to stdout. Node figures come from `slurmd -C`, i.e. exactly
# what slurmd will report; configuring more than that would make slurmctld drain the node.
render_conf() {
  local host=$1 hw
  hw=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n 1) || true
  [ -n "$hw" ] || die "'slurmd -C' printed no NodeName line; cannot size the node"
  # Drop the NodeName= field: we set it (and NodeAddr) ourselves below.
  hw=$(printf '%s\n' "$hw" | tr ' ' '\n' | grep -v '^NodeName=' | grep . | tr '\n' ' ')
  cat <<EOF
# Generated by scripts/slurm-local.sh: single-node test cluster. Edits are overwritten.
ClusterName=rmlab-local
# Must be \`hostname -s\`: slurmd finds its own NodeName by the short hostname, and
# slurmctld only accepts commands on the host named here. The address is pinned to
# 127.0.0.1 so the cluster does not depend on DNS or /etc/hosts for this name.
SlurmctldHost=$host(127.0.0.1)
# Test cluster: run slurmctld as root, so no ownership juggling for state/log dirs.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info
# No systemd, and containers/CI VMs often lack a writable, delegated cgroup tree:
# track job processes through /proc and do no CPU binding, so no cgroup plugin loads.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# No slurmdbd: no accounting storage and no per-task usage sampling (sacct unavailable).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# Default mail program (/bin/mail) is usually absent; avoid errors at start-up.
MailProg=/bin/true
SchedulerType=sched/backfill
# Cores and memory are consumable, so several array tasks share the node at once.
# Without DefMemPerCPU a job that does not pass --mem is given the whole node's memory
# and every job would run one after the other.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
# After a restart the node comes back by itself instead of staying DOWN
# ("Node unexpectedly rebooted" / "Not responding").
ReturnToService=2
# Keep finished jobs visible to \`scontrol show job\` for 10 minutes (no sacct here).
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 ${hw}State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

slurm_running() { pid_alive "$CTLD_PID" slurmctld && pid_alive "$SLURMD_PID" slurmd; }

start_slurm() {
  mkdir -p "$STATE_DIR" "$SLURMD_SPOOL" "$LOG_DIR"
  chmod 0755 "$STATE_DIR" "$SLURMD_SPOOL" "$LOG_DIR"
  # Both daemons fork into the background; stdio goes nowhere so a caller capturing
  # our output (CI, $(...)) is not held open by the daemons.
  local i started=0
  for i in $(seq 1 40); do
    if ! pid_alive "$CTLD_PID" slurmctld; then
      # Not running, or it was dying when we looked (e.g. killed a moment ago): start
      # it once; if the one we started is gone too, give up with its log.
      [ "$started" -eq 0 ] || die "slurmctld exited right after start" "$CTLD_LOG"
      rm -f "$CTLD_PID"
      say "starting slurmctld"
      slurmctld </dev/null >/dev/null 2>&1 || die "slurmctld failed to start" "$CTLD_LOG"
      started=1
    fi
    scontrol ping 2>/dev/null | grep -q 'is UP' && break
    sleep 0.5
  done
  scontrol ping 2>/dev/null | grep -q 'is UP' \
    || die "slurmctld does not answer 'scontrol ping' after 20 s" "$CTLD_LOG"
  if ! pid_alive "$SLURMD_PID" slurmd; then
    rm -f "$SLURMD_PID"
    say "starting slurmd"
    slurmd </dev/null >/dev/null 2>&1 || die "slurmd failed to start" "$SLURMD_LOG"
  fi
}

stop_slurm() {
  # Ask slurmctld to shut down itself and every slurmd (saves state cleanly) ...
  if pid_alive "$CTLD_PID" slurmctld; then
    scontrol shutdown >/dev/null 2>&1 || true
  fi
  # ... then make sure, by pid file, whatever is left goes away.
  stop_pidfile "$SLURMD_PID" slurmd
  stop_pidfile "$CTLD_PID" slurmctld
}

# Node state as sinfo prints it (idle, mixed, down*, drained, ...), lower case.
node_state() { sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1 | tr 'A-Z' 'a-z'; }

wait_node_ready() {
  local host=$1 deadline=$((SECONDS + UP_TIMEOUT)) state="" resumed=0 restarted=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    state=$(node_state "$host")
    case "$state" in
      idle|mixed|allocated|completing) return 0 ;;
      drain*|drng*|down)
        # Left drained/down by an earlier run (e.g. killed daemons): put it back once.
        if [ "$resumed" -eq 0 ]; then
          say "node $host is '$state'; resuming it"
          scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
          resumed=1
        fi ;;
    esac
    if ! pid_alive "$SLURMD_PID" slurmd; then
      # Gone (it may have been dying when start_slurm looked): start it once more.
      [ "$restarted" -eq 0 ] \
        || die "slurmd exited (node state '${state:-unknown}')" "$SLURMD_LOG" "$CTLD_LOG"
      rm -f "$SLURMD_PID"
      say "slurmd not running; starting it"
      slurmd </dev/null >/dev/null 2>&1 || die "slurmd failed to start" "$SLURMD_LOG"
      restarted=1
    fi
    sleep 1
  done
  local reason
  reason=$(sinfo -h -N -n "$host" -o '%E' 2>/dev/null | head -n 1 || true)
  die "node $host not idle after ${UP_TIMEOUT} s (state '${state:-unknown}', reason '${reason:-none}')" \
    "$SLURMD_LOG" "$CTLD_LOG"
}

cmd_up() {
  need_root
  local t0=$SECONDS host
  install_if_missing
  host=$(hostname -s)
  [ -n "$host" ] || die "hostname -s is empty"
  start_munge

  mkdir -p "$CONF_DIR"
  local new
  new=$(mktemp)
  render_conf "$host" >"$new"
  if [ -f "$CONF" ] && cmp -s "$new" "$CONF"; then
    rm -f "$new"
  else
    [ -f "$CONF" ] && say "slurm.conf changed; restarting slurm daemons"
    stop_slurm
    install -m 0644 "$new" "$CONF"
    rm -f "$new"
  fi

  if slurm_running && scontrol ping 2>/dev/null | grep -q 'is UP'; then
    say "slurmctld and slurmd already running"
  else
    start_slurm
  fi
  wait_node_ready "$host"

  local cpus mem state
  cpus=$(sinfo -h -N -n "$host" -o '%c' | head -n 1)
  mem=$(sinfo -h -N -n "$host" -o '%m' | head -n 1)
  state=$(node_state "$host")
  printf 'slurm-local: up in %ss: node %s %s (%s CPUs, %s MB), partition %s, conf %s, logs %s\n' \
    "$((SECONDS - t0))" "$host" "$state" "$cpus" "$mem" "$PARTITION" "$CONF" "$LOG_DIR"
}

cmd_down() {
  need_root
  stop_slurm
  if munge_ok || pid_alive "$MUNGE_PID" munged; then
    # --stop signals the daemon bound to the socket; the pid file is the fallback.
    munged --stop >/dev/null 2>&1 || true
    stop_pidfile "$MUNGE_PID" munged
  fi
  # We only stop what our pid files name. Report (do not kill) any daemon left without
  # one, e.g. after a package removal deleted /run/munge, so the caller can see it.
  local stray
  stray=$(pgrep -a -x 'slurmd|slurmctld|munged' 2>/dev/null || true)
  if [ -n "$stray" ]; then
    say "ERROR: still running without a pid file of ours (stop them by pid):"
    printf '%s\n' "$stray" >&2
    exit 1
  fi
  printf 'slurm-local: down (slurmd, slurmctld, munged stopped)\n'
}

cmd_status() {
  local ok=0 host
  host=$(hostname -s)
  if munge_ok; then echo "munged:    running"; else echo "munged:    not running"; ok=3; fi
  local name pidf
  for name in slurmctld slurmd; do
    if [ "$name" = slurmctld ]; then pidf=$CTLD_PID; else pidf=$SLURMD_PID; fi
    if pid_alive "$pidf" "$name"; then
      printf '%-10s running (pid %s)\n' "$name:" "$(tr -dc '0-9' <"$pidf")"
    else
      printf '%-10s not running\n' "$name:"; ok=3
    fi
  done
  if [ "$ok" -eq 0 ]; then
    echo "node:      $host $(node_state "$host")"
    sinfo 2>&1 || true
    squeue 2>&1 || true
  fi
  return "$ok"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
