"""Fine-tuning targets from ``results/labels/labels.csv``.

Columns used: ``study_id``; one column per disease key with ``1`` / ``0`` / empty (empty =
uncertain -> NaN, masked out of the loss); ``lvef`` (percent, as stated in the report, or
empty -> NaN). The task ``heart_failure`` is derived: ``1`` when ``lvef <
heart_failure_lvef`` (config ``labels.heart_failure_lvef``, paper 40), ``0`` when LVEF is
known and higher, NaN when it is unknown.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.data.h5 import DataError


def target_table(labels: pd.DataFrame, tasks: Sequence[str], heart_failure_lvef: float = 40.0,
                 source: str = "labels table") -> pd.DataFrame:
    """Float targets indexed by ``study_id`` with one column per task (NaN = unknown)."""
    if "study_id" not in labels.columns:
        raise DataError(f"{source}: column 'study_id' missing")
    if not tasks:
        raise DataError("no fine-tuning task given; name disease keys, 'lvef' or 'heart_failure'")
    out = pd.DataFrame(index=pd.Index(labels["study_id"].astype(str), name="study_id"))
    for task in tasks:
        column = "lvef" if task == "heart_failure" else task
        if column not in labels.columns:
            raise DataError(f"{source}: no column {column!r} for task {task!r}; known columns: "
                            f"{sorted(labels.columns)}")
        raw = labels[column].replace("", np.nan)
        values = pd.to_numeric(raw, errors="coerce")
        bad = raw.notna() & values.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{source}: row {i} column {column!r} holds {raw.iloc[i]!r}; expected a "
                            "number or empty")
        values = values.to_numpy(dtype=float)
        if task == "heart_failure":
            values = np.where(np.isnan(values), np.nan, (values < heart_failure_lvef).astype(float))
        elif task != "lvef" and not np.isin(values[~np.isnan(values)], (0.0, 1.0)).all():
            raise DataError(f"{source}: column {task!r} must hold 1, 0 or empty")
        out[task] = values
    if out.index.duplicated().any():
        raise DataError(f"{source}: study {out.index[out.index.duplicated()][0]} is listed twice")
    return out


def load_targets(labels_csv: str | os.PathLike, tasks: Sequence[str],
                 heart_failure_lvef: float = 40.0) -> pd.DataFrame:
    """Read ``labels_csv`` and return :func:`target_table` of it."""
    path = Path(labels_csv)
    if not path.is_file():
        raise DataError(f"{path}: labels table not found; run the labels rule first")
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    return target_table(labels, tasks, heart_failure_lvef, source=str(path))
