"""Which view planes the multi-view attention reads, per experiment and task.

Every ``predictions.csv`` row carries ``attn_<view>``: the share of the study's MIL attention
that the clips of that view plane received (a row sums to 1 over the views the study has;
empty when the study lacks the view). With ``finetune.disease.attention: per_disease`` each
disease has its own attention, so the shares differ between the rows of one study.

``view_attention.csv`` (test split): experiment, task, view, n (test studies with that view),
share (mean share), share_sd (``ddof=1``), relative (share minus the mean share of that view
over the experiment's tasks, in share units: > 0 = this task leans on the view more than the
model's other tasks; 0 everywhere for a model whose attention is shared by its tasks).

The share depends on how many clips a view has (a SAX stack holds 8–12 slices, a long-axis
view one), so compare tasks within a view column rather than views within a row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

COLUMNS = ["experiment", "model", "task", "view", "n", "share", "share_sd", "relative"]
PREFIX = "attn_"


def attention_columns(frame: pd.DataFrame) -> list[str]:
    """The ``attn_<view>`` columns of a predictions table, in table order."""
    return [c for c in frame.columns if c.startswith(PREFIX)]


def view_attention_rows(model: str, name: str, task: str, rows: pd.DataFrame) -> list[dict]:
    """Rows of one experiment/task: ``rows`` holds that task's test predictions with ``attn_<view>``."""
    out = []
    for col in attention_columns(rows):
        share = pd.to_numeric(rows[col], errors="coerce").dropna()
        if share.empty:
            continue
        out.append({"experiment": name, "model": model, "task": task, "view": col[len(PREFIX):], "n": len(share),
                    "share": float(share.mean()),
                    "share_sd": float(share.std(ddof=1)) if len(share) > 1 else np.nan})
    return out


def view_attention_table(experiments: Sequence[tuple[str, str, str, pd.DataFrame]]) -> pd.DataFrame:
    """The table of the module docstring for ``(model, experiment, task, test rows)`` tuples.

    ``model`` is the run folder (a multi-disease run is one model with several tasks);
    ``relative`` compares the tasks of one model.
    """
    rows = [r for model, name, task, pred in experiments for r in view_attention_rows(model, name, task, pred)]
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "relative"])
    if table.empty:
        return table.reindex(columns=COLUMNS)
    table["relative"] = table["share"] - table.groupby(["model", "view"])["share"].transform("mean")
    return table.reindex(columns=COLUMNS)


def view_attention_plot(table: pd.DataFrame):
    """Heat map of the mean attention share: one row per experiment/task, one column per view."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, any backend

    views = list(dict.fromkeys(table["view"]))
    labels = list(dict.fromkeys(table["experiment"]))
    grid = (table.pivot_table(index="experiment", columns="view", values="share", aggfunc="first")
            .reindex(index=labels, columns=views))
    fig = Figure(figsize=(2.2 + 0.9 * len(views), 0.3 * len(labels) + 1.5))
    ax = fig.subplots()
    im = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.6 else "white")
    ax.set_xticks(np.arange(len(views)), views)
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
    ax.set_title("Multi-view attention share per view plane (test split)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.05, label="mean share of the study's attention")
    fig.subplots_adjust(left=0.5, right=0.92, bottom=0.9 / fig.get_figheight(), top=1 - 0.4 / fig.get_figheight())
    return fig
