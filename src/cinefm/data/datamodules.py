"""Lightning DataModules: they own the splits, the datasets and the loaders.

Inputs (all produced by earlier rules):

* ``splits_csv`` -- ``results/splits/splits.csv`` (:mod:`cinefm.splits`), checked for
  leakage when read;
* ``studies_csv`` -- study manifest(s), ``results/ingest/studies.csv``: one row per
  study with ``patient_id``, ``study_id``, ``h5_relpath`` (under ``results/h5``) or ``h5``,
  and ``status`` (``failed`` rows are skipped); external cohorts add their own manifest
  (:func:`read_manifest`);
* pre-training: the indexed report JSON and the tokenizer folder (for [CLS]/[SEP]/[PAD]);
* fine-tuning: ``labels.csv`` (:mod:`cinefm.data.targets`); every other setting comes from
  the run's :class:`~cinefm.train.recipe.FinetuneRecipe` (:meth:`StudyDataModule.from_recipe`).

Training loaders use :class:`ResumableSampler` (a
:class:`~cinefm.data.seeding.SeededSampler`: same seed -> same batches for any number of
workers; a restarted job can continue an epoch where its checkpoint left it) and :func:`~cinefm.data.seeding.seed_worker`; HDF5
files are opened lazily inside each worker. ``exclusions`` counts what was left out, by
reason, after ``setup``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader

from cinefm.data.augment import TemporalAugMix
from cinefm.data.collate import ClipCollate, collate_studies
from cinefm.data.datasets import ClipDataset, StudyDataset
from cinefm.data.h5 import DataError, H5Reader, drop_short_series, resolve_h5_paths, scan_series
from cinefm.data.seeding import SeededSampler, seed_worker
from cinefm.data.targets import load_targets
from cinefm.data.text import ReportSource, SpecialTokens, load_special_tokens
from cinefm.data.transforms import ClipSpec, ClipTransform, clip_kwargs
from cinefm.splits import FractionSubset, read_splits, train_fraction_subset

if TYPE_CHECKING:
    from cinefm.train.recipe import FinetuneRecipe

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


def manifest_h5_root(path: PathLike) -> Path:
    """Where a manifest's ``h5_relpath`` points: ``h5/`` beside it (an external cohort's
    ``results/external/<cohort>/studies.csv``), else ``h5/`` beside its folder (ingestion's
    ``results/ingest/studies.csv`` → ``results/h5``)."""
    path = Path(path)
    beside = path.parent / "h5"
    return beside if beside.is_dir() else path.parent.parent / "h5"


def read_manifest(paths: PathLike | Sequence[PathLike], h5_root: PathLike | None = None) -> pd.DataFrame:
    """Concatenate study manifests into ``patient_id, study_id, h5, ...`` with ``h5`` absolute.

    A manifest gives the file as ``h5`` (absolute or relative to the working directory) or,
    as ingestion writes it, ``h5_relpath`` relative to ``h5_root`` (default:
    :func:`manifest_h5_root`). Rows with
    ``status`` ``failed`` have no file and are left out.
    """
    frames = []
    for path in [paths] if isinstance(paths, str | os.PathLike) else paths:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: study manifest not found; run ingestion (results/ingest/studies.csv)")
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"patient_id", "study_id"} - set(table.columns)
        if missing or not {"h5", "h5_relpath"} & set(table.columns):
            raise DataError(f"{path}: a study manifest needs patient_id, study_id and h5 or h5_relpath; "
                            f"found {sorted(table.columns)}")
        if "status" in table.columns:
            failed = table["status"].eq("failed")
            if failed.any():
                log.info("%s: %d studies failed extraction and have no HDF5 file", path, int(failed.sum()))
            table = table[~failed]
        if "h5" not in table.columns:
            root = Path(h5_root) if h5_root is not None else manifest_h5_root(path)
            table = table.assign(h5=[str(root / r) for r in table["h5_relpath"]])
        frames.append(resolve_h5_paths(table))
    return pd.concat(frames, ignore_index=True)


def series_of(rows: pd.DataFrame, manifest: pd.DataFrame, min_frames: int) -> tuple[pd.DataFrame, Counter]:
    """Series of the studies in ``rows`` (a slice of the splits table), and what was left out."""
    merged = rows[["patient_id", "study_id"]].merge(
        manifest[["patient_id", "study_id", "h5"]], on="study_id", how="left", suffixes=("", "_manifest"))
    wrong = merged["patient_id_manifest"].notna() & (merged["patient_id"] != merged["patient_id_manifest"])
    if wrong.any():
        r = merged[wrong].iloc[0]
        raise DataError(f"study {r['study_id']}: patient {r['patient_id']} in the splits but "
                        f"{r['patient_id_manifest']} in the manifest; rerun the splits rule")
    counts = Counter({"studies_without_h5": int(merged["h5"].isna().sum())})
    series = scan_series(merged.dropna(subset=["h5"]))
    series, counts["short_series"] = drop_short_series(series, min_frames)
    counts["studies_without_series"] = int(len(merged) - counts["studies_without_h5"]
                                           - series["study_id"].nunique())
    return series, counts


def _augmix(params: Mapping | None) -> TemporalAugMix | None:
    """AugMix of config ``data.augmix`` (the schema requires every key), or None when off."""
    return TemporalAugMix(**params) if params else None


class ResumableSampler(SeededSampler):
    """A :class:`SeededSampler` whose next pass can start part-way through a given epoch.

    ``resume_at(epoch, skip)`` makes the next pass use ``epoch``'s order (and item seeds)
    and leave out its first ``skip`` items: a job restarted from a mid-epoch checkpoint
    then sees exactly the batches the interrupted job had not trained on yet. Later passes
    are whole epochs again.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(n, seed, shuffle)
        self._skip = 0

    def resume_at(self, epoch: int, skip: int) -> None:
        """Start the next pass at item ``skip`` of epoch ``epoch``."""
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")
        self.epoch, self._skip = int(epoch), int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        items = list(super().__iter__())
        skip, self._skip = self._skip, 0
        return iter(items[skip:])


def _loader(dataset, batch_size: int, num_workers: int, collate, seed: int, train: bool,
            drop_last: bool = False, resume: tuple[int, int] | None = None) -> DataLoader:
    """``resume = (epoch, batches)``: the training pass starts after ``batches`` batches of ``epoch``."""
    sampler = ResumableSampler(len(dataset), seed, shuffle=True) if train else None
    if sampler is not None and resume is not None:
        sampler.resume_at(resume[0], resume[1] * batch_size)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=num_workers,
        collate_fn=collate, worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed), persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(), drop_last=drop_last and len(dataset) >= batch_size,
    )


class PretrainDataModule(L.LightningDataModule):
    """Clips of the pre-training patients (splits stage ``pretrain``) paired with report sentences."""

    def __init__(self, splits_csv: PathLike, studies_csv: PathLike | Sequence[PathLike],
                 reports: PathLike | Mapping[str, Mapping], tokenizer: PathLike | SpecialTokens, *,
                 frames: int, size: int, sentences: int, text_max_tokens: int, batch_size: int,
                 num_workers: int = 0, seed: int = 0, mean: float = 0.45, std: float = 0.225,
                 motion_gain: float = 0.0, motion_crop: float = 1.0, augmix: Mapping | None = None,
                 min_frames: int = 2, max_open_files: int = 64, drop_last: bool = True) -> None:
        super().__init__()
        self.splits_csv, self.studies_csv = splits_csv, studies_csv
        self.reports = (ReportSource(reports=reports) if isinstance(reports, Mapping)
                        else ReportSource(path=reports))
        self.special = tokenizer if isinstance(tokenizer, SpecialTokens) else load_special_tokens(tokenizer)
        self.spec = ClipSpec(frames=frames, size=size, mean=mean, std=std, motion_gain=motion_gain,
                             motion_crop=motion_crop)
        self.sentences, self.text_max_tokens = sentences, text_max_tokens
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.augmix, self.min_frames, self.max_open_files = augmix, min_frames, max_open_files
        self.drop_last = drop_last
        self.datasets: dict[str, ClipDataset] = {}
        self.exclusions: Counter = Counter()

    @classmethod
    def from_config(cls, config: Mapping, *, splits_csv: PathLike, studies_csv: PathLike,
                    reports: PathLike, tokenizer: PathLike, **overrides) -> PretrainDataModule:
        """Build from the pipeline configuration (models.video, pretrain, data sections)."""
        data, pre = config["data"], config["pretrain"]
        kwargs = dict(**clip_kwargs(config), sentences=pre["sentences_per_step"],
                      text_max_tokens=data["text_max_tokens"], batch_size=pre["batch_size"],
                      num_workers=pre["num_workers"], seed=data["seed"], augmix=data["augmix"],
                      min_frames=data["min_frames"], max_open_files=data["max_open_files"])
        kwargs.update(overrides)
        return cls(splits_csv, studies_csv, reports, tokenizer, **kwargs)

    def setup(self, stage: str | None = None) -> None:
        """Read splits and manifest, index the series, build the train/val datasets (once)."""
        if self.datasets:
            return
        splits = read_splits(self.splits_csv)
        manifest = read_manifest(self.studies_csv)
        for split in ("train", "val"):
            rows = splits[(splits["stage"] == "pretrain") & (splits["split"] == split)]
            series, counts = series_of(rows, manifest, self.min_frames)
            train = split == "train"
            transform = ClipTransform(self.spec, train=train, augment=_augmix(self.augmix) if train else None)
            ds = ClipDataset(series, self.reports, transform, sentences=self.sentences,
                             special=self.special, text_max_tokens=self.text_max_tokens,
                             seed=self.seed, reader=H5Reader(self.max_open_files))
            self.datasets[split] = ds
            self.exclusions.update({f"{split}/{k}": v for k, v in (counts + ds.exclusions).items()})
            log.log(logging.INFO if len(ds) else logging.WARNING, "pre-training %s: %d clips from %d studies",
                    split, len(ds), ds.series["study_id"].nunique())

    def train_dataloader(self) -> DataLoader:
        return _loader(self.datasets["train"], self.batch_size, self.num_workers,
                       ClipCollate(self.special.pad), self.seed, train=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return _loader(self.datasets["val"], self.batch_size, self.num_workers,
                       ClipCollate(self.special.pad), self.seed, train=False)


class StudyLoaders(L.LightningDataModule):
    """Loaders of per-study datasets (``self.datasets[split]``), with a resumable training order.

    Subclasses set ``datasets``, ``batch_size``, ``num_workers``, ``seed`` and ``resume`` (None).
    """

    def resume_train_at(self, epoch: int, batches: int) -> None:
        """Make the next training loader continue epoch ``epoch`` after its first ``batches`` batches."""
        self.resume = (int(epoch), int(batches))

    def dataloader(self, split: str) -> DataLoader:
        """Loader of ``train`` (shuffled, seeded; see :meth:`resume_train_at`), ``val`` or ``test`` (in order)."""
        train = split == "train"
        resume, self.resume = (self.resume, None) if train else (None, self.resume)
        return _loader(self.datasets[split], self.batch_size, self.num_workers, collate_studies,
                       self.seed, train=train, resume=resume)

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train")

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test")


def close_readers(datamodule) -> None:
    """Close the HDF5 handles the datamodule's datasets opened in this process (a later run may reopen them)."""
    for dataset in getattr(datamodule, "datasets", {}).values():
        close = getattr(getattr(dataset, "reader", None), "close", None)
        if close is not None:
            close()


class StudyDataModule(StudyLoaders):
    """Multi-view studies of the downstream patients with fine-tuning targets.

    ``train`` is the downstream training set, or a ``train_fraction`` of its patients drawn
    with ``fraction_seed`` (:func:`cinefm.splits.train_fraction_subset`; recorded in
    ``self.fraction``); ``val`` the downstream validation set; ``test`` the downstream test
    set, or with ``test_stage="external"`` the external cohorts (optionally only
    ``test_cohorts``).
    """

    def __init__(self, splits_csv: PathLike, studies_csv: PathLike | Sequence[PathLike],
                 labels_csv: PathLike | Sequence[PathLike], tasks: Sequence[str], *, frames: int,
                 size: int, batch_size: int, num_workers: int = 0, seed: int = 0,
                 mean: float = 0.45, std: float = 0.225, motion_gain: float = 0.0, motion_crop: float = 1.0,
                 sax_fraction: float = 1.0, train_fraction: float = 1.0, fraction_seed: int = 0,
                 heart_failure_lvef: float = 40.0, augmix: Mapping | None = None,
                 min_frames: int = 2, max_open_files: int = 64, test_stage: str = "downstream",
                 test_cohorts: Sequence[str] | None = None) -> None:
        super().__init__()
        if test_stage not in ("downstream", "external"):
            raise ValueError(f"test_stage must be 'downstream' or 'external', got {test_stage!r}")
        self.splits_csv, self.studies_csv, self.labels_csv = splits_csv, studies_csv, labels_csv
        self.tasks = list(tasks)
        self.spec = ClipSpec(frames=frames, size=size, mean=mean, std=std, motion_gain=motion_gain,
                             motion_crop=motion_crop)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.sax_fraction, self.train_fraction, self.fraction_seed = sax_fraction, train_fraction, fraction_seed
        self.heart_failure_lvef, self.augmix = heart_failure_lvef, augmix
        self.min_frames, self.max_open_files = min_frames, max_open_files
        self.test_stage, self.test_cohorts = test_stage, test_cohorts
        self.datasets: dict[str, StudyDataset] = {}
        self.exclusions: Counter = Counter()
        self.fraction: FractionSubset | None = None
        self.resume: tuple[int, int] | None = None  # (epoch, batches done) of a restarted job

    @classmethod
    def from_recipe(cls, recipe: FinetuneRecipe, *, splits_csv: PathLike,
                    studies_csv: PathLike | Sequence[PathLike], labels_csv: PathLike | Sequence[PathLike],
                    **overrides) -> StudyDataModule:
        """Build from a run's :class:`~cinefm.train.recipe.FinetuneRecipe` (tasks, clip, data, fraction)."""
        d = recipe.data
        kwargs = dict(frames=recipe.clip.frames, size=recipe.clip.size, mean=d.mean, std=d.std,
                      motion_gain=d.motion_gain, motion_crop=d.motion_crop, batch_size=d.batch_size,
                      num_workers=d.num_workers, seed=d.seed, sax_fraction=d.sax_fraction,
                      train_fraction=recipe.fraction, fraction_seed=recipe.fraction_seed,
                      heart_failure_lvef=recipe.heart_failure_lvef, augmix=d.augmix, min_frames=d.min_frames,
                      max_open_files=d.max_open_files)
        kwargs.update(overrides)
        return cls(splits_csv, studies_csv, labels_csv, recipe.tasks, **kwargs)

    def _rows(self, splits: pd.DataFrame) -> dict[str, pd.DataFrame]:
        self.fraction = train_fraction_subset(splits, self.train_fraction, self.fraction_seed)
        log.info("training on %d of %d downstream training patients (fraction %.3g, seed %d)",
                 self.fraction.n_patients, self.fraction.n_available, self.fraction.fraction,
                 self.fraction.seed)
        test = splits[(splits["stage"] == self.test_stage) & (splits["split"] == "test")]
        if self.test_cohorts is not None:
            test = test[test["cohort"].isin(self.test_cohorts)]
        val = splits[(splits["stage"] == "downstream") & (splits["split"] == "val")]
        return {"train": self.fraction.studies, "val": val, "test": test}

    def setup(self, stage: str | None = None) -> None:
        """Read splits, manifest(s) and labels; build the train/val/test datasets (once)."""
        if self.datasets:
            return
        splits = read_splits(self.splits_csv)
        manifest = read_manifest(self.studies_csv)
        labels = self.labels_csv if isinstance(self.labels_csv, Sequence) and not isinstance(
            self.labels_csv, str) else [self.labels_csv]
        targets = pd.concat([load_targets(p, self.tasks, self.heart_failure_lvef) for p in labels])
        for split, rows in self._rows(splits).items():
            self.add_split(split, rows, manifest, targets)

    def add_split(self, split: str, rows: pd.DataFrame, manifest: pd.DataFrame, targets: pd.DataFrame) -> StudyDataset:
        """Build ``datasets[split]`` from rows of a splits table (``train``: augmented, shuffled clips)."""
        series, counts = series_of(rows, manifest, self.min_frames)
        train = split == "train"
        transform = ClipTransform(self.spec, train=train, augment=_augmix(self.augmix) if train else None)
        ds = StudyDataset(series, targets, transform, seed=self.seed, sax_fraction=self.sax_fraction,
                          reader=H5Reader(self.max_open_files))
        self.datasets[split] = ds
        self.exclusions.update({f"{split}/{k}": v for k, v in (counts + ds.exclusions).items()})
        log.log(logging.INFO if len(ds) else logging.WARNING, "fine-tuning %s: %d studies", split, len(ds))
        return ds
