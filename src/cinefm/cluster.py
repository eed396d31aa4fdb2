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
is the right one. See docs/cluster.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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
    num_nodes = _int_env(env, "SLURM_JOB_NUM_NODES", "SLURM_NNODES") or 1
    ntasks = _int_env(env, "SLURM_NTASKS") or 1

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
    ranks srun never started), and is empty when it is not needed.
    """
    layout = device_layout(env, requested,
                           _cuda_device_count() if cuda_count is None else cuda_count)
    plugins: list[Any] = []
    if layout.launcher == "lightning" and "SLURM_JOB_ID" in env:
        from lightning.fabric.plugins.environments import LightningEnvironment

        plugins.append(LightningEnvironment())
    log.info("Lightning layout: %s", layout)
    return {
        "accelerator": layout.accelerator,
        "devices": layout.devices,
        "num_nodes": layout.num_nodes,
        "strategy": layout.strategy,
        "plugins": plugins,
    }
