"""Device layout for Lightning from the job's allocation (SLURM, local GPUs or CPU).

A training rule declares ``resources: gpu=N``; the profile decides where the job
lands (profiles/slurm places it on a GPU partition, profiles/local caps ``gpu``
at what the machine has). At run time the job turns what it actually got into
``Trainer`` arguments::

    trainer = L.Trainer(**lightning_devices(requested=snakemake.resources.get("gpu")), ...)

so the same rule runs on CPU, one GPU or one node with several GPUs (DDP).

Snakemake runs each job as ONE SLURM task (``srun -n1``). Lightning would detect
SLURM and expect one task per GPU (``--ntasks-per-node=devices``); instead the
job's single process starts the other DDP ranks itself, which needs Lightning's
own cluster environment. When the job was started with one task per device
(``srun --ntasks-per-node=<gpus>``, e.g. a multi-node run), SLURM's environment
is the right one: ranks, node rank and world size come from ``SLURM_PROCID``,
``SLURM_NODEID``, ``SLURM_NTASKS``; the rendezvous from ``MASTER_ADDR``/``MASTER_PORT``
(:mod:`cinefm.train.launch` sets them; Lightning's ``SLURMEnvironment``).

:func:`training_resources` turns a training section of the config (``nodes``,
``devices_per_node``, ``threads``, ``launch``) into the rule's Snakemake resources,
which snakemake-executor-plugin-slurm 2.8.0 turns into the ``sbatch`` request
(``nodes`` → ``--nodes``, ``tasks_per_node`` → ``--ntasks-per-node`` for a job
marked ``mpi``, ``gpu`` + the profile's ``gpu_model`` → ``--gpus=<model>:<n>``,
``cpus_per_task`` → ``--cpus-per-task``; source: the plugin's ``submit_string.py``
and the jobstep plugin 0.6.1, which runs an ``mpi`` job's command without its own
``srun -n1``). See docs/cluster.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cinefm.config import ConfigError

log = logging.getLogger(__name__)

# CUDA_VISIBLE_DEVICES values that hide every GPU.
_NO_DEVICES = {"", "-1", "NoDevFiles", "none"}


class ClusterError(RuntimeError):
    """The job's allocation cannot be turned into a Lightning layout; the message says why."""


@dataclass(frozen=True)
class DeviceLayout:
    """Where a training job runs.

    accelerator: ``"gpu"`` or ``"cpu"``; devices: GPUs (or CPU processes) per node;
    num_nodes: nodes; strategy: ``"auto"`` or ``"ddp"``; launcher: ``"lightning"``
    when this process starts the other ranks itself, ``"slurm"`` when srun started
    one task per device.
    """

    accelerator: Literal["gpu", "cpu"]
    devices: int
    num_nodes: int
    strategy: Literal["auto", "ddp"]
    launcher: Literal["lightning", "slurm"]


def _int_env(env: Mapping[str, str], *names: str) -> int | None:
    """First of ``names`` set in ``env`` as an integer (SLURM writes e.g. ``"4"`` or ``"4(x2)"``)."""
    for name in names:
        raw = env.get(name)
        if raw is None or raw.strip() == "":
            continue
        head = raw.strip().split("(")[0].split(",")[0]
        try:
            return int(head)
        except ValueError as err:
            raise ClusterError(f"environment variable {name}={raw!r}: expected an integer") from err
    return None


def allocated_gpus(env: Mapping[str, str]) -> int | None:
    """GPUs the scheduler gave this job, or None when nothing restricts it.

    SLURM_GPUS_ON_NODE (set by SLURM for ``--gpus``/``--gres``) wins; otherwise
    the number of entries of CUDA_VISIBLE_DEVICES; otherwise None.
    """
    on_node = _int_env(env, "SLURM_GPUS_ON_NODE")
    if on_node is not None:
        return on_node
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    if visible.strip() in _NO_DEVICES:
        return 0
    return len([d for d in visible.split(",") if d.strip()])


def device_layout(env: Mapping[str, str], requested: int | None, cuda_count: int) -> DeviceLayout:
    """Turn the job's allocation into a layout (pure: ``env`` and counts in, layout out).

    GPUs used = min(requested by the rule, allocated by the scheduler, usable by
    torch), ignoring unknowns; 0 → CPU with one process, 1 → one GPU,
    more → DDP over them. ``num_nodes`` comes from SLURM_JOB_NUM_NODES.
    """
    if requested is not None and requested < 0:
        raise ClusterError(f"requested GPUs must be >= 0, got {requested}")
    allocated = allocated_gpus(env)
    counts = [c for c in (requested, allocated, cuda_count) if c is not None]
    gpus = max(0, min(counts))
    in_slurm = "SLURM_JOB_ID" in env
    num_nodes = _int_env(env, "SLURM_NNODES", "SLURM_JOB_NUM_NODES") or 1
    ntasks = _int_env(env, "SLURM_NTASKS") or 1
    per_node = _int_env(env, "SLURM_NTASKS_PER_NODE")

    if gpus == 0 and in_slurm and ntasks > 1 and per_node and ntasks == per_node * num_nodes:
        # srun started one task per requested device but torch sees no GPU (a CPU node, or
        # the test cluster's fake GPUs): the tasks are already running, so they train
        # together on CPU (gloo) instead of each alone.
        log.warning("srun started %d tasks (%d per node) but torch sees no GPU: DDP over the tasks on CPU",
                    ntasks, per_node)
        return DeviceLayout("cpu", per_node, num_nodes, "ddp", "slurm")
    if gpus == 0:
        wanted = max([c for c in (requested, allocated) if c is not None], default=0)
        if wanted > 0:
            log.warning("%d GPU(s) requested/allocated but torch sees %d: training on CPU",
                        wanted, cuda_count)
        if num_nodes > 1:
            raise ClusterError(f"CPU training on {num_nodes} nodes is not supported: "
                               "request nodes=1 for this rule in the profile")
        return DeviceLayout("cpu", 1, 1, "auto", "lightning")

    external = in_slurm and ntasks > 1 and ntasks == gpus * num_nodes
    if in_slurm and ntasks > 1 and per_node and not external:
        raise ClusterError(
            f"srun started {per_node} task(s) on each of {num_nodes} node(s) but this node ({env.get('SLURMD_NODENAME', '?')}) "
            f"has {gpus} usable GPU(s) (requested {requested}, allocated {allocated}, visible to torch {cuda_count}): "
            "every node needs one GPU per task; the profile's GPU request (--gpus, a total for the job) may have "
            "been spread unevenly: ask for whole nodes of the GPU partition (slurm_extra: '--exclusive')")
    if num_nodes > 1 and not external:
        raise ClusterError(
            f"the SLURM job spans {num_nodes} nodes but runs {ntasks} task(s); multi-node DDP "
            f"needs one task per GPU ({gpus * num_nodes}): start training with "
            f"`srun --ntasks-per-node={gpus}` in the rule, or set nodes: 1 in profiles/slurm")
    strategy = "ddp" if gpus * num_nodes > 1 else "auto"
    return DeviceLayout("gpu", gpus, num_nodes, strategy, "slurm" if external else "lightning")


def _cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def lightning_devices(
    env: Mapping[str, str] = os.environ,
    requested: int | None = None,
    *,
    cuda_count: int | None = None,
) -> dict[str, Any]:
    """``Trainer`` keyword arguments for this job: accelerator, devices, num_nodes, strategy, plugins.

    ``requested`` is the rule's ``resources.gpu`` (None when unknown);
    ``cuda_count`` defaults to ``torch.cuda.device_count()``. ``plugins`` holds
    Lightning's own cluster environment when this process launches the DDP
    ranks (inside a one-task SLURM job, Lightning would otherwise wait for
    ranks srun never started), Lightning's ``SLURMEnvironment`` (its own requeue off)
    when srun started one task per device, and is empty otherwise.
    """
    layout = device_layout(env, requested,
                           _cuda_device_count() if cuda_count is None else cuda_count)
    plugins: list[Any] = []
    if layout.launcher == "lightning" and "SLURM_JOB_ID" in env:
        from lightning.fabric.plugins.environments import LightningEnvironment

        plugins.append(LightningEnvironment())
    elif layout.launcher == "slurm":
        from lightning.fabric.plugins.environments import SLURMEnvironment

        # Snakemake (--retries) reruns a preempted job, which resumes from state/last.ckpt;
        # Lightning's own requeue on SIGUSR1 would submit a job Snakemake does not know.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    log.info("Lightning layout: %s", layout)
    return {
        "accelerator": layout.accelerator,
        "devices": layout.devices,
        "num_nodes": layout.num_nodes,
        "strategy": layout.strategy,
        "plugins": plugins,
    }


# ------------------------------------------------------------------ the SLURM request


@dataclass(frozen=True)
class TrainingRequest:
    """What a training rule asks for, from its config section (see :func:`training_request`).

    nodes: nodes of the job; devices_per_node: GPUs (and DDP processes) per node;
    cpus_per_device: CPUs of each device's process (the section's ``threads`` per node,
    shared by its devices); launch: ``"lightning"`` (one task whose process starts the
    other ranks: one node) or ``"srun"`` (one SLURM task per device, started by ``srun``).
    """

    nodes: int
    devices_per_node: int
    cpus_per_device: int
    launch: Literal["lightning", "srun"]

    @property
    def world_size(self) -> int:
        """DDP processes when every requested device is used (at least 1)."""
        return max(1, self.devices_per_node) * self.nodes


def training_request(section: Mapping[str, Any], name: str = "pretrain", threads: int | None = None) -> TrainingRequest:
    """The request of a training section (``nodes``, ``devices_per_node``, ``threads``, ``launch``).

    ``threads``: the CPUs per node (the rule's ``threads``) when given, else the section's ``threads`` key (1 without).

    ``launch: auto`` is ``srun`` with more than one node, else ``lightning`` (one task,
    exactly the single-node behaviour). ``srun`` needs at least 2 devices per node:
    snakemake-executor-plugin-slurm 2.8.0 passes ``--ntasks-per-node`` for a launcher
    (``mpi``) job only when it is above 1, and its ``tasks`` means ``--ntasks-per-gpu``
    for a GPU job.
    """
    nodes = int(section.get("nodes", 1))
    devices = int(section.get("devices_per_node", 1))
    threads = int(threads) if threads else int(section.get("threads", 1))
    mode = str(section.get("launch", "auto"))
    if nodes < 1:
        raise ConfigError(f"config.{name}.nodes: {nodes}; at least 1")
    if mode not in ("auto", "lightning", "srun"):
        raise ConfigError(f"config.{name}.launch: {mode!r}; one of auto, lightning, srun")
    launch = ("srun" if nodes > 1 else "lightning") if mode == "auto" else mode
    if nodes > 1 and launch == "lightning":
        raise ConfigError(f"config.{name}.launch: lightning starts the ranks of one node only, but "
                          f"{name}.nodes is {nodes}; set launch: auto (srun) or nodes: 1")
    if launch == "srun" and devices < 2:
        raise ConfigError(
            f"config.{name}: launch srun with devices_per_node {devices} (nodes {nodes}): one task per device "
            "is requested with --ntasks-per-node, which snakemake-executor-plugin-slurm 2.8.0 sets only above 1; "
            f"use {name}.devices_per_node >= 2, or nodes: 1 and launch: auto")
    return TrainingRequest(nodes, devices, max(1, threads // max(1, devices)), launch)


def training_resources(section: Mapping[str, Any], name: str = "pretrain", threads: int | None = None) -> dict[str, Any]:
    """Snakemake ``resources`` of a training rule (see :func:`training_request`).

    One task (``launch`` lightning): ``{"gpu": devices_per_node}``, as every single-node
    run asked before. ``srun``: ``nodes``, ``tasks_per_node`` (= devices per node),
    ``cpus_per_task`` (= ``threads`` / devices per node), ``gpu`` (the job's total:
    the plugin passes ``gpu`` as ``--gpus``, a count for the whole job) and ``mpi:
    "srun"`` (the jobstep plugin then runs the rule's script once, in the batch step,
    and :mod:`cinefm.train.launch` starts the ranks with ``srun``). Placement (partition,
    GPU model, account) stays in the profile.
    """
    req = training_request(section, name, threads)
    if req.launch == "lightning":
        return {"gpu": req.devices_per_node}
    return {"gpu": req.devices_per_node * req.nodes, "nodes": req.nodes, "tasks_per_node": req.devices_per_node,
            "cpus_per_task": req.cpus_per_device, "mpi": "srun"}
