"""Score a label backend against hand-labelled reports: accuracy, per-disease F1, confusion.

The labelled reports live in a plain-text file (``tests/labels/data/cmr_reports.txt``):
a record starts with a line ``=== <id> <split> | <truth> | lvef=<percent or ->`` and
its report text follows up to the next ``===`` line; lines starting with ``#`` before
the first record are comments. ``<truth>`` lists ``disease=1`` (present) or
``disease=?`` (hedged, the label is empty); a disease not listed is 0; ``-`` lists none.

Scores, per split, over the (report, disease) cells:

- ``accuracy``: share of cells where the backend's value (1, 0 or empty) equals the truth;
- per disease, the 3×3 ``confusion`` (truth × prediction over 1 / 0 / empty) and ``f1``
  of the positive class (an empty prediction is not a positive one; an empty truth is
  not a positive one either), i.e. 2·TP / (2·TP + FP + FN);
- ``lvef``: share of reports whose stated LVEF is read exactly (no LVEF stated: none read).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cinefm.labels.lvef import parse_lvef

VALUES = (1, 0, None)  # order of the confusion matrices' rows (truth) and columns (prediction)
_HEAD_RE = re.compile(r"^=== (\S+) (\S+) \| ([^|]*)\| lvef=(\S+)\s*$")


def read_labelled_reports(path: str | os.PathLike, diseases: Sequence[str]) -> pd.DataFrame:
    """Columns ``id``, ``split``, ``report_text``, ``lvef`` (float or NA), one Int8 column per disease."""
    path = Path(path)
    rows: list[dict] = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith("==="):
            m = _HEAD_RE.match(line)
            if not m:
                raise ValueError(f"{path}:{n}: malformed record header {line!r} "
                                 "(expected '=== <id> <split> | <disease>=1|? ... | lvef=<number or ->')")
            rid, split, truth, lvef = m.groups()
            row: dict = {"id": rid, "split": split, "lines": [], "lvef": None if lvef == "-" else float(lvef)}
            row.update({d: 0 for d in diseases})
            for item in truth.split():
                if item == "-":
                    continue
                key, _, value = item.partition("=")
                if key not in diseases or value not in ("1", "?"):
                    raise ValueError(f"{path}:{n}: {rid}: bad truth item {item!r} (diseases: {', '.join(diseases)}; "
                                     "values 1 or ?)")
                row[key] = 1 if value == "1" else None
            rows.append(row)
        elif rows:
            rows[-1]["lines"].append(line)
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"{path}:{n}: text before the first '===' record header")
    if not rows:
        raise ValueError(f"{path}: no records")
    ids = pd.Series([r["id"] for r in rows])
    if ids.duplicated().any():
        raise ValueError(f"{path}: duplicate record ids {sorted(set(ids[ids.duplicated()]))}")
    df = pd.DataFrame([{**{k: v for k, v in r.items() if k != "lines"},
                        "report_text": "\n".join(r["lines"]).strip()} for r in rows])
    for d in diseases:
        df[d] = pd.array(df[d].tolist(), dtype="Int8")
    df["lvef"] = pd.array(df["lvef"].tolist(), dtype="Float64")
    return df[["id", "split", "report_text", "lvef", *diseases]]


@dataclass(frozen=True)
class Score:
    """Scores of one split (see the module docstring)."""

    n_reports: int
    accuracy: float
    f1: dict[str, float]
    confusion: dict[str, pd.DataFrame]
    lvef_exact: float
    errors: pd.DataFrame  # id, disease, truth, predicted


def _cell(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def score_labels(truth: pd.DataFrame, predicted: pd.DataFrame, diseases: Sequence[str]) -> Score:
    """Compare ``predicted`` (same rows and disease columns, plus ``lvef``) with ``truth``."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} reports")
    confusion, f1, errors = {}, {}, []
    hits = 0
    for d in diseases:
        t = [_cell(v) for v in truth[d]]
        p = [_cell(v) for v in predicted[d]]
        mat = pd.DataFrame(0, index=pd.Index(["1", "0", "empty"], name="truth"),
                           columns=pd.Index(["1", "0", "empty"], name="predicted"))
        for rid, a, b in zip(truth["id"], t, p, strict=True):
            mat.iloc[VALUES.index(a), VALUES.index(b)] += 1
            if a == b:
                hits += 1
            else:
                errors.append({"id": rid, "disease": d, "truth": a, "predicted": b})
        confusion[d] = mat
        tp = sum(a == 1 and b == 1 for a, b in zip(t, p, strict=True))
        fp = sum(a != 1 and b == 1 for a, b in zip(t, p, strict=True))
        fn = sum(a == 1 and b != 1 for a, b in zip(t, p, strict=True))
        f1[d] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    lv_t = truth["lvef"].astype("Float64").to_numpy(dtype=float, na_value=float("nan"))
    lv_p = predicted["lvef"].astype("Float64").to_numpy(dtype=float, na_value=float("nan"))
    same = [(a != a and b != b) or abs(a - b) < 0.05 for a, b in zip(lv_t, lv_p, strict=True)]
    return Score(n_reports=len(truth), accuracy=hits / (len(truth) * len(diseases)), f1=f1,
                 confusion=confusion, lvef_exact=sum(same) / len(same),
                 errors=pd.DataFrame(errors, columns=["id", "disease", "truth", "predicted"]))


def evaluate_backend(backend, reports: pd.DataFrame, diseases: Sequence[str]) -> dict[str, Score]:
    """``{split: Score}`` of ``backend`` (anything with ``label(texts)``) on ``reports``."""
    answers = backend.label(reports["report_text"].tolist())
    predicted = pd.DataFrame({d: pd.array([a[d].value for a in answers], dtype="Int8") for d in diseases})
    predicted["lvef"] = pd.array([parse_lvef(t) for t in reports["report_text"]], dtype="Float64")
    predicted.index = reports.index
    return {split: score_labels(reports.loc[idx], predicted.loc[idx], diseases)
            for split, idx in reports.groupby("split", sort=False).groups.items()}
