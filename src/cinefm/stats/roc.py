"""Empirical ROC curves and AUROC with DeLong confidence intervals, as R pROC reports them,
and the ROC figure (curves, CI bands, AUROC in the legend).

:func:`auroc` is the package's one AUROC: training (validation metrics, checkpoint
selection), the embedding-structure probe and the statistics tables all use it.

References:
- DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44:837-845 (variance).
- Robin X, et al. pROC. BMC Bioinformatics 2011;12:77 (thresholds, ``ci.auc``,
  ``coords``; pROC 1.18 ``roc.utils.thresholds``, ``ci.auc.delong``).
- Carpenter J, Bithell J. Bootstrap confidence intervals. Stat Med 2000;19:1141-1164
  (percentile bootstrap of the sensitivity band).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from cinefm.stats.delong import delong_cov_of, placements_from_columns
from cinefm.stats.inputs import binary_columns, direction_symbol, resolve_direction


@dataclass(frozen=True)
class AucCI:
    """AUROC with its DeLong variance and CI; floats for 1-D inputs, arrays ``(K,)`` for 2-D.

    With a single case or a single control the variance and CI are NaN (as pROC).
    """

    auc: float | np.ndarray
    ci_low: float | np.ndarray
    ci_high: float | np.ndarray
    variance: float | np.ndarray
    n_cases: int | np.ndarray
    n_controls: int | np.ndarray
    direction: str | np.ndarray
    level: float


def auroc(y_true, score, direction: str = "<") -> float:
    """AUROC of a 1-D ``score`` for 0/1 labels (NaN = unknown, left out), ties counted ½.

    Mann–Whitney ``U / (m·n)`` from DeLong placements (Sun & Xu 2014), the value pROC
    ``auc(roc(y, score, direction=...))`` reports and :func:`roc_auc_ci` returns as ``auc``.
    Raises ValueError (saying why) without one case and one control.
    """
    cols = binary_columns(y_true, score)
    (s,) = cols.scores
    sign = resolve_direction(direction, s, cols.cases, cols.controls)
    return float(placements_from_columns(s * sign, cols.cases, cols.controls).auc[0])


def roc_auc_ci(y_true, score, level: float = 0.95, direction: str = "<") -> AucCI:
    """AUROC (ties count ½) with DeLong variance and normal CI clipped to [0, 1].

    ``CI = θ ± z_(1-α/2) sqrt(V)``, ``V = S10/m + S01/n`` (DeLong et al. 1988),
    identical to pROC ``ci.auc(method="delong")`` and ``var(roc)``. ``score`` may be
    ``(n, K)`` (one AUC per column, labels ``(n,)`` or ``(n, K)``, NaN label =
    unknown); computed in O(n log n) per column (Sun & Xu 2014).
    """
    if not 0 < level < 1:
        raise ValueError(f"level: confidence level must be in (0, 1), got {level}")
    cols = binary_columns(y_true, score)
    (s,) = cols.scores
    sign = resolve_direction(direction, s, cols.cases, cols.controls)
    p = placements_from_columns(s * sign, cols.cases, cols.controls)
    var = delong_cov_of(p, p)
    half = sps.norm.ppf(0.5 + level / 2) * np.sqrt(var)
    low = np.clip(p.auc - half, 0.0, 1.0)
    high = np.clip(p.auc + half, 0.0, 1.0)

    def out(a):
        return a.item() if cols.vector else a

    return AucCI(
        auc=out(p.auc),
        ci_low=out(low),
        ci_high=out(high),
        variance=out(var),
        n_cases=out(p.n_cases),
        n_controls=out(p.n_controls),
        direction=out(np.array([direction_symbol(v) for v in sign])),
        level=level,
    )


def roc_thresholds(values: np.ndarray, direction: str) -> np.ndarray:
    """Candidate thresholds as pROC ``roc.utils.thresholds``: -Inf, midpoints, +Inf.

    Midpoints between adjacent distinct values, computed as ``a/2 + b/2`` where
    ``(a + b)/2`` exceeds 1e100 (overflow). When a midpoint rounds onto one of its
    neighbours (adjacent doubles), it is moved to the value that keeps the two
    apart: the upper one for ``"<"`` (positive if score >= t), the lower for ``">"``.
    """
    u = np.unique(np.asarray(values, dtype=np.float64))
    lo = np.concatenate([[-np.inf], u])
    hi = np.concatenate([u, [np.inf]])
    with np.errstate(over="ignore", invalid="ignore"):
        t1 = (lo + hi) / 2
    t2 = lo / 2 + hi / 2
    thr = np.where(np.abs(t1) > 1e100, t2, t1)
    inner = np.arange(1, len(u))
    if direction == "<":
        fix = inner[thr[inner] == u[inner - 1]]
        thr[fix] = u[fix]
    elif direction == ">":
        fix = inner[thr[inner] == u[inner]]
        thr[fix] = u[fix - 1]
    else:
        raise ValueError(f"direction: {direction!r} must be '<' or '>' here (resolve 'auto' first)")
    return thr


@dataclass(frozen=True)
class RocCurve:
    """Empirical ROC curve in pROC ``coords(roc, "all")`` order (increasing specificity).

    ``"<"``: a sample is called positive when score >= threshold; ``">"``: when
    score <= threshold.
    """

    threshold: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    tp: np.ndarray
    tn: np.ndarray
    n_cases: int
    n_controls: int
    direction: str

    def to_frame(self) -> pd.DataFrame:
        """Columns threshold, sensitivity, specificity, accuracy, tp, fp, tn, fn."""
        return pd.DataFrame(
            {
                "threshold": self.threshold,
                "sensitivity": self.sensitivity,
                "specificity": self.specificity,
                "accuracy": (self.tp + self.tn) / (self.n_cases + self.n_controls),
                "tp": self.tp,
                "fp": self.n_controls - self.tn,
                "tn": self.tn,
                "fn": self.n_cases - self.tp,
            }
        )


def _curve_from(cases: np.ndarray, controls: np.ndarray, direction: str) -> RocCurve:
    thr = roc_thresholds(np.concatenate([cases, controls]), direction)
    cs, ts = np.sort(cases), np.sort(controls)
    m, n = len(cs), len(ts)
    if direction == "<":
        tp = m - np.searchsorted(cs, thr, side="left")  # cases >= t
        tn = np.searchsorted(ts, thr, side="left")  # controls < t
    else:
        tp = np.searchsorted(cs, thr, side="right")  # cases <= t
        tn = n - np.searchsorted(ts, thr, side="right")  # controls > t
        thr, tp, tn = thr[::-1], tp[::-1], tn[::-1]
    return RocCurve(
        threshold=thr,
        sensitivity=tp / m,
        specificity=tn / n,
        tp=tp,
        tn=tn,
        n_cases=m,
        n_controls=n,
        direction=direction,
    )


def roc_curve(y_true, score, direction: str = "<") -> RocCurve:
    """Every (threshold, sensitivity, specificity) of the empirical ROC curve, as pROC ``coords``.

    Reference: Robin et al. 2011 (pROC ``roc``/``coords(roc, "all")``); NaN labels are
    left out, ``"auto"`` follows pROC's median rule.
    """
    cols = binary_columns(y_true, score)
    if not cols.vector:
        raise ValueError("score: roc_curve takes one score vector (n,); loop over columns")
    (s,) = cols.scores
    sign = resolve_direction(direction, s, cols.cases, cols.controls)
    return _curve_from(s[cols.cases[:, 0], 0], s[cols.controls[:, 0], 0], direction_symbol(sign[0]))


def sensitivity_at(curve: RocCurve, specificity: np.ndarray) -> np.ndarray:
    """Best sensitivity among the curve's points with specificity >= each grid value (step envelope; cf. pROC ``ci.se``)."""
    order = np.argsort(curve.specificity, kind="stable")
    sp = curve.specificity[order]
    best = np.maximum.accumulate(curve.sensitivity[order][::-1])[::-1]  # suffix maximum
    idx = np.searchsorted(sp, np.asarray(specificity, dtype=np.float64), side="left")
    return best[np.minimum(idx, len(sp) - 1)]


def roc_ci_band(
    y_true,
    score,
    specificity: np.ndarray | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    direction: str = "<",
) -> pd.DataFrame:
    """Percentile bootstrap band of sensitivity over a specificity grid (stratified resampling).

    Cases and controls are resampled separately, as pROC ``ci.se(boot.stratified=TRUE)``;
    unlike pROC the sensitivity at a specificity is the step envelope (best observed
    point with specificity >= the grid value), not a linear interpolation.
    Reference: Carpenter & Bithell 2000; Robin et al. 2011. Columns: specificity,
    sensitivity (observed), se_low, se_high.
    """
    cols = binary_columns(y_true, score)
    if not cols.vector:
        raise ValueError("score: roc_ci_band takes one score vector (n,)")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap: must be >= 1, got {n_bootstrap}")
    (s,) = cols.scores
    sign = resolve_direction(direction, s, cols.cases, cols.controls)
    d = direction_symbol(sign[0])
    cases, controls = s[cols.cases[:, 0], 0], s[cols.controls[:, 0], 0]
    grid = np.linspace(0, 1, 101) if specificity is None else np.asarray(specificity, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_bootstrap, len(grid)))
    for b in range(n_bootstrap):
        cb = cases[rng.integers(0, len(cases), len(cases))]
        tb = controls[rng.integers(0, len(controls), len(controls))]
        boot[b] = sensitivity_at(_curve_from(cb, tb, d), grid)
    alpha = 1 - level
    return pd.DataFrame(
        {
            "specificity": grid,
            "sensitivity": sensitivity_at(_curve_from(cases, controls, d), grid),
            "se_low": np.quantile(boot, alpha / 2, axis=0),
            "se_high": np.quantile(boot, 1 - alpha / 2, axis=0),
        }
    )


ROC_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class RocPanel:
    """One curve of a ROC figure: the empirical curve, its CI band and its AUROC (DeLong CI)."""

    label: str
    curve: RocCurve
    band: pd.DataFrame  # columns specificity, sensitivity, se_low, se_high (roc_ci_band)
    auc: AucCI


def roc_figure(panels: list[RocPanel], title: str):
    """ROC curves (sensitivity against 1 - specificity), bootstrap bands, AUROC with CI in the legend.

    Curves as in pROC ``plot.roc`` with ``ci.se`` shape (Robin et al. 2011); the band is
    a stratified percentile bootstrap of sensitivity at fixed specificities. Built on
    ``matplotlib.figure.Figure`` (no pyplot state); save with :func:`cinefm.atomic.save_figure`.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle=":")
    for i, p in enumerate(panels):
        colour = ROC_COLOURS[i % len(ROC_COLOURS)]
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
