"""Echo videos (EchoNet-Dynamic) for fine-tuning: the release's own split, one view, EchoNet's clip sampling.

Inputs, written by the ``echonet`` rule (:mod:`cinefm.external.echonet`) under
``results/external/echonet/``: ``studies.csv`` (``patient_id, study_id, h5_relpath, status,
split``; ``split`` is the release's TRAIN/VAL/TEST in lower case), ``h5/`` beside it (view
``A4C``, ``(1, frames, S, S)`` uint8) and ``labels.csv`` (``study_id, lvef, ...``).

Clip sampling follows EchoNet-Dynamic (Ouyang et al., Nature 2020; ``echonet.datasets.Echo``
with ``length=T, period=p``): T frames every p-th frame, ``i_k = start + k·p``; in training
``start`` is drawn uniformly from the starts whose clip fits in the video, in evaluation
``start = 0``. A video shorter than ``(T − 1)·p + 1`` frames wraps around
(``i_k mod n``; EchoNet pads with black frames instead, which for a loop of a beating heart
would show a cardiac arrest). Frames are then resized/cropped to ``size`` and normalised as
every clip (:mod:`cinefm.data.transforms`); no augmentation (EchoNet-Dynamic's default).

Batches are the fine-tuning study batches (:func:`cinefm.data.collate.collate_studies`)
with one view per study, so :class:`cinefm.train.finetune_module.FinetuneModule` trains on them
unchanged.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cinefm.data.datamodules import StudyLoaders, read_manifest, series_of
from cinefm.data.datasets import StudyDataset
from cinefm.data.h5 import DataError, H5Reader
from cinefm.data.targets import load_targets
from cinefm.data.transforms import ClipSpec, ClipTransform

if TYPE_CHECKING:
    from cinefm.train.recipe import FinetuneRecipe

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
SPLITS = ("train", "val", "test")


def period_indices(n_frames: int, frames: int, period: int, start: int = 0) -> np.ndarray:
    """Frame indices ``(start + k·period) mod n_frames`` for ``k < frames`` (int64)."""
    if n_frames < 1 or frames < 1 or period < 1:
        raise ValueError(f"need n_frames, frames, period >= 1, got {n_frames}, {frames}, {period}")
    return (start + period * np.arange(frames, dtype=np.int64)) % n_frames


def max_start(n_frames: int, frames: int, period: int) -> int:
    """Last start whose clip ``start .. start + (frames − 1)·period`` lies inside the video (0 if none)."""
    return max(0, n_frames - (frames - 1) * period - 1)


class PeriodClipTransform(ClipTransform):
    """:class:`ClipTransform` with EchoNet's sampling (module docstring) instead of whole-loop sampling."""

    def __init__(self, spec: ClipSpec, train: bool, period: int) -> None:
        super().__init__(spec, train=train, augment=None)
        if period < 1:
            raise ValueError(f"clip.period must be >= 1, got {period}")
        self.period = period

    def frame_indices(self, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        """T frames every ``period``-th from a random start (training) or frame 0 (evaluation)."""
        start = int(rng.integers(0, max_start(n_frames, self.spec.frames, self.period) + 1)) if self.train else 0
        return period_indices(n_frames, self.spec.frames, self.period, start)


def release_manifest(studies_csv: PathLike) -> pd.DataFrame:
    """The cohort's manifest with ``h5`` resolved against ``h5/`` beside it and a checked ``split`` column."""
    path = Path(studies_csv)
    manifest = read_manifest(path, h5_root=path.parent / "h5")
    if "split" not in manifest.columns:
        raise DataError(f"{path}: no 'split' column; split_source release needs the release's split "
                        "(rerun the echonet rule, which writes it)")
    bad = sorted(set(manifest["split"]) - set(SPLITS))
    if bad:
        raise DataError(f"{path}: split values {bad} are not train/val/test; rerun the echonet rule")
    return manifest


class EchoDataModule(StudyLoaders):
    """Train/val/test studies of an external cohort by its release split, one view, period sampling."""

    def __init__(self, studies_csv: PathLike, labels_csv: PathLike, tasks: Sequence[str], *, view: str | None,
                 frames: int, period: int, size: int, batch_size: int, num_workers: int = 0, seed: int = 0,
                 mean: float = 0.45, std: float = 0.225, heart_failure_lvef: float = 40.0, min_frames: int = 2,
                 max_open_files: int = 64) -> None:
        super().__init__()
        self.studies_csv, self.labels_csv, self.tasks = studies_csv, labels_csv, list(tasks)
        self.view, self.period = view, period
        self.spec = ClipSpec(frames=frames, size=size, mean=mean, std=std)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.heart_failure_lvef, self.min_frames, self.max_open_files = heart_failure_lvef, min_frames, max_open_files
        self.datasets: dict[str, StudyDataset] = {}
        self.exclusions: Counter = Counter()
        self.fraction = None  # the whole release training split (no nested fractions)
        self.resume: tuple[int, int] | None = None

    @classmethod
    def from_recipe(cls, recipe: FinetuneRecipe, *, studies_csv: PathLike, labels_csv: PathLike,
                    **overrides) -> EchoDataModule:
        """Build from a run's :class:`~cinefm.train.recipe.FinetuneRecipe` (view, clip with period, loaders)."""
        if recipe.fraction != 1.0:
            raise DataError(f"experiment {recipe.experiment}: fraction {recipe.fraction} — external cohorts train "
                            "on their whole release training split (fraction: 1.0)")
        d, clip = recipe.data, recipe.clip
        kwargs = dict(view=d.view, frames=clip.frames, period=clip.period, size=clip.size, batch_size=d.batch_size,
                      num_workers=d.num_workers, seed=d.seed, mean=d.mean, std=d.std,
                      heart_failure_lvef=recipe.heart_failure_lvef, min_frames=d.min_frames,
                      max_open_files=d.max_open_files)
        kwargs.update(overrides)
        return cls(studies_csv, labels_csv, recipe.tasks, **kwargs)

    def setup(self, stage: str | None = None) -> None:
        """Read manifest and labels; build the train/val/test datasets of the release split (once)."""
        if self.datasets:
            return
        manifest = release_manifest(self.studies_csv)
        targets = load_targets(self.labels_csv, self.tasks, self.heart_failure_lvef)
        for split in SPLITS:
            rows = manifest[manifest["split"] == split]
            series, counts = series_of(rows, manifest, self.min_frames)
            if self.view is not None:
                other = series["view"] != self.view
                counts["series_of_other_views"] = int(other.sum())
                series = series[~other].reset_index(drop=True)
            transform = PeriodClipTransform(self.spec, train=split == "train", period=self.period)
            ds = StudyDataset(series, targets, transform, seed=self.seed, reader=H5Reader(self.max_open_files))
            self.datasets[split] = ds
            self.exclusions.update({f"{split}/{k}": v for k, v in (counts + ds.exclusions).items()})
            log.log(logging.INFO if len(ds) else logging.WARNING, "echo %s: %d studies (view %s)", split, len(ds),
                    self.view or "all")


__all__ = ["EchoDataModule", "PeriodClipTransform", "max_start", "period_indices", "release_manifest"]
