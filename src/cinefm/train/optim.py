"""Optimizers and learning-rate schedules named in experiment files (``optimizer:``, ``scheduler:``).

The MRI experiments train with AdamW and the config's ``finetune`` settings; an experiment
that brings its own recipe names it, e.g. EchoNet-Dynamic's (Ouyang et al., Nature 2020;
echonet/dynamic ``utils/video.py``): SGD, lr 1e-4, momentum 0.9, weight decay 1e-4, lr × 0.1
every 15 epochs (``torch.optim.lr_scheduler.StepLR``).

The specs are plain frozen dataclasses (no torch import), so experiment files can be read
while the workflow DAG is built; :func:`build_optimization` makes the torch objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("none", "step")


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
    """``name`` (none | step); step: lr × ``gamma`` every ``step_size`` epochs."""

    name: str = "none"
    step_size: int = 1
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in SCHEDULERS:
            raise ValueError(f"scheduler.name: {self.name!r} is not one of {SCHEDULERS}")
        if self.step_size < 1 or self.gamma <= 0:
            raise ValueError(f"scheduler: step_size >= 1 and gamma > 0 needed, got {self}")

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> SchedulerSpec:
        return cls(str(doc["name"]), int(doc.get("step_size", 1)), float(doc.get("gamma", 0.1)))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_optimizer(params: Iterable, spec: OptimizerSpec):
    """``torch.optim.SGD(lr, momentum, weight_decay)`` or ``torch.optim.AdamW(lr, weight_decay)``."""
    import torch

    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)


def build_optimization(params: Iterable, optimizer: Mapping[str, Any],
                       scheduler: Mapping[str, Any] | None = None) -> Any:
    """What ``LightningModule.configure_optimizers`` returns for these specs (mappings, as saved in hparams).

    With a ``step`` scheduler: ``{"optimizer": opt, "lr_scheduler": {"scheduler": StepLR, "interval": "epoch"}}``.
    """
    import torch

    opt = build_optimizer(params, OptimizerSpec.from_mapping(optimizer))
    sched = SchedulerSpec.from_mapping(scheduler) if scheduler else SchedulerSpec()
    if sched.name == "none":
        return opt
    step = torch.optim.lr_scheduler.StepLR(opt, step_size=sched.step_size, gamma=sched.gamma)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": step, "interval": "epoch", "frequency": 1}}


__all__ = ["OPTIMIZERS", "SCHEDULERS", "OptimizerSpec", "SchedulerSpec", "build_optimization", "build_optimizer"]
