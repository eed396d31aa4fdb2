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
every clip (:mod:`cinefm.data.transforms`). EchoNet-Dynamic's recipe (``echonet/utils/video.py``,
``run``), when the experiment names it:

- ``pad``: training clips are zero-padded by ``pad`` pixels on every side (after
  normalisation, as ``Echo(pad=12)``) and cropped back to ``size`` at a random offset;
- ``normalization: dataset``: mean and SD of the pixel values of the training split
  (``echonet.utils.get_mean_and_std``: up to 128 training videos, every frame, drawn with a
  fixed seed) instead of ``data.mean``/``data.std``;
- ``test_clips: all``: the final predictions of the val and test videos average the model's
  output over every clip of the video (every start ``0 … n − (T − 1)·p − 1``, ``Echo(clips="all")``);
  validation during training uses one clip per video.

Batches are the fine-tuning study batches (:func:`cinefm.data.collate.collate_studies`)
with one view per study, so :class:`cinefm.train.finetune_module.FinetuneModule` trains on them
unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

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
    """:class:`ClipTransform` with EchoNet's sampling (module docstring) instead of whole-loop sampling,
    and EchoNet's pad-and-random-crop augmentation of training clips (``pad`` pixels, 0 = none)."""

    def __init__(self, spec: ClipSpec, train: bool, period: int, pad: int = 0) -> None:
        super().__init__(spec, train=train, augment=None)
        if period < 1:
            raise ValueError(f"clip.period must be >= 1, got {period}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.period, self.pad = period, pad

    def from_frames(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """As :meth:`ClipTransform.from_frames`; in training then zero-padded by ``pad`` and randomly cropped."""
        clip = super().from_frames(frames, rng)
        if not (self.train and self.pad):
            return clip
        p, (h, w) = self.pad, clip.shape[-2:]
        padded = torch.nn.functional.pad(clip, (p, p, p, p))  # zeros = the normalised mean, as EchoNet
        i, j = (int(v) for v in rng.integers(0, 2 * p + 1, size=2))
        return padded[..., i:i + h, j:j + w].contiguous()

    def frame_indices(self, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        """T frames every ``period``-th from a random start (training) or frame 0 (evaluation)."""
        start = int(rng.integers(0, max_start(n_frames, self.spec.frames, self.period) + 1)) if self.train else 0
        return period_indices(n_frames, self.spec.frames, self.period, start)


def clip_starts(n_frames: int, frames: int, period: int) -> range:
    """Every start of a clip of ``frames`` frames every ``period``-th that fits (EchoNet ``clips="all"``)."""
    return range(max_start(n_frames, frames, period) + 1)


class AllClipsDataset(StudyDataset):
    """Evaluation studies whose item holds every clip of the video (``K`` = the number of starts).

    The clips stand in the ``K`` axis the MIL reads as views; :class:`FinetuneModule` averages
    their outputs instead (``test_clips: all``). Every frame is read once per video.
    """

    def __getitem__(self, key):
        item = super().__getitem__(key)  # targets, ids, views (the one view of the video)
        index = key[0] if isinstance(key, tuple) else key
        row = self.select_series(self.studies[index], np.random.default_rng(0)).iloc[0]
        n = int(row["frames"])
        video = self.reader.read(row["h5"], row["view"], int(row["slice"]))
        t = self.transform
        rng = np.random.default_rng(0)  # evaluation: nothing random
        clips = [t.from_frames(video[period_indices(n, t.spec.frames, t.period, start)], rng)
                 for start in clip_starts(n, t.spec.frames, t.period)]
        item["video"] = torch.stack(clips)
        item["views"] = [row["view"]] * len(clips)
        item["slices"] = torch.zeros(len(clips), dtype=torch.long)
        return item


def dataset_mean_std(series: pd.DataFrame, reader, *, samples: int = 128, seed: int = 0) -> tuple[float, float]:
    """Mean and SD of the pixel values (scaled to [0, 1]) of up to ``samples`` training videos, every frame.

    EchoNet-Dynamic's ``echonet.utils.get_mean_and_std`` (per channel; echo videos are grey, so
    one value): the videos drawn without replacement with a fixed ``seed``.
    """
    if series.empty:
        raise DataError("normalization: dataset needs training videos; the training split is empty")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(series), size=min(samples, len(series)), replace=False)
    n = total = total_sq = 0.0
    for r in series.iloc[np.sort(pick)].itertuples(index=False):
        x = reader.read(r.h5, r.view, int(r.slice)).astype(np.float64) / 255.0
        n += x.size
        total += float(x.sum())
        total_sq += float((x * x).sum())
    mean = total / n
    return mean, float(np.sqrt(max(total_sq / n - mean * mean, 0.0)))


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
                 max_open_files: int = 64, pad: int = 0, normalization: str = "config",
                 test_clips: str = "one") -> None:
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
        if normalization not in ("config", "dataset") or test_clips not in ("one", "all"):
            raise ValueError(f"normalization {normalization!r} (config|dataset), test_clips {test_clips!r} (one|all)")
        self.pad, self.normalization, self.test_clips = pad, normalization, test_clips
        self.predict_datasets: dict[str, StudyDataset] = {}

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
                      max_open_files=d.max_open_files, pad=d.pad, normalization=d.normalization,
                      test_clips=d.test_clips)
        kwargs.update(overrides)
        return cls(studies_csv, labels_csv, recipe.tasks, **kwargs)

    def setup(self, stage: str | None = None) -> None:
        """Read manifest and labels; build the train/val/test datasets of the release split (once)."""
        if self.datasets:
            return
        manifest = release_manifest(self.studies_csv)
        targets = load_targets(self.labels_csv, self.tasks, self.heart_failure_lvef)
        by_split = {}
        for split in SPLITS:
            rows = manifest[manifest["split"] == split]
            series, counts = series_of(rows, manifest, self.min_frames)
            if self.view is not None:
                other = series["view"] != self.view
                counts["series_of_other_views"] = int(other.sum())
                series = series[~other].reset_index(drop=True)
            by_split[split] = (series, counts)
        if self.normalization == "dataset":
            reader = H5Reader(self.max_open_files)
            mean, std = dataset_mean_std(by_split["train"][0], reader, seed=self.seed)
            reader.close()
            self.spec = dataclasses.replace(self.spec, mean=mean, std=std)
            log.info("echo: normalised by the training videos' mean %.4f and SD %.4f (EchoNet's get_mean_and_std)",
                     mean, std)
        for split, (series, counts) in by_split.items():
            transform = PeriodClipTransform(self.spec, train=split == "train", period=self.period,
                                            pad=self.pad if split == "train" else 0)
            ds = StudyDataset(series, targets, transform, seed=self.seed, reader=H5Reader(self.max_open_files))
            self.datasets[split] = ds
            if split != "train" and self.test_clips == "all":
                self.predict_datasets[split] = AllClipsDataset(series, targets, transform, seed=self.seed,
                                                               reader=ds.reader)
            self.exclusions.update({f"{split}/{k}": v for k, v in (counts + ds.exclusions).items()})
            log.log(logging.INFO if len(ds) else logging.WARNING, "echo %s: %d studies (view %s)", split, len(ds),
                    self.view or "all")


    def predict_dataloader_of(self, split: str):
        """The loader of the final predictions: every clip of each video (``test_clips: all``) or one."""
        if split not in self.predict_datasets:
            return self.dataloader(split)
        from cinefm.data.collate import collate_studies
        from cinefm.data.datamodules import _loader

        return _loader(self.predict_datasets[split], self.batch_size, self.num_workers, collate_studies,
                       self.seed, train=False)


__all__ = ["AllClipsDataset", "EchoDataModule", "PeriodClipTransform", "clip_starts", "dataset_mean_std", "max_start", "period_indices", "release_manifest"]
