"""Datasets over the per-study HDF5 files.

* :class:`ClipDataset` (contrastive pre-training): one item per series -- a LAX view or one
  SAX slice -- as a ``(C, T, H, W)`` clip, paired with ``k`` random report sentences.
* :class:`StudyDataset` (fine-tuning): one item per study -- all its series as
  ``(K, C, T, H, W)`` -- with float targets (NaN = unknown). With ``sax_fraction < 1`` (LVEF)
  all LAX views are kept plus a random ``ceil(sax_fraction * n)`` of the SAX slices: a new
  draw per item in training, a fixed draw per study (keyed by its id) in evaluation.

Items are keyed by ``index`` or ``(index, item_seed)`` (see :mod:`cinefm.data.seeding`).
Rules for awkward studies: a missing view is simply absent (the study keeps its other
views; batches carry a view mask); series shorter than ``min_frames`` are left out with a
count (``exclusions``); series shorter than T repeat frames; a study left with no series
(or, for fine-tuning, with no known target) is left out with a count.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from cinefm.data.h5 import VIEWS, H5Reader, SeriesReader
from cinefm.data.seeding import stable_seed, unpack_key
from cinefm.data.text import ReportSource, SpecialTokens, compose_text
from cinefm.data.transforms import ClipTransform

log = logging.getLogger(__name__)

_VIEW_ORDER = {v: i for i, v in enumerate(VIEWS)}


def _ordered(series: pd.DataFrame) -> pd.DataFrame:
    """Series in study order: by study, views 4CH, 3CH, 2CH, SAX (then others), slices ascending."""
    return (series.assign(_v=series["view"].map(_VIEW_ORDER).fillna(len(VIEWS)))
            .sort_values(["study_id", "_v", "view", "slice"], kind="stable")
            .drop(columns="_v").reset_index(drop=True))


def _read_clip(reader: SeriesReader, transform: ClipTransform, h5: str, view: str, slice_index: int,
               n_frames: int, rng: np.random.Generator) -> torch.Tensor:
    """Pick the T frames, read only those, and turn them into a clip."""
    idx = transform.frame_indices(n_frames, rng)
    return transform.from_frames(reader.read(h5, view, slice_index, idx), rng)


class ClipDataset(Dataset):
    """Pre-training pairs: one series as a clip + ``sentences`` random report sentences.

    Item: ``video`` (C, T, H, W) float32, ``input_ids`` (L,) int64, ``study_id``, ``view``,
    ``slice``. Series whose study has no report entry are left out (``exclusions``).
    """

    def __init__(self, series: pd.DataFrame, reports: ReportSource, transform: ClipTransform, *,
                 sentences: int, special: SpecialTokens, text_max_tokens: int, seed: int,
                 reader: SeriesReader | None = None) -> None:
        if sentences < 1:
            raise ValueError(f"config.pretrain.sentences_per_step must be >= 1, got {sentences}")
        has_report = series["study_id"].map(lambda s: s in reports).astype(bool)
        self.exclusions = Counter({"series_without_report": int((~has_report).sum())})
        if self.exclusions["series_without_report"]:
            log.info("left out %d series of %d studies without a report entry",
                     self.exclusions["series_without_report"],
                     series.loc[~has_report, "study_id"].nunique())
        self.series = _ordered(series[has_report])
        self.reports, self.transform = reports, transform
        self.sentences, self.special, self.text_max_tokens = sentences, special, text_max_tokens
        self.seed = seed
        self.reader = reader if reader is not None else H5Reader()

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, item_seed = unpack_key(key, self.seed)
        row = self.series.iloc[index]
        rng = np.random.default_rng(item_seed)
        video = _read_clip(self.reader, self.transform, row["h5"], row["view"], int(row["slice"]),
                           int(row["frames"]), rng)
        ids = compose_text(self.reports.sentence_ids(row["study_id"]), self.sentences, rng,
                           self.text_max_tokens, self.special)
        return {"video": video, "input_ids": ids, "study_id": row["study_id"],
                "view": row["view"], "slice": int(row["slice"])}


class StudyDataset(Dataset):
    """Fine-tuning studies: every (selected) series of a study + its targets.

    Item: ``video`` (K, C, T, H, W) float32, ``views`` list of K view names, ``slices``
    (K,) int64, ``target`` (n_tasks,) float32 (NaN = unknown), ``study_id``, ``patient_id``.
    ``require_target=False`` keeps studies without any known target (inference).
    """

    def __init__(self, series: pd.DataFrame, targets: pd.DataFrame, transform: ClipTransform, *,
                 seed: int, sax_fraction: float = 1.0, reader: SeriesReader | None = None,
                 require_target: bool = True) -> None:
        if not 0.0 < sax_fraction <= 1.0:
            raise ValueError(f"config.finetune.lvef/disease.sax_fraction must lie in (0, 1], got {sax_fraction}")
        self.tasks = list(targets.columns)
        # inference (cinefm.inference.predict) scores studies whose targets are unknown (all NaN)
        known = targets.notna().any(axis=1) if require_target else pd.Series(True, index=targets.index)
        studies = pd.unique(series["study_id"])
        keep = [s for s in studies if s in targets.index and bool(known.get(s, False))]
        self.exclusions = Counter({"studies_without_target": len(studies) - len(keep)})
        if self.exclusions["studies_without_target"]:
            log.info("left out %d studies without any known target for tasks %s",
                     self.exclusions["studies_without_target"], self.tasks)
        series = _ordered(series[series["study_id"].isin(keep)])
        self.studies = list(pd.unique(series["study_id"]))
        self._rows = {sid: grp for sid, grp in series.groupby("study_id", sort=False)}
        self.targets = targets.loc[self.studies].to_numpy(dtype=np.float32).reshape(len(self.studies), len(self.tasks))
        self.transform, self.seed, self.sax_fraction = transform, seed, sax_fraction
        self.reader = reader if reader is not None else H5Reader()

    def __len__(self) -> int:
        return len(self.studies)

    def select_series(self, study_id: str, rng: np.random.Generator) -> pd.DataFrame:
        """All LAX series plus ``ceil(sax_fraction * n_sax)`` SAX slices drawn with ``rng``."""
        rows = self._rows[study_id]
        if self.sax_fraction >= 1.0:
            return rows
        sax = rows[rows["view"] == "SAX"]
        n_keep = math.ceil(self.sax_fraction * len(sax))
        picked = np.sort(rng.choice(len(sax), size=n_keep, replace=False)) if len(sax) else []
        return pd.concat([rows[rows["view"] != "SAX"], sax.iloc[picked]])

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, item_seed = unpack_key(key, self.seed)
        study_id = self.studies[index]
        train_draw = isinstance(key, tuple)
        subset_rng = np.random.default_rng(item_seed if train_draw else stable_seed(self.seed, "sax", study_id))
        rows = self.select_series(study_id, subset_rng)
        rng = np.random.default_rng(item_seed)
        clips = [_read_clip(self.reader, self.transform, r.h5, r.view, int(r.slice), int(r.frames), rng)
                 for r in rows.itertuples(index=False)]
        return {
            "video": torch.stack(clips),
            "views": list(rows["view"]),
            "slices": torch.tensor(rows["slice"].tolist(), dtype=torch.long),
            "target": torch.from_numpy(self.targets[index].copy()),
            "study_id": study_id,
            "patient_id": str(rows["patient_id"].iloc[0]),
        }
