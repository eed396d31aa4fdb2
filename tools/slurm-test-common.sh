# Sourced by tools/slurm-test-cluster.sh and tools/slurm-two-node-cluster.sh: what
# the two test clusters share (recipe: shared/recipes/slurm.md). Not a script to run.

# The slurm.conf settings both test clusters use; each script adds its own names,
# paths, ports, nodes and partitions around them.
slurm_test_conf_common() {
    cat <<'CONF'
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
# test cluster: start pending jobs within seconds (defaults: 60 s main, 30 s backfill)
SchedulerParameters=sched_interval=1,bf_interval=1,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# nodes advertise more CPUs and memory than the machine has: jobs time-share them
SlurmdParameters=config_overrides
GresTypes=gpu
MinJobAge=86400
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
CONF
}

# make_fake_gpus DIR N: DIR/gpu0 .. gpu<N-1>, character devices with /dev/null's
# numbers (Slurm drops a gpu GRES without a device file).
make_fake_gpus() {
    local dir=$1 n=$2 i
    mkdir -p "$dir"
    for ((i = 0; i < n; i++)); do
        [[ -c "$dir/gpu$i" ]] || mknod "$dir/gpu$i" c 1 3
    done
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
