"""Regression metrics (MAE, MSE, RMSE, R², Pearson r) with percentile bootstrap CIs.

- R² = 1 - Σ(y - ŷ)² / Σ(y - ȳ)² (coefficient of determination, as scikit-learn
  ``r2_score``); Pearson r of (y, ŷ).
- CIs: nonparametric bootstrap of (y, ŷ) pairs, B replicates drawn with
  ``numpy.random.default_rng(seed).integers(0, n, (B, n))`` (drawn in row blocks; the
  stream is the same as one draw), percentile interval (Efron B, Tibshirani RJ. An
  Introduction to the Bootstrap. Chapman & Hall 1993, ch. 13) with numpy's default
  (R type 7) quantiles. Replicates where a metric is undefined (constant resample)
  are ignored for that metric.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cinefm.stats.inputs import paired_values

METRICS = ("mae", "mse", "rmse", "r2", "pearson_r")


def metrics_rows(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric for every row of ``y``, ``p`` shaped ``(B, n)`` (one resample per row); definitions in the module docstring."""
    err = p - y
    mse = np.mean(err**2, axis=1)
    yc = y - y.mean(axis=1, keepdims=True)
    pc = p - p.mean(axis=1, keepdims=True)
    ss_tot = np.sum(yc**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - np.sum(err**2, axis=1) / ss_tot, np.nan)
        r = np.sum(yc * pc, axis=1) / np.sqrt(ss_tot * np.sum(pc**2, axis=1))
    return {"mae": np.mean(np.abs(err), axis=1), "mse": mse, "rmse": np.sqrt(mse), "r2": r2, "pearson_r": r}


def regression_metrics(
    y_true,
    y_pred,
    level: float = 0.95,
    n_bootstrap: int = 2000,
    seed: int = 0,
    block: int = 256,
) -> pd.DataFrame:
    """MAE, MSE, RMSE, R², Pearson r with seeded percentile bootstrap CIs (Efron & Tibshirani 1993).

    Returns one row per metric: metric, value, ci_low, ci_high, n.
    """
    if not 0 < level < 1:
        raise ValueError(f"level: confidence level must be in (0, 1), got {level}")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap: must be >= 1, got {n_bootstrap}")
    y, p = paired_values(y_true, y_pred, names=("y_true", "y_pred"))
    n = len(y)
    point = metrics_rows(y[None, :], p[None, :])
    rng = np.random.default_rng(seed)
    boot = {k: [] for k in METRICS}
    for start in range(0, n_bootstrap, block):
        idx = rng.integers(0, n, size=(min(block, n_bootstrap - start), n))
        for k, v in metrics_rows(y[idx], p[idx]).items():
            boot[k].append(v)
    alpha = 1 - level
    rows = []
    for k in METRICS:
        b = np.concatenate(boot[k])
        b = b[np.isfinite(b)]
        lo, hi = (np.quantile(b, [alpha / 2, 1 - alpha / 2]) if len(b) else (np.nan, np.nan))
        rows.append({"metric": k, "value": float(point[k][0]), "ci_low": float(lo), "ci_high": float(hi), "n": n})
    return pd.DataFrame(rows)
