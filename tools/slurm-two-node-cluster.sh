#!/usr/bin/env bash
# A real two-node SLURM on this one machine, for the multi-node tests of
# tests/workflow/test_multinode.py. Debian's slurm-wlm 22.05 is built with
# multiple-slurmd support: two slurmd daemons (`slurmd -N n1`, `slurmd -N n2`)
# serve two NodeNames on the same host, each with its own port, so `sbatch
# --nodes=2` and `srun` spread tasks over two "nodes" exactly as on a cluster.
#
# Everything lives under one directory (default /tmp/cinefm-slurm-2nodes) and
# uses its own ports and its own munged socket, so it runs next to (and never
# touches) the single-node cluster of tools/slurm-test-cluster.sh. Clients
# find it through SLURM_CONF=<dir>/slurm.conf.
#
# Usage (as root): tools/slurm-two-node-cluster.sh start|stop|status [DIR]
#   start   write DIR/slurm.conf + gres.conf, start munged, slurmctld and both
#           slurmd; wait until both nodes are idle (exit 1 with the log tails).
#   stop    stop what start started (pid files under DIR).
#   status  exit 0 when both nodes answer idle/mixed/allocated.
# Partitions: cpu (default) and a100, both on n1,n2; each node has 4 fake
# GPUs (gpu:a100:4, character devices like /dev/null) and advertises
# CINEFM_SLURM_TEST_CPUS (default 16) CPUs; jobs time-share the real cores.
set -euo pipefail
# shellcheck source=tools/slurm-test-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/slurm-test-common.sh"

DIR=${2:-${CINEFM_SLURM_2NODES_DIR:-/tmp/cinefm-slurm-2nodes}}
CPUS=${CINEFM_SLURM_TEST_CPUS:-16}
MEM=${CINEFM_SLURM_TEST_MEM_MB:-32768}
PORT_BASE=${CINEFM_SLURM_2NODES_PORT:-7817}   # slurmctld; slurmd of n1/n2 on +4/+5
START_TIMEOUT=${CINEFM_SLURM_TEST_TIMEOUT:-60}
export SLURM_CONF=$DIR/slurm.conf

say() { echo "slurm-two-node-cluster: $*"; }
die() { echo "slurm-two-node-cluster: $*" >&2; exit 1; }

log_tails() {
    local f
    for f in "$DIR"/log/*.log "$DIR"/munge/munged.log; do
        [[ -f "$f" ]] || continue
        echo "----- tail of $f" >&2
        tail -n 20 "$f" >&2
    done
}

cluster_up() {
    local states
    [[ -f "$SLURM_CONF" ]] || return 1
    states=$(timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null | sort -u) || return 1
    [[ $(grep -cE ' (idle|mixed|allocated|completing)$' <<<"$states") -ge 2 ]] || return 1
    ! grep -qvE ' (idle|mixed|allocated|completing)$' <<<"$states"
}

write_config() {
    local host
    host=$(hostname -s)
    mkdir -p "$DIR"/spool/ctld "$DIR"/spool/n1 "$DIR"/spool/n2 "$DIR"/log "$DIR"/gpu
    cat >"$SLURM_CONF" <<EOF
# Written by tools/slurm-two-node-cluster.sh: two slurmd on one host, for tests only.
ClusterName=cinefm-2nodes
SlurmctldHost=$host
SlurmctldPort=$PORT_BASE
SlurmdPort=$((PORT_BASE + 1))
AuthInfo=socket=$DIR/munge/munge.sock
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
$(slurm_test_conf_common)
NodeName=n1 NodeHostname=$host Port=$((PORT_BASE + 4)) CPUs=$CPUS RealMemory=$MEM Gres=gpu:a100:4 State=UNKNOWN
NodeName=n2 NodeHostname=$host Port=$((PORT_BASE + 5)) CPUs=$CPUS RealMemory=$MEM Gres=gpu:a100:4 State=UNKNOWN
PartitionName=cpu  Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
PartitionName=a100 Nodes=n1,n2 MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    make_fake_gpus "$DIR/gpu" 8
    cat >"$DIR/gres.conf" <<EOF
NodeName=n1 Name=gpu Type=a100 File=$DIR/gpu/gpu[0-3]
NodeName=n2 Name=gpu Type=a100 File=$DIR/gpu/gpu[4-7]
EOF
}

cmd_start() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    if cluster_up; then
        say "already running ($SLURM_CONF)"
        return 0
    fi
    write_config
    mkdir -p "$DIR/munge"
    chown munge:munge "$DIR/munge"
    pid_alive "$DIR/munge/munged.pid" || runuser -u munge -- /usr/sbin/munged --force \
        --socket="$DIR/munge/munge.sock" --pid-file="$DIR/munge/munged.pid" \
        --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/seed"
    pid_alive "$DIR/slurmctld.pid" || /usr/sbin/slurmctld -f "$SLURM_CONF" -c \
        || { log_tails; die "slurmctld failed to start"; }
    local node
    for node in n1 n2; do
        pid_alive "$DIR/slurmd-$node.pid" || /usr/sbin/slurmd -f "$SLURM_CONF" -N "$node" \
            || { log_tails; die "slurmd -N $node failed to start"; }
    done
    local waited=0
    until cluster_up; do
        if (( waited >= START_TIMEOUT )); then
            sinfo -N >&2 || true
            log_tails
            die "the two nodes are not idle after ${START_TIMEOUT}s"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "up after ${waited}s: SLURM_CONF=$SLURM_CONF"
}

stop_pidfile() {
    local pidfile=$1 pid i
    pid_alive "$pidfile" || return 0
    pid=$(cat "$pidfile")
    kill "$pid"
    for i in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
}

cmd_stop() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    stop_pidfile "$DIR/slurmd-n1.pid"
    stop_pidfile "$DIR/slurmd-n2.pid"
    stop_pidfile "$DIR/slurmctld.pid"
    stop_pidfile "$DIR/munge/munged.pid"
    say "stopped"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cluster_up && { sinfo -N; exit 0; }; say "not running"; exit 1 ;;
    *) echo "usage: $0 start|stop|status [DIR]" >&2; exit 2 ;;
esac
