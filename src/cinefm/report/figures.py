"""Figures of the report: ROC curves with bootstrap CI bands.

The Bland–Altman plot lives with its statistic in :mod:`cinefm.stats.bland_altman`.
Figures are built on ``matplotlib.figure.Figure`` (no pyplot: no global state) and
saved with :func:`cinefm.atomic.save_figure`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cinefm.stats.roc import AucCI, RocCurve

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class RocPanel:
    """One curve of a ROC figure: the empirical curve, its CI band and its AUROC (DeLong CI)."""

    label: str
    curve: RocCurve
    band: pd.DataFrame  # columns specificity, sensitivity, se_low, se_high (cinefm.stats.roc_ci_band)
    auc: AucCI


def roc_figure(panels: list[RocPanel], title: str):
    """ROC curves (sensitivity against 1 - specificity), bootstrap bands, AUROC with CI in the legend.

    Curves as in pROC ``plot.roc`` with ``ci.se`` shape (Robin et al. 2011); the band is
    a stratified percentile bootstrap of sensitivity at fixed specificities.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle=":")
    for i, p in enumerate(panels):
        colour = COLOURS[i % len(COLOURS)]
        band = p.band.sort_values("specificity", ascending=False)  # x = 1 - specificity increasing
        ax.fill_between(1 - band["specificity"], band["se_low"], band["se_high"], color=colour, alpha=0.15,
                        linewidth=0)
        pct = f"{p.auc.level:.0%}"
        label = f"{p.label}: AUC {p.auc.auc:.3f} ({pct} CI {p.auc.ci_low:.3f}–{p.auc.ci_high:.3f})"
        ax.plot(1 - p.curve.specificity, p.curve.sensitivity, color=colour, linewidth=1.6, label=label)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    return fig
