"""cinefm.cluster: a job's allocation → Lightning's devices, num_nodes and strategy."""

import logging

import pytest

from cinefm.cluster import (
    ClusterError,
    allocated_gpus,
    device_layout,
    lightning_devices,
    training_request,
    training_resources,
)
from cinefm.config import ConfigError

# What SLURM sets in a Snakemake job step (srun -n1) on a node given 4 GPUs.
SLURM_4_GPUS = {
    "SLURM_JOB_ID": "42", "SLURM_JOB_NAME": "0f4c-run-uuid", "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NUM_NODES": "1", "SLURM_NNODES": "1",
    "SLURM_GPUS_ON_NODE": "4", "CUDA_VISIBLE_DEVICES": "0,1,2,3",
}


def test_no_gpu_anywhere_trains_on_one_cpu_process():
    layout = device_layout({}, requested=None, cuda_count=0)
    assert (layout.accelerator, layout.devices, layout.num_nodes, layout.strategy) == (
        "cpu", 1, 1, "auto")


def test_four_allocated_gpus_run_ddp_launched_by_lightning():
    layout = device_layout(SLURM_4_GPUS, requested=4, cuda_count=4)
    assert (layout.accelerator, layout.devices, layout.num_nodes, layout.strategy) == (
        "gpu", 4, 1, "ddp")
    assert layout.launcher == "lightning"  # one SLURM task: this process starts the other ranks


def test_one_gpu_needs_no_ddp():
    env = dict(SLURM_4_GPUS, SLURM_GPUS_ON_NODE="1", CUDA_VISIBLE_DEVICES="0")
    layout = device_layout(env, requested=1, cuda_count=1)
    assert (layout.accelerator, layout.devices, layout.strategy) == ("gpu", 1, "auto")


def test_rule_request_limits_a_workstation_with_more_gpus():
    # local profile on an 8-GPU machine: nothing restricts visibility, the rule asks 1
    layout = device_layout({}, requested=1, cuda_count=8)
    assert (layout.devices, layout.strategy) == (1, "auto")


def test_local_profile_cap_of_zero_gpus_means_cpu_even_with_gpus_present():
    assert device_layout({}, requested=0, cuda_count=2).accelerator == "cpu"


def test_gpus_allocated_but_not_usable_by_torch_fall_back_to_cpu_with_a_warning(caplog):
    # the test cluster's fake GPUs: SLURM allocates 4, torch sees none
    with caplog.at_level(logging.WARNING, logger="cinefm.cluster"):
        layout = device_layout(SLURM_4_GPUS, requested=4, cuda_count=0)
    assert (layout.accelerator, layout.devices, layout.strategy) == ("cpu", 1, "auto")
    assert "torch sees 0" in caplog.text


def test_fewer_gpus_allocated_than_requested_uses_the_allocation():
    env = dict(SLURM_4_GPUS, SLURM_GPUS_ON_NODE="2", CUDA_VISIBLE_DEVICES="0,1")
    assert device_layout(env, requested=4, cuda_count=2).devices == 2


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"CUDA_VISIBLE_DEVICES": ""}, 0),
    ({"CUDA_VISIBLE_DEVICES": "-1"}, 0),
    ({"CUDA_VISIBLE_DEVICES": "2,5"}, 2),
    ({"CUDA_VISIBLE_DEVICES": "GPU-8a1b,GPU-77c2,GPU-0d3e"}, 3),
    ({"SLURM_GPUS_ON_NODE": "4", "CUDA_VISIBLE_DEVICES": "0"}, 4),
])
def test_allocated_gpus_reads_slurm_then_cuda_visible_devices(env, expected):
    assert allocated_gpus(env) == expected


def test_multi_node_job_with_one_task_per_gpu_uses_slurm_launch():
    env = dict(SLURM_4_GPUS, SLURM_JOB_NUM_NODES="2", SLURM_NNODES="2", SLURM_NTASKS="8",
               SLURM_NTASKS_PER_NODE="4(x2)")
    layout = device_layout(env, requested=4, cuda_count=4)
    assert (layout.devices, layout.num_nodes, layout.strategy, layout.launcher) == (
        4, 2, "ddp", "slurm")


def test_multi_node_job_run_as_one_task_is_refused_with_the_fix():
    env = dict(SLURM_4_GPUS, SLURM_JOB_NUM_NODES="2", SLURM_NNODES="2")
    with pytest.raises(ClusterError, match=r"srun --ntasks-per-node=4"):
        device_layout(env, requested=4, cuda_count=4)


def test_malformed_slurm_variable_is_named():
    with pytest.raises(ClusterError, match="SLURM_GPUS_ON_NODE"):
        device_layout(dict(SLURM_4_GPUS, SLURM_GPUS_ON_NODE="four"), requested=4, cuda_count=4)


def test_lightning_kwargs_inside_slurm_carry_lightnings_own_environment():
    from lightning.fabric.plugins.environments import LightningEnvironment

    kwargs = lightning_devices(SLURM_4_GPUS, requested=4, cuda_count=4)
    assert {k: kwargs[k] for k in ("accelerator", "devices", "num_nodes", "strategy")} == {
        "accelerator": "gpu", "devices": 4, "num_nodes": 1, "strategy": "ddp"}
    assert [type(p) for p in kwargs["plugins"]] == [LightningEnvironment]
    assert lightning_devices({}, requested=None, cuda_count=0)["plugins"] == []


def test_trainer_accepts_the_kwargs_in_a_slurm_job_without_gpus(monkeypatch):
    import lightning as L

    for key, value in SLURM_4_GPUS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # this machine has no GPU
    trainer = L.Trainer(**lightning_devices(requested=4), logger=False,
                        enable_checkpointing=False, enable_progress_bar=False)
    assert trainer.num_devices == 1
    assert type(trainer.accelerator).__name__ == "CPUAccelerator"


# ------------------------------------------------------- the SLURM request of a training rule


def test_one_node_asks_for_its_gpus_as_one_task_exactly_as_before():
    assert training_resources({"nodes": 1, "devices_per_node": 4, "threads": 32}) == {"gpu": 4}
    assert training_resources({"devices_per_node": 0, "threads": 2}) == {"gpu": 0}


def test_two_nodes_ask_for_one_task_per_gpu_on_each_node_started_by_srun():
    res = training_resources({"nodes": 2, "devices_per_node": 4, "threads": 32})
    # gpu is the job's total (the plugin passes it as --gpus); tasks and CPUs are per node / per task
    assert res == {"gpu": 8, "nodes": 2, "tasks_per_node": 4, "cpus_per_task": 8, "mpi": "srun"}


def test_srun_on_one_node_is_available_on_request():
    req = training_request({"nodes": 1, "devices_per_node": 2, "threads": 2, "launch": "srun"})
    assert (req.launch, req.world_size, req.cpus_per_device) == ("srun", 2, 1)


def test_the_rules_threads_win_over_the_sections_key():
    # finetune: the rule asks for max(finetune.threads, finetune.num_workers) CPUs and passes them
    section = {"nodes": 2, "devices_per_node": 2, "threads": 1, "num_workers": 4}
    assert training_request(section, "finetune", threads=4).cpus_per_device == 2
    assert training_request(section, "finetune").cpus_per_device == 1  # no rule threads: the key


@pytest.mark.parametrize("section, match", [
    ({"nodes": 2, "devices_per_node": 1}, r"devices_per_node >= 2"),
    ({"nodes": 2, "devices_per_node": 4, "launch": "lightning"}, r"one node only"),
    ({"nodes": 0, "devices_per_node": 4}, r"pretrain.nodes: 0"),
    ({"nodes": 1, "devices_per_node": 4, "launch": "mpirun"}, r"pretrain.launch"),
])
def test_impossible_requests_are_refused_naming_the_key(section, match):
    with pytest.raises(ConfigError, match=match):
        training_request(section, "pretrain")


def test_srun_tasks_without_usable_gpus_train_together_on_cpu():
    env = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "2",
           "SLURM_GPUS_ON_NODE": "2"}
    layout = device_layout(env, requested=2, cuda_count=0)
    assert (layout.accelerator, layout.devices, layout.num_nodes, layout.strategy, layout.launcher) == (
        "cpu", 2, 2, "ddp", "slurm")


def test_srun_tasks_on_a_node_with_too_few_gpus_are_refused_with_the_reason():
    env = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2",
           "SLURM_GPUS_ON_NODE": "3", "SLURMD_NODENAME": "gpu17"}
    with pytest.raises(ClusterError, match=r"gpu17.*3 usable GPU"):
        device_layout(env, requested=4, cuda_count=4)


def test_srun_launched_ranks_get_slurm_environment_without_lightnings_requeue():
    from lightning.fabric.plugins.environments import SLURMEnvironment

    env = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2",
           "SLURM_GPUS_ON_NODE": "4"}
    (plugin,) = lightning_devices(env, requested=4, cuda_count=4)["plugins"]
    assert isinstance(plugin, SLURMEnvironment) and plugin.auto_requeue is False
