#!/usr/bin/env bash
# A real single-node SLURM on this machine for tests/workflow/test_slurm.py
# (recipe: shared/recipes/slurm.md). Partitions cpu (default), a100 and b200 on
# the same node; fake GPUs (gpu:a100:4, gpu:b200:2) backed by character devices
# so that jobs see CUDA_VISIBLE_DEVICES / SLURM_GPUS_ON_NODE as on a real node.
#
# Usage (as root): tools/slurm-test-cluster.sh start|stop|status
#   start   write /etc/slurm/slurm.conf + gres.conf, start munged, slurmctld,
#           slurmd; wait until sinfo shows every partition idle (exit 1 with the
#           daemon log tails otherwise). A cluster that is already up is reused.
#   stop    stop the daemons this script started (munged only if it started it).
#   status  exit 0 when sinfo answers and the node is usable, 1 otherwise.
#
# The node advertises CINEFM_SLURM_TEST_CPUS CPUs (default 64) and
# CINEFM_SLURM_TEST_MEM_MB MiB (default 131072), more than this machine has
# (SlurmdParameters=config_overrides), so that the shipped profile's cpus_per_gpu
# fits a 4-GPU job and the rules' mem_mb (fine-tuning: 16000) do not queue the
# phantom DAG's jobs one by one; jobs then time-share the real cores and memory.
# Install the packages first: tools/install-system-deps.sh
set -euo pipefail
# shellcheck source=tools/slurm-test-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm-test-common.sh"

CONF_DIR=/etc/slurm
STATE_DIR=/run/cinefm-slurm-test      # markers of what this script started
FAKE_GPU_DIR=/var/lib/slurm-fake-gpu
LOG_DIR=/var/log/slurm
CPUS=${CINEFM_SLURM_TEST_CPUS:-64}
MEM=${CINEFM_SLURM_TEST_MEM_MB:-131072}
START_TIMEOUT=${CINEFM_SLURM_TEST_TIMEOUT:-60}

say() { echo "slurm-test-cluster: $*"; }
die() { echo "slurm-test-cluster: $*" >&2; exit 1; }

log_tails() {
    local f
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        if [[ -f "$f" ]]; then
            echo "----- tail of $f" >&2
            tail -n 25 "$f" >&2
        fi
    done
}

require_binaries() {
    local b missing=()
    for b in munged slurmctld slurmd sinfo sbatch squeue; do
        command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || missing+=("$b")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        die "not installed: ${missing[*]} (run as root: tools/install-system-deps.sh)"
    fi
}

cluster_up() {
    # every partition line idle/mixed/allocated: usable (jobs may be running)
    local states
    states=$(timeout 10 sinfo -h -o '%T' 2>/dev/null) || return 1
    [[ -n "$states" ]] || return 1
    ! grep -qvE '^(idle|mixed|allocated|completing)$' <<<"$states"
}

write_config() {
    local host mem=$MEM
    host=$(hostname -s)
    mkdir -p "$CONF_DIR"
    cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by tools/slurm-test-cluster.sh: single-node test cluster, not for production.
ClusterName=cinefm-test
SlurmctldHost=$host
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
$(slurm_test_conf_common)
NodeName=$host CPUs=$CPUS RealMemory=$mem Gres=gpu:a100:4,gpu:b200:2 State=UNKNOWN
PartitionName=cpu  Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
PartitionName=a100 Nodes=$host MaxTime=INFINITE State=UP OverSubscribe=YES
PartitionName=b200 Nodes=$host MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    make_fake_gpus "$FAKE_GPU_DIR" 6
    cat >"$CONF_DIR/gres.conf" <<EOF
# Written by tools/slurm-test-cluster.sh: fake GPUs for the single-node test cluster.
NodeName=$host Name=gpu Type=a100 File=$FAKE_GPU_DIR/gpu[0-3]
NodeName=$host Name=gpu Type=b200 File=$FAKE_GPU_DIR/gpu[4-5]
EOF
    say "wrote $CONF_DIR/slurm.conf and $CONF_DIR/gres.conf (node $host, $CPUS CPUs, ${mem} MiB)"
}

start_munge() {
    if pid_alive /run/munge/munged.pid; then
        say "munged already running"
        return
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged --force
    touch "$STATE_DIR/munged"
    say "started munged"
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    require_binaries
    mkdir -p "$STATE_DIR"
    if cluster_up; then
        say "already running"
        sinfo
        return 0
    fi
    write_config
    mkdir -p /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
    start_munge
    pid_alive /run/slurmd.pid && kill "$(cat /run/slurmd.pid)" && sleep 1
    pid_alive /run/slurmctld.pid && kill "$(cat /run/slurmctld.pid)" && sleep 1
    /usr/sbin/slurmctld -c || { log_tails; die "slurmctld failed to start"; }
    /usr/sbin/slurmd || { log_tails; die "slurmd failed to start"; }
    touch "$STATE_DIR/slurm"
    local waited=0
    until cluster_up; do
        if (( waited >= START_TIMEOUT )); then
            sinfo >&2 || true
            log_tails
            die "no idle node after ${START_TIMEOUT}s (sinfo above; 'inval' or 'drain': see slurmd.log)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "up after ${waited}s"
    sinfo
}

stop_pidfile() {
    local name=$1 pidfile=$2 pid i
    if pid_alive "$pidfile"; then
        pid=$(cat "$pidfile")
        kill "$pid"
        for i in $(seq 1 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        say "stopped $name"
    fi
}

cmd_stop() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    stop_pidfile slurmd /run/slurmd.pid
    stop_pidfile slurmctld /run/slurmctld.pid
    rm -f "$STATE_DIR/slurm"
    if [[ -f "$STATE_DIR/munged" ]]; then
        /usr/sbin/munged --stop >/dev/null 2>&1 || true
        rm -f "$STATE_DIR/munged"
        say "stopped munged"
    fi
}

cmd_status() {
    if cluster_up; then
        sinfo
        return 0
    fi
    say "not running (or no idle node)"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
