"""Callbacks and Trainer plugins shared by the training stages.

- :class:`AtomicCheckpointIO`  checkpoints written to a temporary file and renamed, so a job
  killed while saving never leaves a truncated ``last.ckpt`` behind.
- :class:`LastCheckpoint`      ``state/last.ckpt`` overwritten after every training epoch
  (the resume point after a preemption).
- :func:`periodic_checkpoints` every ``every`` epochs, keeping all or the newest ``keep``.
- :class:`EpochSummary`        one log line per epoch (metrics, seconds, clips/s): the record
  in a Snakemake log file, where no progress bar is drawn.
- :func:`progress_bar`         tqdm / rich / none, ``auto`` = tqdm only on a terminal.
- :func:`extra_loggers`        optional TensorBoard / Weights & Biases loggers, imported lazily.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cinefm.atomic import atomic_path
from cinefm.config import ConfigError

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose writes go to a temporary file beside the target, then ``os.replace``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class LastCheckpoint(ModelCheckpoint):
    """Write ``<dirpath>/last.ckpt`` at the end of every training epoch, replacing the previous one."""

    def __init__(self, dirpath: str | os.PathLike) -> None:
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                         save_on_train_epoch_end=True, enable_version_counter=False, save_last=False,
                         auto_insert_metric_name=False)


def periodic_checkpoints(dirpath: str | os.PathLike, every: int, keep: int = -1) -> ModelCheckpoint:
    """``epoch<NNNN>.ckpt`` (0-based index of the epoch just finished) every ``every`` epochs.

    ``keep = -1`` keeps all of them (the method: one every 10 epochs); ``keep = k`` the k newest.
    """
    if keep == 0 or keep < -1:
        raise ConfigError(f"pretrain.keep_checkpoints: {keep}; use -1 (keep all) or a positive count")
    newest = {"monitor": "step", "mode": "max"} if keep > 0 else {"monitor": None}
    return ModelCheckpoint(dirpath=dirpath, filename="epoch{epoch:04d}", auto_insert_metric_name=False,
                           every_n_epochs=every, save_top_k=keep, save_on_train_epoch_end=True,
                           enable_version_counter=False, **newest)


class StepTimer(Callback):
    """Wall time and clips of the training steps after ``warmup`` (synchronised on CUDA), for benchmarks.

    ``clips_of(batch)`` counts a batch's clips (default: ``len(batch["video"])``); ``shapes`` keeps
    every batch's ``mask`` shape when the batch has one (views per study).
    """

    def __init__(self, warmup: int, clips_of: Callable[[dict], int] | None = None) -> None:
        self.warmup, self.seconds, self.clips, self._t0 = warmup, 0.0, 0, 0.0
        self.clips_of = clips_of or (lambda batch: len(batch["video"]))
        self.shapes: list[tuple[int, ...]] = []

    def _sync(self, module) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._sync(module)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._sync(module)
        if "mask" in batch:
            self.shapes.append(tuple(batch["mask"].shape))
        if trainer.global_step > self.warmup:
            self.seconds += time.perf_counter() - self._t0
            self.clips += int(self.clips_of(batch))

    @property
    def clips_per_second(self) -> float:
        return self.clips / max(self.seconds, 1e-9)


class EpochSummary(Callback):
    """Log ``epoch i/n: metric=value ... (s, clips/s)`` after every training epoch (rank 0)."""

    def __init__(self) -> None:
        self._start = 0.0
        self._clips = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._clips = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        video = batch.get("video") if isinstance(batch, dict) else None
        self._clips += len(video) if video is not None else 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        seconds = time.perf_counter() - self._start
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if not k.endswith("_step") and torch.as_tensor(v).numel() == 1}
        text = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        rate = self._clips * trainer.world_size / max(seconds, 1e-9)
        log.info("epoch %d/%d: %s (%.1f s, %.1f clips/s)", trainer.current_epoch + 1, trainer.max_epochs, text,
                 seconds, rate)


def progress_bar(kind: str) -> Callback | None:
    """The progress bar callback for ``pretrain.progress_bar`` (auto | tqdm | rich | none)."""
    if kind == "auto":
        kind = "tqdm" if sys.stderr.isatty() else "none"
    if kind == "tqdm":
        return TQDMProgressBar()
    if kind == "rich":
        return RichProgressBar()
    if kind == "none":
        return None
    raise ConfigError(f"progress_bar: {kind!r} is not auto, tqdm, rich or none")


_LOGGER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


def extra_loggers(names: Sequence[str], save_dir: Path, run: str) -> list:
    """TensorBoard and/or W&B loggers (``pretrain.loggers``); their packages are optional."""
    out = []
    for name in names:
        if name not in _LOGGER_PACKAGES:
            raise ConfigError(f"loggers: unknown logger {name!r}; choose from {sorted(_LOGGER_PACKAGES)}")
        if not any(importlib.util.find_spec(p) for p in _LOGGER_PACKAGES[name]):
            raise ConfigError(f"loggers: {name} needs the Python package {_LOGGER_PACKAGES[name][0]!r}, which is "
                              f"not installed — `pip install {_LOGGER_PACKAGES[name][0]}` in this environment, "
                              "or remove it from the loggers list")
        if name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            out.append(TensorBoardLogger(save_dir=str(save_dir), name="tensorboard"))
        else:
            from lightning.pytorch.loggers import WandbLogger

            out.append(WandbLogger(project="cinefm", name=run, save_dir=str(save_dir)))
    return out
