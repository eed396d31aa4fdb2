"""``embeddings.h5``: projected embeddings of the validation clips and their reports.

Layout (all embeddings L2-normalised, float32, ``P = models.projection_dim``)::

    /clips/video       (n_clips, P)   one row per series (a LAX view or one SAX slice)
    /clips/study_id    (n_clips,)     str
    /clips/patient_id  (n_clips,)     str
    /clips/view        (n_clips,)     str  (4CH, 3CH, 2CH, SAX, ...)
    /clips/slice       (n_clips,)     int64
    /reports/text      (n_reports, P) one row per study: its whole report
    /reports/study_id  (n_reports,)   str
    /reports/patient_id(n_reports,)   str
    attrs: run, checkpoint, epoch, split, projection_dim, schema_version

Every study of ``/clips`` has exactly one row in ``/reports``; rows are ordered by
study id (clips within a study in the data layer's view order).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cinefm.atomic import atomic_path

SCHEMA_VERSION = 1


class EmbeddingError(ValueError):
    """An embeddings file is missing or inconsistent; the message names it and the fix."""


@dataclass(frozen=True)
class EmbeddingSet:
    """Clip and report embeddings of one split (see the module docstring for the fields)."""

    clip_video: np.ndarray
    clip_study: np.ndarray
    clip_patient: np.ndarray
    clip_view: np.ndarray
    clip_slice: np.ndarray
    report_text: np.ndarray
    report_study: np.ndarray
    report_patient: np.ndarray
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, m = len(self.clip_video), len(self.report_text)
        for name in ("clip_study", "clip_patient", "clip_view", "clip_slice"):
            if len(getattr(self, name)) != n:
                raise EmbeddingError(f"EmbeddingSet.{name} has {len(getattr(self, name))} rows, clip_video {n}")
        for name in ("report_study", "report_patient"):
            if len(getattr(self, name)) != m:
                raise EmbeddingError(f"EmbeddingSet.{name} has {len(getattr(self, name))} rows, report_text {m}")
        if n and m and self.clip_video.shape[1] != self.report_text.shape[1]:
            raise EmbeddingError(f"video embeddings are {self.clip_video.shape[1]}-d but report embeddings "
                                 f"{self.report_text.shape[1]}-d")
        if len(set(self.report_study.tolist())) != m:
            raise EmbeddingError("EmbeddingSet: a study has more than one report row")
        missing = set(self.clip_study.tolist()) - set(self.report_study.tolist())
        if missing:
            raise EmbeddingError(f"EmbeddingSet: {len(missing)} studies have clips but no report embedding "
                                 f"(e.g. {sorted(missing)[0]})")

    @property
    def dim(self) -> int:
        """Embedding size P."""
        return int(self.clip_video.shape[1] if len(self.clip_video) else self.report_text.shape[1])


def _strings(values) -> np.ndarray:
    return np.asarray([str(v) for v in values], dtype=object)


def write_embeddings(emb: EmbeddingSet, path: str | os.PathLike) -> Path:
    """Write ``emb`` to ``path`` (HDF5, atomically)."""
    import h5py

    path = Path(path)
    text = h5py.string_dtype()
    # no object times (track_times=False): the same embeddings give the same bytes (cinefm repro)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        clips, reports = fh.create_group("clips"), fh.create_group("reports")
        clips.create_dataset("video", data=np.asarray(emb.clip_video, dtype=np.float32), track_times=False)
        clips.create_dataset("study_id", data=_strings(emb.clip_study), dtype=text, track_times=False)
        clips.create_dataset("patient_id", data=_strings(emb.clip_patient), dtype=text, track_times=False)
        clips.create_dataset("view", data=_strings(emb.clip_view), dtype=text, track_times=False)
        clips.create_dataset("slice", data=np.asarray(emb.clip_slice, dtype=np.int64), track_times=False)
        reports.create_dataset("text", data=np.asarray(emb.report_text, dtype=np.float32), track_times=False)
        reports.create_dataset("study_id", data=_strings(emb.report_study), dtype=text, track_times=False)
        reports.create_dataset("patient_id", data=_strings(emb.report_patient), dtype=text, track_times=False)
        fh.attrs.update({k: v for k, v in emb.attrs.items() if v is not None})
        fh.attrs["schema_version"] = SCHEMA_VERSION
        fh.attrs["projection_dim"] = emb.dim
    return path


def read_embeddings(path: str | os.PathLike) -> EmbeddingSet:
    """Read an ``embeddings.h5`` written by :func:`write_embeddings`."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise EmbeddingError(f"{path}: embeddings file not found — run the pretrain rule "
                             "(it writes results/pretrain/{run}/embeddings.h5 after training)")
    with h5py.File(path, "r") as fh:
        try:
            c, r = fh["clips"], fh["reports"]
            return EmbeddingSet(
                clip_video=c["video"][()], clip_study=c["study_id"].asstr()[()],
                clip_patient=c["patient_id"].asstr()[()], clip_view=c["view"].asstr()[()],
                clip_slice=c["slice"][()], report_text=r["text"][()], report_study=r["study_id"].asstr()[()],
                report_patient=r["patient_id"].asstr()[()], attrs=dict(fh.attrs),
            )
        except KeyError as err:
            raise EmbeddingError(f"{path}: not an embeddings file ({err}); regenerate it with the "
                                 "pretrain rule") from err
