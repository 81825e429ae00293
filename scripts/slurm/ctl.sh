#!/usr/bin/env bash
# Stop and start the dev cluster's daemons (no systemd), for fault tests and for cleaning up.
#   ctl.sh stop-ctld    stop slurmctld (SIGTERM: it saves its state; jobs keep running under slurmd)
#   ctl.sh kill-ctld    crash slurmctld (SIGKILL: it saves state at most every 5 s, so a job started
#                       in the last 5 s is lost and later held; see docs/backends-slurm.md)
#   ctl.sh start-ctld   start slurmctld again and wait until it answers
#   ctl.sh stop-all     stop slurmd, slurmctld, slurmdbd and munged
#   ctl.sh start-all    the same as ensure.sh
#   ctl.sh status       which daemons run
set -euo pipefail

RUN_DIR=/run/slurm
LOG_DIR=/var/log/slurm

say() { echo "slurm/ctl: $*"; }
die() {
  echo "slurm/ctl: ERROR: $*" >&2
  exit 1
}

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_daemon() { # stop_daemon <name> <pidfile> [signal]
  local pid
  pid_alive "$2" || return 0
  pid="$(cat "$2")"
  kill -"${3:-TERM}" "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || {
      say "stopped $1 (pid $pid)"
      return 0
    }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  say "killed $1 (pid $pid)"
}

start_ctld() {
  pid_alive "$RUN_DIR/slurmctld.pid" || /usr/sbin/slurmctld || die "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
  for _ in $(seq 1 100); do
    if scontrol ping 2>/dev/null | grep -q 'is UP'; then
      say "slurmctld is up"
      return 0
    fi
    sleep 0.3
  done
  tail -n 15 "$LOG_DIR/slurmctld.log" >&2 || true
  die "slurmctld does not answer"
}

[[ $(id -u) -eq 0 ]] || die "run as root"

case "${1:-}" in
  stop-ctld) stop_daemon slurmctld "$RUN_DIR/slurmctld.pid" ;;
  kill-ctld) stop_daemon slurmctld "$RUN_DIR/slurmctld.pid" KILL ;;
  start-ctld) start_ctld ;;
  stop-all)
    stop_daemon slurmd "$RUN_DIR/slurmd.pid"
    stop_daemon slurmctld "$RUN_DIR/slurmctld.pid"
    stop_daemon slurmdbd "$RUN_DIR/slurmdbd.pid"
    stop_daemon munged /run/munge/munged.pid
    ;;
  start-all) exec "$(dirname "$0")/ensure.sh" ;;
  status)
    for d in munged:/run/munge/munged.pid slurmdbd:$RUN_DIR/slurmdbd.pid \
      slurmctld:$RUN_DIR/slurmctld.pid slurmd:$RUN_DIR/slurmd.pid; do
      if pid_alive "${d#*:}"; then echo "${d%%:*}: running (pid $(cat "${d#*:}"))"; else echo "${d%%:*}: stopped"; fi
    done
    ;;
  *) die "usage: $0 stop-ctld|kill-ctld|start-ctld|stop-all|start-all|status" ;;
esac
