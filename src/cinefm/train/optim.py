"""Optimizers and learning-rate schedules named in experiment files (``optimizer:``, ``scheduler:``).

The MRI experiments train with AdamW and the config's ``finetune`` settings; an experiment
that brings its own recipe names it, e.g. EchoNet-Dynamic's (Ouyang et al., Nature 2020;
echonet/dynamic ``utils/video.py``): SGD, lr 1e-4, momentum 0.9, weight decay 1e-4, lr × 0.1
every 15 epochs (``torch.optim.lr_scheduler.StepLR``). The config's own recipe can ask for a
linear warm-up and a cosine decay to 0 over the run (``cosine``, stepped per batch).

The specs are plain frozen dataclasses (no torch import), so experiment files can be read
while the workflow DAG is built; :func:`build_optimization` makes the torch objects.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("none", "step", "cosine")


@dataclass(frozen=True)
class OptimizerSpec:
    """``name`` (adamw | sgd), ``lr``, ``momentum`` (SGD only), ``weight_decay``."""

    name: str
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer.name: {self.name!r} is not one of {OPTIMIZERS}")
        if self.lr <= 0 or self.momentum < 0 or self.weight_decay < 0:
            raise ValueError(f"optimizer: lr > 0, momentum >= 0 and weight_decay >= 0 needed, got {self}")

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> OptimizerSpec:
        return cls(str(doc["name"]), float(doc["lr"]), float(doc.get("momentum", 0.0)),
                   float(doc.get("weight_decay", 0.0)))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SchedulerSpec:
    """``name`` (none | step | cosine); step: lr × ``gamma`` every ``step_size`` epochs; cosine:
    linear warm-up over ``warmup_fraction`` of the run's steps, then half a cosine to 0."""

    name: str = "none"
    step_size: int = 1
    gamma: float = 0.1
    warmup_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in SCHEDULERS:
            raise ValueError(f"scheduler.name: {self.name!r} is not one of {SCHEDULERS}")
        if self.step_size < 1 or self.gamma <= 0 or not 0.0 <= self.warmup_fraction <= 0.5:
            raise ValueError(f"scheduler: step_size >= 1, gamma > 0 and warmup_fraction in [0, 0.5] needed, "
                             f"got {self}")

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> SchedulerSpec:
        return cls(str(doc["name"]), int(doc.get("step_size", 1)), float(doc.get("gamma", 0.1)),
                   float(doc.get("warmup_fraction", 0.0)))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_optimizer(params: Iterable, spec: OptimizerSpec):
    """``torch.optim.SGD(lr, momentum, weight_decay)`` or ``torch.optim.AdamW(lr, weight_decay)``."""
    import torch

    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor at ``step`` of ``total``: linear from 0 over ``warmup`` steps, then
    half a cosine from 1 to 0 at ``total`` (Loshchilov & Hutter 2017, without restarts)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimization(params: Iterable, optimizer: Mapping[str, Any],
                       scheduler: Mapping[str, Any] | None = None, total_steps: int | None = None) -> Any:
    """What ``LightningModule.configure_optimizers`` returns for these specs (mappings, as saved in hparams).

    With a ``step`` scheduler: ``{"optimizer": opt, "lr_scheduler": {"scheduler": StepLR, "interval": "epoch"}}``;
    with ``cosine``: a per-step ``LambdaLR`` over ``total_steps`` (the trainer's stepping batches).
    """
    import torch

    opt = build_optimizer(params, OptimizerSpec.from_mapping(optimizer))
    sched = SchedulerSpec.from_mapping(scheduler) if scheduler else SchedulerSpec()
    if sched.name == "none":
        return opt
    if sched.name == "cosine":
        if not total_steps or total_steps < 1:
            raise ValueError(f"scheduler cosine needs the run's total steps, got {total_steps}")
        factor = functools.partial(warmup_cosine, total=int(total_steps),
                                   warmup=int(round(sched.warmup_fraction * total_steps)))
        cosine = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": cosine, "interval": "step", "frequency": 1}}
    step = torch.optim.lr_scheduler.StepLR(opt, step_size=sched.step_size, gamma=sched.gamma)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": step, "interval": "epoch", "frequency": 1}}


__all__ = ["OPTIMIZERS", "SCHEDULERS", "OptimizerSpec", "SchedulerSpec", "build_optimization", "build_optimizer",
           "warmup_cosine"]
