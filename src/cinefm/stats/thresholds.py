"""Operating points of a score: Youden-optimal and fixed-sensitivity/specificity thresholds.

Thresholds are those of R pROC (midpoints between adjacent distinct scores, ±Inf at
the ends; see :func:`cinefm.stats.roc.roc_thresholds`).

Selection rules (each returns exactly one threshold):
- ``youden``: maximise J = sensitivity + specificity - 1 (Youden 1950), compared in
  floating point exactly as pROC ``coords(roc, "best", best.method="youden")`` does
  (``se + sp``); pROC returns every tied row, ordered by increasing specificity; we
  take the first of them (pROC's ``best.policy="first"``), i.e. among ties the
  threshold with the highest sensitivity.
- ``sensitivity_<T>``: among thresholds with sensitivity >= T, the one with the
  highest specificity; among those, the highest sensitivity.
- ``specificity_<T>``: among thresholds with specificity >= T, the one with the
  highest sensitivity; among those, the highest specificity.
The ±Inf thresholds guarantee that both target rules always have a candidate.

:func:`transferred_operating_points` chooses the thresholds on one split (validation) and
applies them, unchanged, to another (test): the test row is then an honest estimate of the
operating point, not one fitted to the test labels. A threshold ``t`` calls a study a case
when ``score >= t`` (direction ``<``: controls < t <= cases, as pROC) or ``score <= t``
(direction ``>``).

References: Youden WJ. Index for rating diagnostic tests. Cancer 1950;3:32-35.
Robin X, et al. pROC. BMC Bioinformatics 2011;12:77.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cinefm.stats.roc import RocCurve, roc_curve

COLUMNS = ["threshold", "sensitivity", "specificity", "accuracy", "tp", "fp", "tn", "fn"]


def _best(primary: np.ndarray, secondary: np.ndarray, allowed: np.ndarray) -> int:
    """Index maximising ``primary`` then ``secondary`` among ``allowed`` rows."""
    idx = np.flatnonzero(allowed)
    top = idx[primary[idx] == primary[idx].max()]
    return int(top[np.argmax(secondary[top])])


def youden_index(curve: RocCurve) -> int:
    """Row of ``curve`` with maximal J = se + sp - 1 (Youden 1950); ties → the first in pROC order (highest se)."""
    crit = curve.sensitivity + curve.specificity
    return int(np.flatnonzero(crit == crit.max())[0])


def operating_points(
    y_true,
    score,
    direction: str = "<",
    sensitivity_target: float = 0.9,
    specificity_target: float = 0.9,
) -> pd.DataFrame:
    """Rows ``youden``, ``sensitivity_<T>``, ``specificity_<T>`` (index ``point``).

    Columns: threshold, sensitivity, specificity, accuracy ((tp + tn) / n), tp, fp,
    tn, fn. Selection rules in the module docstring (Youden 1950; pROC coords).
    """
    for name, t in (("sensitivity_target", sensitivity_target), ("specificity_target", specificity_target)):
        if not 0 <= t <= 1:
            raise ValueError(f"{name}: must be within [0, 1], got {t}")
    curve = roc_curve(y_true, score, direction=direction)
    se, sp = curve.sensitivity, curve.specificity
    rows = {
        "youden": youden_index(curve),
        f"sensitivity_{sensitivity_target:g}": _best(sp, se, se >= sensitivity_target),
        f"specificity_{specificity_target:g}": _best(se, sp, sp >= specificity_target),
    }
    table = curve.to_frame()
    out = table.iloc[list(rows.values())][COLUMNS].copy()
    out.index = pd.Index(list(rows), name="point")
    return out


def counts_at(y_true, score, threshold: float, direction: str = "<") -> dict[str, float]:
    """Sensitivity, specificity, accuracy and tp/fp/tn/fn of ``score`` at a fixed ``threshold``.

    NaN labels are left out; ``direction`` ``<`` calls ``score >= threshold`` a case, ``>`` ``score <= threshold``.
    """
    if direction not in ("<", ">"):
        raise ValueError(f"direction must be '<' or '>', got {direction!r}")
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(score, dtype=np.float64)
    keep = ~np.isnan(y) & ~np.isnan(s)
    y, s = y[keep], s[keep]
    called = s >= threshold if direction == "<" else s <= threshold
    case = y == 1
    tp, fn = int(np.sum(called & case)), int(np.sum(~called & case))
    fp, tn = int(np.sum(called & ~case)), int(np.sum(~called & ~case))
    n = tp + fn + fp + tn
    return {"threshold": float(threshold),
            "sensitivity": tp / (tp + fn) if tp + fn else np.nan,
            "specificity": tn / (tn + fp) if tn + fp else np.nan,
            "accuracy": (tp + tn) / n if n else np.nan, "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def transferred_operating_points(
    y_choose, score_choose, y_apply, score_apply, direction: str = "<",
    sensitivity_target: float = 0.9, specificity_target: float = 0.9,
    splits: tuple[str, str] = ("val", "test"),
) -> pd.DataFrame:
    """Operating points chosen on ``(y_choose, score_choose)`` and applied to ``(y_apply, score_apply)``.

    Rows: each point twice, ``split`` = ``splits[0]`` (where it was chosen) and ``splits[1]`` (the
    same threshold applied); columns ``point, split`` and :data:`COLUMNS`.
    """
    chosen = operating_points(y_choose, score_choose, direction=direction, sensitivity_target=sensitivity_target,
                              specificity_target=specificity_target)
    rows = []
    for point, row in chosen.iterrows():
        rows.append({"point": point, "split": splits[0], **{c: row[c] for c in COLUMNS}})
        rows.append({"point": point, "split": splits[1],
                     **counts_at(y_apply, score_apply, float(row["threshold"]), direction)})
    return pd.DataFrame(rows, columns=["point", "split", *COLUMNS])
