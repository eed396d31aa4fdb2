"""Read cine series from the per-study HDF5 files, lazily and once per process.

Layout (written by ingestion, ``results/h5/{patient}/{study}.h5``): datasets ``4CH``,
``3CH``, ``2CH`` and ``SAX``, each ``(slices, frames, H, W)`` uint8; root attributes
``patient_id``, ``study_id``, ``schema_version``. A view that was not acquired is absent
(or has zero slices). Other 4-D root datasets (e.g. ``A4C`` of echo cohorts) are views
too and come after the four CMR views.

HDF5 handles must not cross a ``fork`` or be pickled into loader workers, so
:class:`H5Reader` opens files on first use in the process that reads them, keeps a small
LRU of open handles, and drops them when pickled or when it finds itself in a new process.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

VIEWS = ("4CH", "3CH", "2CH", "SAX")
LAX_VIEWS = ("4CH", "3CH", "2CH")
SERIES_COLUMNS = ["patient_id", "study_id", "h5", "view", "slice", "frames", "height", "width"]


class DataError(ValueError):
    """An input of the data layer is missing or malformed; the message names it and the fix."""


class SeriesReader(Protocol):
    """Anything that returns frames (``T, H, W`` uint8) of one series of one view of one study."""

    def read(self, h5: str, view: str, slice_index: int,
             frames: np.ndarray | None = None) -> np.ndarray: ...


class H5Reader:
    """Read frames of series from study HDF5 files, opened lazily per process (module docstring)."""

    def __init__(self, max_open: int = 64) -> None:
        if max_open < 1:
            raise DataError(f"config.data.max_open_files must be >= 1, got {max_open}")
        self.max_open = max_open
        self._files: OrderedDict[str, tuple[object, dict]] = OrderedDict()  # path -> (file, datasets)
        self._pid = os.getpid()

    def _entry(self, path: str) -> tuple[object, dict]:
        import h5py

        if self._pid != os.getpid():  # forked after opening: the parent's handles are not ours
            self._files = OrderedDict()
            self._pid = os.getpid()
        entry = self._files.get(path)
        if entry is None:
            try:
                # default locking: a per-file flag would clash with other opens of the same file
                # in this process; on file systems without flock set HDF5_USE_FILE_LOCKING=FALSE
                entry = (h5py.File(path, "r"), {})
            except OSError as err:
                raise DataError(f"{path}: cannot open HDF5 file ({err}); rerun ingestion for "
                                "this study or drop it from results/ingest/studies.csv") from err
            self._files[path] = entry
            while len(self._files) > self.max_open:
                _, (old, _) = self._files.popitem(last=False)
                old.close()
        else:
            self._files.move_to_end(path)
        return entry

    def read(self, h5: str, view: str, slice_index: int,
             frames: np.ndarray | None = None) -> np.ndarray:
        """Frames ``frames`` (default: all) of slice ``slice_index`` of ``view``: ``(T, H, W)`` uint8.

        When frames are stored in separate chunks (or unchunked) only the requested frames
        are read; with one chunk per slice the slice is decompressed once and indexed.
        """
        fh, datasets = self._entry(h5)
        ds = datasets.get(view)
        if ds is None:
            if view not in fh:
                raise DataError(f"{h5}: no dataset {view!r}; the series index is stale — rebuild it")
            ds = datasets[view] = fh[view]
        if frames is None:
            return np.asarray(ds[slice_index])
        if ds.chunks is not None and ds.chunks[1] == ds.shape[1]:  # one chunk: decompress once
            return np.asarray(ds[slice_index])[frames]
        # frames stored apart: read each needed frame once (h5py fancy indexing is far slower)
        uniq, inverse = np.unique(frames, return_inverse=True)
        out = np.empty((len(uniq), *ds.shape[2:]), dtype=ds.dtype)
        for k, f in enumerate(uniq.tolist()):
            ds.read_direct(out, np.s_[slice_index, f], np.s_[k])
        return out[inverse]

    def close(self) -> None:
        """Close every handle this process opened."""
        if self._pid == os.getpid():
            for fh, _ in self._files.values():
                fh.close()
        self._files = OrderedDict()

    def __getstate__(self) -> dict:
        return {"max_open": self.max_open}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_open"])


class MemoryReader:
    """Serve series from arrays held in memory (benchmark reference, preloaded small sets)."""

    def __init__(self, arrays: Mapping[tuple[str, str], np.ndarray]) -> None:
        self.arrays = dict(arrays)  # (h5 path, view) -> (slices, frames, H, W) uint8

    @classmethod
    def from_h5(cls, paths: list[str]) -> MemoryReader:
        """Load every view of the given study files into memory."""
        import h5py

        arrays = {}
        for path in paths:
            with h5py.File(path, "r") as fh:
                for view in views_of(fh):
                    arrays[(str(path), view)] = fh[view][()]
        return cls(arrays)

    def read(self, h5: str, view: str, slice_index: int,
             frames: np.ndarray | None = None) -> np.ndarray:
        """Frames ``frames`` (default: all) of slice ``slice_index`` of ``view``: ``(T, H, W)`` uint8."""
        series = self.arrays[(h5, view)][slice_index]
        return series if frames is None else series[frames]


def views_of(fh) -> list[str]:
    """View datasets of an open study file: CMR views in ``VIEWS`` order, then other 4-D datasets."""
    import h5py

    others = sorted(k for k in fh.keys() if k not in VIEWS and isinstance(fh[k], h5py.Dataset)
                    and fh[k].ndim == 4)
    return [v for v in VIEWS if v in fh] + others


def resolve_h5_paths(studies: pd.DataFrame, base_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Return ``studies`` with column ``h5`` made absolute (relative paths join ``base_dir``, default cwd)."""
    if "h5" not in studies.columns:
        raise DataError("study manifest: column 'h5' (path of the study's HDF5 file) is missing")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    paths = [str(p if Path(p).is_absolute() else (base / p)) for p in studies["h5"].astype(str)]
    return studies.assign(h5=paths)


def scan_series(studies: pd.DataFrame) -> pd.DataFrame:
    """One row per series (a LAX view or one SAX slice) of the given studies (``SERIES_COLUMNS``).

    ``studies`` needs ``patient_id``, ``study_id``, ``h5``. Only dataset shapes are read.
    A file whose root ``study_id`` attribute disagrees with the manifest is an error.
    """
    import h5py

    rows = []
    for rec in studies[["patient_id", "study_id", "h5"]].itertuples(index=False):
        path = str(rec.h5)
        if not Path(path).is_file():
            raise DataError(f"{path}: HDF5 file of study {rec.study_id} not found; rerun ingestion "
                            "or fix the 'h5' column of results/ingest/studies.csv")
        with h5py.File(path, "r") as fh:
            attr = fh.attrs.get("study_id")
            if attr is not None:
                attr = attr.decode() if isinstance(attr, bytes) else str(attr)
                if attr != str(rec.study_id):
                    raise DataError(f"{path}: root attribute study_id={attr} but the manifest says "
                                    f"{rec.study_id}; the manifest and the HDF5 tree are out of sync")
            for view in views_of(fh):
                shape = fh[view].shape
                if len(shape) != 4:
                    raise DataError(f"{path}: dataset {view} has shape {shape}; expected "
                                    "(slices, frames, H, W)")
                n_slices, n_frames, height, width = (int(x) for x in shape)
                rows.extend((rec.patient_id, rec.study_id, path, view, s, n_frames, height, width)
                            for s in range(n_slices))
    return pd.DataFrame(rows, columns=SERIES_COLUMNS)


def drop_short_series(series: pd.DataFrame, min_frames: int) -> tuple[pd.DataFrame, int]:
    """Drop series with fewer than ``min_frames`` frames; return the rest and how many were dropped.

    Series with at least ``min_frames`` but fewer than T frames are kept: temporal sampling
    repeats frames (see :mod:`cinefm.data.temporal`).
    """
    short = series["frames"] < min_frames
    if short.any():
        log.info("left out %d series with fewer than %d frames", int(short.sum()), min_frames)
    return series[~short].reset_index(drop=True), int(short.sum())
