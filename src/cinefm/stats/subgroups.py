"""LVEF error by disease subgroup, next to the number of training studies behind each subgroup.

A regression model can look acceptable overall and still be wrong for one phenotype, most
often one it never saw in training. For every LVEF experiment this table breaks the test
error down by the downstream disease labels (``results/labels/labels.csv``, the diseases of
``labels.diseases``):

- one row per disease (test studies labelled positive), one per pair of diseases that occur
  together in at least one test study (``hcm+prior_mi``), and one for studies with none of
  them (every label known and negative: ``none``);
- ``n_train``: the experiment's training studies in that subgroup with a known LVEF (the
  downstream ``train`` split of ``splits.csv``, narrowed to the experiment's training
  fraction with ``train_fractions.csv``);
- ``n_test``, ``mae``, ``bias`` (mean of predicted − reference) and ``error_sd`` (SD of that
  difference, ``ddof=1``; NaN for one study) over the experiment's test predictions.

An uncertain label (empty) does not make a study positive and keeps it out of ``none``.

Output columns (``lvef_subgroups.csv``): experiment, subgroup, n_train, n_test, mae, bias, error_sd.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

COLUMNS = ["experiment", "subgroup", "n_train", "n_test", "mae", "bias", "error_sd"]
NONE = "none"


class SubgroupError(ValueError):
    """The labels or splits tables cannot give the subgroups; the message names the file and column."""


def subgroup_masks(labels: pd.DataFrame, diseases: Sequence[str]) -> dict[str, pd.Series]:
    """Boolean membership per subgroup (index: ``labels``' study ids): each disease, each pair, ``none``."""
    missing = [d for d in diseases if d not in labels.columns]
    if missing:
        raise SubgroupError(f"labels table: no column for disease(s) {missing} (labels.diseases); "
                            f"it has {list(labels.columns)}")
    values = labels[list(diseases)].apply(pd.to_numeric, errors="coerce")
    positive = values.eq(1)
    masks = {d: positive[d] for d in diseases}
    for a, b in combinations(diseases, 2):
        masks[f"{a}+{b}"] = positive[a] & positive[b]
    masks[NONE] = values.eq(0).all(axis=1)
    return masks


def training_studies(splits: pd.DataFrame, fractions: pd.DataFrame | None, fraction: float) -> pd.Index:
    """Study ids of the downstream training split within ``fraction`` (nested subsets, train_fractions.csv)."""
    train = splits.loc[(splits["stage"] == "downstream") & (splits["split"] == "train"), "study_id"]
    if fraction >= 1.0 or fractions is None:
        return pd.Index(train.unique())
    within = fractions.loc[fractions["train_fraction"] <= fraction + 1e-9, "study_id"]
    return pd.Index(train[train.isin(within)].unique())


def subgroup_rows(name: str, predictions: pd.DataFrame, masks: dict[str, pd.Series],
                  train_ids: pd.Index, lvef: pd.Series) -> list[dict]:
    """Rows of one experiment: ``predictions`` has study_id, target, score (test split)."""
    pred = predictions.dropna(subset=["target", "score"]).drop_duplicates("study_id").set_index("study_id")
    err = pred["score"].astype(float) - pred["target"].astype(float)
    known_train = train_ids[train_ids.isin(lvef.dropna().index)]
    rows = []
    for subgroup, mask in masks.items():
        members = mask[mask].index
        e = err[err.index.isin(members)]
        if e.empty:
            continue
        rows.append({
            "experiment": name, "subgroup": subgroup,
            "n_train": int(known_train.isin(members).sum()), "n_test": len(e),
            "mae": float(e.abs().mean()), "bias": float(e.mean()),
            "error_sd": float(e.std(ddof=1)) if len(e) > 1 else np.nan,
        })
    return rows


def lvef_subgroups(experiments: Sequence[tuple[str, float, pd.DataFrame]], labels: pd.DataFrame,
                   splits: pd.DataFrame, fractions: pd.DataFrame | None, diseases: Sequence[str],
                   lvef_column: str = "lvef") -> pd.DataFrame:
    """The table of the module docstring for ``(name, training fraction, test predictions)`` triples.

    ``labels``: labels.csv (``study_id``, one column per disease, ``lvef_column``);
    ``splits``: splits.csv; ``fractions``: train_fractions.csv (None: fraction 1 only).
    """
    for col in ("study_id", lvef_column):
        if col not in labels.columns:
            raise SubgroupError(f"labels table: no {col!r} column; it has {list(labels.columns)}")
    table = labels.drop_duplicates("study_id").set_index("study_id")
    masks = subgroup_masks(table, diseases)
    lvef = pd.to_numeric(table[lvef_column], errors="coerce")
    rows = [row for name, fraction, pred in experiments
            for row in subgroup_rows(name, pred, masks, training_studies(splits, fractions, fraction), lvef)]
    return pd.DataFrame(rows, columns=COLUMNS)


def subgroup_plot(table: pd.DataFrame, min_test: int = 2):
    """Bias ± SD of the LVEF error per subgroup (rows) and experiment (markers); returns the Figure.

    Subgroups with fewer than ``min_test`` test studies are left out; the right margin gives
    ``training / test`` studies, in red where no training study was in the subgroup.
    """
    from matplotlib.figure import Figure  # no pyplot: no global figure state, any backend

    shown = table[table["n_test"] >= min_test]
    groups = list(dict.fromkeys(shown["subgroup"]))
    experiments = list(dict.fromkeys(shown["experiment"]))
    fig = Figure(figsize=(7.5, 0.32 * len(groups) + 1.6))
    ax = fig.subplots()
    step = 0.6 / max(len(experiments), 1)
    for k, name in enumerate(experiments):
        rows = shown[shown["experiment"] == name].set_index("subgroup").reindex(groups)
        y = np.arange(len(groups)) + (k - (len(experiments) - 1) / 2) * step
        ax.errorbar(rows["bias"], y, xerr=rows["error_sd"].fillna(0), fmt="o", ms=4, capsize=2, label=name)
    ax.axvline(0, color="#555555", linewidth=1)
    ax.set_yticks(np.arange(len(groups)), groups)
    ax.invert_yaxis()
    first = shown.drop_duplicates("subgroup").set_index("subgroup").reindex(groups)
    for i, (n_train, n_test) in enumerate(zip(first["n_train"], first["n_test"], strict=True)):
        ax.annotate(f"{int(n_train)} / {int(n_test)}", (1.01, i), xycoords=("axes fraction", "data"),
                    va="center", fontsize=8, color="#d62728" if n_train == 0 else "#333333")
    ax.annotate("train / test", (1.01, 1.0), xycoords="axes fraction", va="bottom", fontsize=8)
    ax.set_xlabel("predicted − reference LVEF (%), mean ± SD")
    ax.set_title("LVEF error by disease subgroup (test split)")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.9 / fig.get_figheight()), ncol=2, fontsize=7,
              frameon=False)
    fig.subplots_adjust(left=0.3, right=0.85, bottom=1.25 / fig.get_figheight())
    return fig
