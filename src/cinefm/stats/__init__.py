"""Statistics of the paper's tables, matching R pROC: AUROC with DeLong CIs, DeLong tests,
operating points, regression metrics with bootstrap CIs, Bland–Altman agreement.

Modules: :mod:`~cinefm.stats.roc` (curves, AUROC + DeLong CI, the ROC figure), :mod:`~cinefm.stats.delong`
(placements, covariance, tests), :mod:`~cinefm.stats.thresholds` (operating points),
:mod:`~cinefm.stats.regression`, :mod:`~cinefm.stats.bland_altman`, and
:mod:`~cinefm.stats.experiments` (``write_stats``: predictions.csv files -> results/stats).
Names are imported lazily (PEP 562) so that ``cinefm --help`` does not load scipy.

References: DeLong et al., Biometrics 1988;44:837-845; Sun & Xu, IEEE SPL 2014;21:1389-1393;
Robin et al. (pROC), BMC Bioinformatics 2011;12:77; Bland & Altman, Lancet 1986 and
Stat Methods Med Res 1999;8:135-160.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# The function bland_altman shares its module's name: bind it eagerly, or importing the
# submodule would leave the module object under cinefm.stats.bland_altman. (numpy only.)
from cinefm.stats.bland_altman import BlandAltman as BlandAltman
from cinefm.stats.bland_altman import bland_altman as bland_altman
from cinefm.stats.bland_altman import bland_altman_plot as bland_altman_plot

_EXPORTS = {
    "AucCI": "roc",
    "RocCurve": "roc",
    "RocPanel": "roc",
    "auroc": "roc",
    "roc_figure": "roc",
    "roc_auc_ci": "roc",
    "roc_ci_band": "roc",
    "roc_curve": "roc",
    "roc_thresholds": "roc",
    "DelongPlacements": "delong",
    "DelongTest": "delong",
    "delong_covariance": "delong",
    "delong_placements": "delong",
    "delong_test": "delong",
    "operating_points": "thresholds",
    "regression_metrics": "regression",
    "write_stats": "experiments",
}
__all__ = sorted([*_EXPORTS, "BlandAltman", "bland_altman", "bland_altman_plot"])

if TYPE_CHECKING:  # static analysers see the real names
    from cinefm.stats.delong import (  # noqa: F401
        DelongPlacements,
        DelongTest,
        delong_covariance,
        delong_placements,
        delong_test,
    )
    from cinefm.stats.experiments import write_stats  # noqa: F401
    from cinefm.stats.regression import regression_metrics  # noqa: F401
    from cinefm.stats.roc import (  # noqa: F401
        AucCI,
        RocCurve,
        RocPanel,
        auroc,
        roc_auc_ci,
        roc_ci_band,
        roc_curve,
        roc_figure,
        roc_thresholds,
    )
    from cinefm.stats.thresholds import operating_points  # noqa: F401


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"cinefm.stats.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'cinefm.stats' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
