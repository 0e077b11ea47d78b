#!/usr/bin/env bash
# A single-node SLURM cluster on loopback, for tests/test_slurm.py (root, Debian/Ubuntu).
#
#   tests/slurm_cluster.sh start <dir>   install slurmctld/slurmd/munge if missing, write <dir>/slurm.conf,
#                                        start munged, slurmctld and slurmd, wait until the node is idle
#   tests/slurm_cluster.sh stop <dir>    stop the daemons started from <dir> (by their pidfiles)
#
# Every SLURM command needs SLURM_CONF=<dir>/slurm.conf in its environment (the script prints that line). The one
# exception is srun inside a job: snakemake's slurm-jobstep plugin strips every SLURM_* variable (SLURM_CONF too)
# before it calls srun, so srun falls back to the compiled-in /etc/slurm/slurm.conf. `start` links that path to
# <dir>/slurm.conf when it is free (or already a link) and `stop` removes the link; a real file there is left alone
# and the start fails, since a machine with its own SLURM configuration should not run this test cluster.
# State, spool, logs and pidfiles live under <dir> (munge's key, socket and log in /tmp/vidssl-munge-<hash of dir>):
# two clusters in two dirs do not share files, but they do share the ports (SLURM_TEST_PORT, default 6817, and the
# one after it).
set -euo pipefail

usage() { echo "usage: $0 start|stop <dir>" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
conf=$dir/slurm.conf
port=${SLURM_TEST_PORT:-6817}
# munged runs as user munge, which must reach its key and socket: <dir> may sit under a private (0700) parent such
# as pytest's tmp tree, so munge gets a dir of its own in /tmp, named after <dir>.
munge_dir=/tmp/vidssl-munge-$(printf %s "$dir" | md5sum | cut -c1-12)
export SLURM_CONF=$conf

log() { echo "slurm_cluster: $*" >&2; }
die() { log "$*"; exit 1; }

stop_pidfile() {
    # Kill the daemon named in a pidfile (TERM, then KILL after 10 s) and remove the pidfile.
    local pidfile=$1 pid
    [[ -s $pidfile ]] || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

system_conf=/etc/slurm/slurm.conf

stop_all() {
    stop_pidfile "$dir/run/slurmd.pid"
    stop_pidfile "$dir/run/slurmctld.pid"
    stop_pidfile "$munge_dir/munged.pid"
    if [[ -L $system_conf && $(readlink "$system_conf") == "$conf" ]]; then rm -f "$system_conf"; fi
    rm -rf "$munge_dir"
}

link_system_conf() {
    if [[ -e $system_conf && ! -L $system_conf ]]; then
        die "$system_conf exists and is not a link: this machine has its own SLURM configuration"
    fi
    mkdir -p "$(dirname "$system_conf")"
    ln -sfn "$conf" "$system_conf"
}

install_slurm() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null && return 0
    [[ $(id -u) -eq 0 ]] || die "SLURM is not installed and installing it needs root"
    command -v apt-get >/dev/null || die "SLURM is not installed and apt-get is not available"
    local packages=(slurmctld slurmd slurm-client munge)
    log "installing ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${packages[@]}" >"$dir/apt.log" 2>&1; then
        apt-get update -q >>"$dir/apt.log" 2>&1 || die "apt-get update failed (see $dir/apt.log)"
        apt-get install -y -q --no-install-recommends "${packages[@]}" >>"$dir/apt.log" 2>&1 \
            || die "apt-get install ${packages[*]} failed (see $dir/apt.log)"
    fi
}

write_config() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run"
    cat >"$conf" <<EOF
# Written by tests/slurm_cluster.sh: one node, one partition, no accounting, on 127.0.0.1.
ClusterName=vidssltest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_dir/munge.socket.2
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# Generous timeouts: on a loaded machine SLURM's defaults (RPCs 10 s, a batch job's launch 10 s, a TCP connect 2 s)
# fail jobs that are only slow; a finished job stays visible to squeue (snakemake's status check) for an hour.
MessageTimeout=60
BatchStartTimeout=120
TCPTimeout=10
MinJobAge=3600
SchedulerType=sched/backfill
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    # munged refuses a group- or world-writable key/socket dir; root's daemons must still reach the socket.
    mkdir -p "$munge_dir"
    chown munge:munge "$munge_dir"
    chmod 0711 "$munge_dir"
    if [[ ! -s $munge_dir/munge.key ]]; then
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$munge_dir/munge.key" --force
        else
            dd if=/dev/urandom of="$munge_dir/munge.key" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge "$munge_dir/munge.key"
    chmod 0400 "$munge_dir/munge.key"
    runuser -u munge -- munged --force \
        --key-file="$munge_dir/munge.key" \
        --socket="$munge_dir/munge.socket.2" \
        --pid-file="$munge_dir/munged.pid" \
        --log-file="$munge_dir/munged.log" \
        --seed-file="$munge_dir/munged.seed" \
        || die "munged did not start (see $munge_dir/munged.log)"
    wait_until "munged's socket" test -S "$munge_dir/munge.socket.2" \
        || die "munged socket did not appear (see $munge_dir/munged.log)"
}

# Limits on start-up waits catch hangs only: the daemons are up in seconds, many times that on a loaded machine.
WAIT_S=${SLURM_TEST_WAIT_S:-300}

wait_until() {
    # Poll a command until it succeeds, for at most WAIT_S seconds of wall time.
    local what=$1 deadline=$((SECONDS + WAIT_S))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || { log "no $what after $WAIT_S s"; return 1; }
        sleep 0.2
    done
}

node_idle() {
    state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
    [[ $state == idle ]]
}

wait_idle() {
    state=""
    wait_until "idle node" node_idle && return 0
    log "node state after $WAIT_S s: '${state}'"
    tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    die "the SLURM node did not become idle"
}

case $action in
    start)
        stop_all   # stale daemons from an earlier start in the same dir
        install_slurm
        write_config
        link_system_conf
        start_munge
        rm -rf "$dir/state"/* "$dir/spool"/*
        slurmctld || die "slurmctld did not start (see $dir/log/slurmctld.log)"
        slurmd || die "slurmd did not start (see $dir/log/slurmd.log)"
        wait_idle
        log "cluster up: partition 'test', node $(hostname -s)"
        echo "SLURM_CONF=$conf"
        ;;
    stop)
        stop_all
        ;;
    *)
        usage
        ;;
esac
