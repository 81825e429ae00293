#!/usr/bin/env bash
# Bring up a one-node Slurm dev cluster on this host (no systemd): munge, slurmdbd on the local
# MariaDB, slurmctld and slurmd, one partition with fake GPUs declared as GRES.
#
# Idempotent and quick when everything is already up: it renders the configs, compares them with
# what is installed and only restarts the daemons whose configuration changed or that are not running.
# Run as root. Exits non-zero, saying why, when the cluster cannot be brought up.
#
# Settings (environment): SLURM_PARTITION (gpu), SLURM_FAKE_GPUS (4), SLURM_CLUSTER (suanwang),
# SLURM_OVERSUBSCRIBE (4 jobs per core), SLURM_WAIT_S (60).
set -euo pipefail

PARTITION="${SLURM_PARTITION:-gpu}"
FAKE_GPUS="${SLURM_FAKE_GPUS:-4}"
CLUSTER="${SLURM_CLUSTER:-suanwang}"
OVERSUBSCRIBE="${SLURM_OVERSUBSCRIBE:-4}"
WAIT_S="${SLURM_WAIT_S:-60}"

CONF_DIR=/etc/slurm
RUN_DIR=/run/slurm
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_DIR=/var/lib/slurm/slurmd
FAKE_GPU_DIR=/var/lib/slurm/fake-gpus
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS_FILE="$CONF_DIR/slurmdbd.password"
PACKAGES=(munge slurmctld slurmd slurmdbd slurm-client slurm-wlm-mysql-plugin)
NODE="$(hostname -s)"

say() { echo "slurm/ensure: $*"; }
die() {
  echo "slurm/ensure: ERROR: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts daemons)"

# ---------------------------------------------------------------------------------------- packages
install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  } || die "apt-get install ${missing[*]} failed"
}

# ----------------------------------------------------------------------------------------- configs
CHANGED=()  # names of config files rewritten in this run

# install_file <path> <owner> <mode> <content>: write only when the content differs.
install_file() {
  local path=$1 owner=$2 mode=$3 content=$4
  if [[ -f $path ]] && [[ "$(cat "$path")" == "$content" ]]; then
    return 0
  fi
  printf '%s\n' "$content" >"$path.tmp"
  chown "$owner" "$path.tmp"
  chmod "$mode" "$path.tmp"
  mv "$path.tmp" "$path"
  CHANGED+=("$(basename "$path")")
  say "wrote $path"
}

node_hardware() {
  # The node line must match what slurmd detects, or slurmctld drains the node as invalid.
  local line cpus sockets cores threads mem
  line="$(slurmd -C | head -n 1)"
  cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$line")"
  sockets="$(sed -n 's/.* SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$line")"
  cores="$(sed -n 's/.* CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$line")"
  threads="$(sed -n 's/.* ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$line")"
  mem="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$line")"
  [[ -n $cpus && -n $mem ]] || die "cannot read the node's hardware from 'slurmd -C': $line"
  # Whole GiB below what is detected, so that small fluctuations do not rewrite the config.
  mem=$(((mem / 1024 - 1) * 1024))
  echo "CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem"
}

write_configs() {
  local hardware
  hardware="$(node_hardware)"
  mkdir -p "$CONF_DIR" "$RUN_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR"
  chown slurm:slurm "$RUN_DIR" "$LOG_DIR" "$STATE_DIR"

  install_file "$CONF_DIR/slurm.conf" root:root 644 "# Written by scripts/slurm/ensure.sh: a one-node dev cluster with fake GPUs.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
# No systemd and no usable cgroups in this container: track processes by parent pid, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPort=6817
SlurmdPort=6818
# A restarted slurmd puts its node back in service by itself.
ReturnToService=2
SchedulerType=sched/backfill
# Start a submitted job on the scheduler's next pass (within a second) rather than holding batch jobs
# back up to 3 s (the default), which the controller and the tests would feel as latency.
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Clients give up quickly when slurmctld is down, so callers see the outage within seconds.
MessageTimeout=5
# Finished jobs stay in slurmctld for 5 minutes; after that sacct (slurmdbd) has them.
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
# Record the GPUs of each allocation so that sacct's AllocTRES shows gres/gpu.
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 $hardware Gres=gpu:$FAKE_GPUS State=UNKNOWN
# OverSubscribe=FORCE lets up to $OVERSUBSCRIBE jobs share a core (GRES are never shared), so several
# small test jobs run at once on a 2-core machine without declaring CPUs it does not have.
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:$OVERSUBSCRIBE"

  # Slurm 22.05 drops GPUs declared without device files ("Removing file-less GPU"), so each fake GPU
  # is a file: a /dev/null-like character device where mknod is allowed, else an empty file. Slurm
  # numbers them, so jobs see CUDA_VISIBLE_DEVICES as they would on a real node.
  mkdir -p "$FAKE_GPU_DIR"
  local i
  for ((i = 0; i < FAKE_GPUS; i++)); do
    [[ -e $FAKE_GPU_DIR/gpu$i ]] || mknod -m 666 "$FAKE_GPU_DIR/gpu$i" c 1 3 2>/dev/null \
      || touch "$FAKE_GPU_DIR/gpu$i"
  done
  install_file "$CONF_DIR/gres.conf" root:root 644 "# Written by scripts/slurm/ensure.sh: fake GPUs (no hardware behind them).
AutoDetect=off
NodeName=$NODE Name=gpu File=$FAKE_GPU_DIR/gpu[0-$((FAKE_GPUS - 1))]"

  if [[ ! -s $DB_PASS_FILE ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DB_PASS_FILE")
  fi
  chown root:root "$DB_PASS_FILE"
  chmod 600 "$DB_PASS_FILE"
  install_file "$CONF_DIR/slurmdbd.conf" slurm:slurm 600 "# Written by scripts/slurm/ensure.sh: accounting in the local MariaDB.
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=$DB_USER
StoragePass=$(cat "$DB_PASS_FILE")
StorageLoc=$DB_NAME"
}

changed() {
  local name
  for name in "${CHANGED[@]}"; do [[ $name == "$1" ]] && return 0; done
  return 1
}

# --------------------------------------------------------------------------------------- processes
pid_alive() { # pid_alive <pidfile>
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_daemon() { # stop_daemon <name> <pidfile>
  local pid
  pid_alive "$2" || return 0
  pid="$(cat "$2")"
  say "stopping $1 (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.3
  done
  say "$what is up"
}

tail_log() { if [[ -f $1 ]]; then tail -n 15 "$1" >&2; fi; }

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating the munge key"
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  munge_works && return 0
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  # A munged that died leaves its socket and pid file behind; --force starts over them.
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged --force 9>&- || die "munged did not start (see /var/log/munge/munged.log)"
  wait_for munged 10 munge_works || die "munge does not work (see /var/log/munge/munged.log)"
}

# MariaDB's root user: through the socket where it authenticates by unix user, else over TCP.
mysql_root() {
  if mysql -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    mysql -uroot "$@"
  else
    mysql -uroot -h127.0.0.1 "$@"
  fi
}

mariadb_up() { mysql_root -e 'SELECT 1'; }

ensure_mariadb() {
  mariadb_up >/dev/null 2>&1 && return 0
  dpkg-query -W -f='${Status}' mariadb-server 2>/dev/null | grep -q 'install ok installed' || {
    say "installing mariadb-server"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mariadb-server >/dev/null \
      || die "apt-get install mariadb-server failed"
  }
  say "starting MariaDB"
  /etc/init.d/mariadb start >/dev/null 9>&- || die "MariaDB did not start"
  wait_for MariaDB 30 mariadb_up || die "MariaDB does not answer as root"
}

ensure_database() {
  local pass
  pass="$(cat "$DB_PASS_FILE")"
  mysql_root <<SQL || die "could not create the accounting database $DB_NAME in MariaDB"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$pass';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$pass';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$pass';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
SQL
}

sacctmgr_works() { sacctmgr -n -P list cluster format=cluster; }

ensure_slurmdbd() {
  changed slurmdbd.conf && stop_daemon slurmdbd "$RUN_DIR/slurmdbd.pid"
  pid_alive "$RUN_DIR/slurmdbd.pid" && return 0
  ensure_mariadb
  ensure_database
  say "starting slurmdbd"
  /usr/sbin/slurmdbd 9>&- || {
    tail_log "$LOG_DIR/slurmdbd.log"
    die "slurmdbd did not start"
  }
  wait_for slurmdbd 30 sacctmgr_works || {
    tail_log "$LOG_DIR/slurmdbd.log"
    die "slurmdbd does not answer (log above)"
  }
}

ensure_cluster_registered() {
  sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" && return 0
  say "registering cluster $CLUSTER in accounting"
  sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
}

ctld_answers() { scontrol ping | grep -q 'is UP'; }

ensure_slurmctld() {
  if changed slurm.conf || changed gres.conf; then
    stop_daemon slurmctld "$RUN_DIR/slurmctld.pid"
  fi
  pid_alive "$RUN_DIR/slurmctld.pid" && return 0
  say "starting slurmctld"
  /usr/sbin/slurmctld 9>&- || {
    tail_log "$LOG_DIR/slurmctld.log"
    die "slurmctld did not start"
  }
  wait_for slurmctld 30 ctld_answers || {
    tail_log "$LOG_DIR/slurmctld.log"
    die "slurmctld does not answer (log above)"
  }
}

ensure_slurmd() {
  if changed slurm.conf || changed gres.conf; then
    stop_daemon slurmd "$RUN_DIR/slurmd.pid"
  fi
  pid_alive "$RUN_DIR/slurmd.pid" && return 0
  say "starting slurmd"
  /usr/sbin/slurmd 9>&- || {
    tail_log "$LOG_DIR/slurmd.log"
    die "slurmd did not start"
  }
}

node_state() { sinfo -h -n "$NODE" -p "$PARTITION" -o '%T' 2>/dev/null | head -n 1; }

node_usable() { [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing)$ ]]; }

ensure_node_usable() {
  node_usable && return 0
  local deadline=$((SECONDS + WAIT_S)) resumed=0 state
  while ((SECONDS < deadline)); do
    state="$(node_state)"
    case "$state" in
      idle | mixed | allocated | completing)
        say "node $NODE is $state in partition $PARTITION"
        return 0
        ;;
      drain* | down* | inval*)
        # Left over from an earlier run (slurmd killed, config changed): put it back once.
        if ((resumed == 0)); then
          say "node $NODE is $state; resuming it"
          scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
          resumed=1
        fi
        ;;
    esac
    sleep 0.5
  done
  scontrol show node "$NODE" >&2 || true
  tail_log "$LOG_DIR/slurmd.log"
  die "node $NODE did not become usable within ${WAIT_S}s (state: ${state:-unknown})"
}

sacct_works() { sacct -n -X -S now -o JobID >/dev/null 2>&1; }

# ------------------------------------------------------------------------------------------- main
# One run at a time: two test sessions starting together must not both start the daemons. The daemons
# are started with fd 9 closed (9>&-) so that they do not hold the lock after this script ends.
mkdir -p /run/lock
exec 9>/run/lock/suanwang-slurm-ensure.lock
flock 9
install_packages
write_configs
ensure_munge
ensure_slurmdbd
ensure_cluster_registered
ensure_slurmctld
ensure_slurmd
ensure_node_usable
sacct_works || die "sacct does not work (slurmdbd: $LOG_DIR/slurmdbd.log)"
say "ready: partition $PARTITION on $NODE with $FAKE_GPUS GPUs; sinfo, squeue, sbatch, sacct work"
