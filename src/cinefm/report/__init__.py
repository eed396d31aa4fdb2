"""The self-contained static HTML report of a run (``results/report/index.html``).

The ROC figure lives with its statistics (:func:`cinefm.stats.roc.roc_figure`): report
reads stats, never the reverse. :mod:`~cinefm.report.tables`
(reader-friendly AUROC/DeLong/threshold/regression tables), :mod:`~cinefm.report.html`
(``build_report``), :mod:`~cinefm.report.leaderboard` and :mod:`~cinefm.report.leaderboard_app`
(``cinefm leaderboard``, the Shiny app over a run's statistics). Imported lazily so that ``cinefm --help`` stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"build_report": "html"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"cinefm.report.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'cinefm.report' has no attribute {name!r}")
