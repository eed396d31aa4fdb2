"""Checking and shaping of labels and scores before any ROC statistic.

Every ROC function of ``cinefm.stats`` accepts one score vector ``(n,)`` or
many score columns ``(n, K)`` (diseases, models) with labels ``(n,)`` shared by
all columns or ``(n, K)`` one column per score column. Labels are 0 (control),
1 (case) or NaN (unknown: that row is left out of that column only, as R pROC's
``na.rm=TRUE`` does). Scores must be finite wherever the label is known.

Direction follows R pROC's ``roc(direction=...)`` (Robin et al. 2011, BMC
Bioinformatics 12:77): ``"<"`` means controls score lower than cases,
``">"`` the opposite, ``"auto"`` picks ``"<"`` when median(controls) <=
median(cases) and ``">"`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("<", ">", "auto")


@dataclass(frozen=True)
class BinaryColumns:
    """Labels and scores shaped ``(n, K)``; ``vector`` is True when the inputs were 1-D."""

    scores: tuple[np.ndarray, ...]  # each (n, K) float64; +inf where the label is unknown
    cases: np.ndarray  # (n, K) bool
    controls: np.ndarray  # (n, K) bool
    vector: bool

    @property
    def n_cases(self) -> np.ndarray:
        return self.cases.sum(axis=0)

    @property
    def n_controls(self) -> np.ndarray:
        return self.controls.sum(axis=0)


def _as_2d(a: np.ndarray) -> np.ndarray:
    return a[:, None] if a.ndim == 1 else a


def binary_columns(y_true, *scores, names: tuple[str, ...] = ("score",)) -> BinaryColumns:
    """Validate labels and one or more score arrays and return them as ``(n, K)`` columns.

    Raises ValueError naming the argument, the column and the fix for: length
    mismatch, labels other than 0/1/NaN, NaN or infinite scores where the label is
    known, and a column with only one class.
    """
    if hasattr(y_true, "to_numpy"):  # pandas, incl. nullable Int64 with <NA>
        y_true = y_true.to_numpy(dtype=np.float64, na_value=np.nan)
    y = np.asarray(y_true)
    try:
        y = y.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"y_true: labels must be 0/1 (or NaN for unknown), got dtype {y.dtype}") from err
    if y.ndim not in (1, 2):
        raise ValueError(f"y_true: expected a 1-D or 2-D array, got shape {y.shape}")
    known = ~np.isnan(y)
    bad = known & (y != 0) & (y != 1)
    if bad.any():
        raise ValueError(
            f"y_true: labels must be 0 (control) or 1 (case) or NaN (unknown); "
            f"found {np.unique(y[bad])[:5].tolist()} — recode the labels to 0/1 first"
        )
    names = tuple(names) + tuple(f"score_{i}" for i in range(len(names), len(scores)))
    arrays = []
    for name, s in zip(names, scores, strict=False):
        if hasattr(s, "to_numpy"):
            s = s.to_numpy(dtype=np.float64, na_value=np.nan)
        s = np.asarray(s, dtype=np.float64)
        if s.ndim not in (1, 2):
            raise ValueError(f"{name}: expected a 1-D or 2-D array, got shape {s.shape}")
        if s.shape[0] != y.shape[0]:
            raise ValueError(
                f"length mismatch: y_true has {y.shape[0]} rows but {name} has {s.shape[0]} — "
                "pass one score per labelled sample"
            )
        arrays.append(s)
    vector = y.ndim == 1 and all(s.ndim == 1 for s in arrays)
    n_cols = max([1] + [s.shape[1] for s in arrays if s.ndim == 2] + ([y.shape[1]] if y.ndim == 2 else []))
    y2 = _as_2d(y)
    if y2.shape[1] not in (1, n_cols):
        raise ValueError(f"y_true: {y2.shape[1]} label columns but the scores have {n_cols} columns")
    y2 = np.broadcast_to(y2, (y.shape[0], n_cols))
    known2 = ~np.isnan(y2)
    out = []
    for name, s in zip(names, arrays, strict=False):
        s2 = _as_2d(s)
        if s2.shape[1] not in (1, n_cols):
            raise ValueError(f"{name}: {s2.shape[1]} columns but the other inputs have {n_cols}")
        s2 = np.broadcast_to(s2, (y.shape[0], n_cols))
        nonfinite = known2 & ~np.isfinite(s2)
        if nonfinite.any():
            rows = np.flatnonzero(nonfinite.any(axis=1))
            raise ValueError(
                f"{name}: {int(nonfinite.sum())} NaN/infinite score(s) at rows {rows[:10].tolist()} "
                "where the label is known — drop those samples or fix the model output"
            )
        out.append(np.where(known2, s2, np.inf))
    cases = known2 & (y2 == 1)
    controls = known2 & (y2 == 0)
    for k in range(n_cols):
        n_case, n_ctrl = int(cases[:, k].sum()), int(controls[:, k].sum())
        if n_case == 0 or n_ctrl == 0:
            where = "" if vector else f" column {k}"
            raise ValueError(
                f"y_true{where}: only one class ({n_ctrl} controls, {n_case} cases) — "
                "ROC statistics need at least one case and one control"
            )
    return BinaryColumns(scores=tuple(out), cases=cases, controls=controls, vector=vector)


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.nanmedian(np.where(mask, values, np.nan), axis=0)


def resolve_direction(direction: str, scores: np.ndarray, cases: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Per-column sign: +1 for ``"<"`` (controls < cases), -1 for ``">"``.

    ``"auto"`` is R pROC's rule (roc.default): ``"<"`` when median(controls) <=
    median(cases), else ``">"`` — decided per column.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: {direction!r} is not one of {DIRECTIONS}")
    n_cols = scores.shape[1]
    if direction == "<":
        return np.ones(n_cols)
    if direction == ">":
        return -np.ones(n_cols)
    lower = _masked_median(scores, controls) <= _masked_median(scores, cases)
    return np.where(lower, 1.0, -1.0)


def direction_symbol(sign: float) -> str:
    """``"<"`` for +1, ``">"`` for -1."""
    return "<" if sign > 0 else ">"


def paired_values(a, b, names: tuple[str, str] = ("a", "b")) -> tuple[np.ndarray, np.ndarray]:
    """Two finite 1-D float arrays of equal length (>= 2), for regression and agreement statistics."""
    out = []
    for name, v in zip(names, (a, b), strict=True):
        if hasattr(v, "to_numpy"):
            v = v.to_numpy(dtype=np.float64, na_value=np.nan)
        v = np.asarray(v, dtype=np.float64)
        if v.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D array, got shape {v.shape}")
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(
                f"{name}: {int(bad.sum())} NaN/infinite value(s) at rows {np.flatnonzero(bad)[:10].tolist()} "
                "— drop those samples first"
            )
        out.append(v)
    if len(out[0]) != len(out[1]):
        raise ValueError(f"length mismatch: {names[0]} has {len(out[0])} values but {names[1]} has {len(out[1])}")
    if len(out[0]) < 2:
        raise ValueError(f"{names[0]}: at least 2 paired values are needed, got {len(out[0])}")
    return out[0], out[1]
