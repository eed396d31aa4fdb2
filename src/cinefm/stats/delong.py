"""DeLong's AUC variance and tests, computed as R pROC does, in O(n log n).

References:
- DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more
  correlated receiver operating characteristic curves: a nonparametric approach.
  Biometrics 1988;44:837-845.
- Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas
  under correlated receiver operating characteristic curves. IEEE Signal
  Processing Letters 2014;21:1389-1393 (midrank placements, one sort per column).
- Robin X, et al. pROC: an open-source package for R and S+ to analyze and
  compare ROC curves. BMC Bioinformatics 2011;12:77 (``var``, ``ci.auc``,
  ``roc.test``: the numbers these functions reproduce).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from cinefm.stats.inputs import binary_columns, direction_symbol, resolve_direction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DelongPlacements:
    """Structural components of the AUC (DeLong 1988), one column per score column.

    ``placement[i, k]`` is, for a case, the fraction of controls scored below it
    (ties ½; V10) and, for a control, the fraction of cases scored above it (V01);
    0 for rows of unknown label. ``auc = mean of V10 over cases = mean of V01 over controls``.
    """

    auc: np.ndarray  # (K,)
    placement: np.ndarray  # (n, K)
    cases: np.ndarray  # (n, K) bool
    controls: np.ndarray  # (n, K) bool

    @property
    def x(self) -> np.ndarray:
        """Case placements V10 ``(n, K)``, 0 where not a case."""
        return np.where(self.cases, self.placement, 0.0)

    @property
    def y(self) -> np.ndarray:
        """Control placements V01 ``(n, K)``, 0 where not a control."""
        return np.where(self.controls, self.placement, 0.0)

    @property
    def n_cases(self) -> np.ndarray:
        return self.cases.sum(axis=0)

    @property
    def n_controls(self) -> np.ndarray:
        return self.controls.sum(axis=0)


def placements_from_columns(oriented: np.ndarray, cases: np.ndarray, controls: np.ndarray) -> DelongPlacements:
    """DeLong placements of ``(n, K)`` scores oriented so that cases are expected higher.

    One sort per column (Sun & Xu 2014): within a block of tied scores every member
    gets the block's counts, which is the midrank form ``V10_i = (R_i - R_i^cases) / n``
    with R the midrank among all samples and R^cases the midrank among cases. All
    columns are processed as one flat array of tie blocks (a block never spans two
    columns). Rows that are neither case nor control carry no weight.
    """
    n_rows, n_cols = oriented.shape
    s_kn = np.ascontiguousarray(oriented.T)  # (K, n): each column's samples contiguous
    order = np.argsort(s_kn, axis=1)
    s_sorted = np.take_along_axis(s_kn, order, 1)
    c = np.take_along_axis(np.ascontiguousarray(cases.T), order, 1).ravel()
    t = np.take_along_axis(np.ascontiguousarray(controls.T), order, 1).ravel()
    first = np.ones((n_cols, n_rows), dtype=bool)
    first[:, 1:] = s_sorted[:, 1:] != s_sorted[:, :-1]
    starts = np.flatnonzero(first)  # first element of each tie block, flat index
    block = np.cumsum(first.ravel()) - 1  # block id of each element
    col = starts // n_rows  # column of each block
    c_in = np.add.reduceat(c.astype(np.int64), starts)  # cases in the block
    t_in = np.add.reduceat(t.astype(np.int64), starts)
    m = np.bincount(col, weights=c_in, minlength=n_cols)  # cases per column
    n = np.bincount(col, weights=t_in, minlength=n_cols)
    col_start_c = np.concatenate([[0], np.cumsum(m)[:-1]])
    col_start_t = np.concatenate([[0], np.cumsum(n)[:-1]])
    c_below = np.cumsum(c_in) - c_in - col_start_c[col]  # cases in lower blocks of the column
    t_below = np.cumsum(t_in) - t_in - col_start_t[col]
    beaten = t_below + 0.5 * t_in  # controls below a case of this block (ties ½)
    beating = (m[col] - c_below - c_in) + 0.5 * c_in  # cases above a control of this block
    auc = np.bincount(col, weights=c_in * beaten, minlength=n_cols) / (m * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_block = np.where(c_in > 0, beaten / n[col], 0.0), np.where(t_in > 0, beating / m[col], 0.0)
    v_sorted = np.where(c, per_block[0][block], np.where(t, per_block[1][block], 0.0))
    flat = (order + (np.arange(n_cols) * n_rows)[:, None]).ravel()
    v = np.empty(n_cols * n_rows)
    v[flat] = v_sorted
    return DelongPlacements(auc=auc, placement=v.reshape(n_cols, n_rows).T, cases=cases, controls=controls)


def _centred(p: DelongPlacements) -> tuple[np.ndarray, np.ndarray]:
    d = p.placement - p.auc
    return np.where(p.cases, d, 0.0), np.where(p.controls, d, 0.0)


def _cov_terms(xa, ya, xb, yb, m, n) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.einsum("ik,ik->k", xa, xb) / ((m - 1) * m) + np.einsum("ik,ik->k", ya, yb) / ((n - 1) * n)


def delong_cov_of(a: DelongPlacements, b: DelongPlacements) -> np.ndarray:
    """Per-column DeLong covariance of two AUCs on the same samples (``a is b`` → variance).

    ``S = S10/m + S01/n`` with ``S10 = Σ (V10_a - θ_a)(V10_b - θ_b) / (m - 1)`` over cases
    and ``S01`` likewise over controls (DeLong 1988, eq. 4; pROC ``var.roc``).
    """
    xa, ya = _centred(a)
    xb, yb = (xa, ya) if b is a else _centred(b)
    return _cov_terms(xa, ya, xb, yb, a.n_cases, a.n_controls)


def delong_placements(y_true, scores, direction: str = "<") -> DelongPlacements:
    """DeLong placements of one score vector ``(n,)`` or many columns ``(n, K)``.

    Labels ``(n,)`` or ``(n, K)``: 0 control, 1 case, NaN unknown (left out).
    Reference: DeLong et al. 1988; Sun & Xu 2014 (O(n log n) midrank algorithm).
    """
    cols = binary_columns(y_true, scores)
    (s,) = cols.scores
    sign = resolve_direction(direction, s, cols.cases, cols.controls)
    return placements_from_columns(s * sign, cols.cases, cols.controls)


def delong_covariance(y_true, scores, direction: str = "<") -> tuple[np.ndarray, np.ndarray]:
    """AUCs ``(K,)`` and their DeLong covariance matrix ``(K, K)`` for shared labels ``(n,)``.

    ``S = S10/m + S01/n`` with ``S10``, ``S01`` the sample covariance matrices of the
    case and control placements (DeLong et al. 1988; Sun & Xu 2014, eq. 9).
    """
    if np.ndim(y_true) != 1:
        raise ValueError("y_true: delong_covariance needs one label vector shared by all score columns")
    p = delong_placements(y_true, np.asarray(scores, dtype=np.float64).reshape(len(y_true), -1), direction)
    xc, yc = _centred(p)
    m, n = p.n_cases[0], p.n_controls[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = (xc.T @ xc) / ((m - 1) * m) + (yc.T @ yc) / ((n - 1) * n)
    return p.auc, cov


@dataclass(frozen=True)
class DelongTest:
    """Result of :func:`delong_test`; floats for 1-D inputs, arrays ``(K,)`` for 2-D.

    ``statistic`` is pROC's Z (paired) or D (unpaired, Welch-type t with ``df``);
    ``ci_low``/``ci_high`` bound ``auc_a - auc_b``; ``df`` is NaN for the paired test.
    """

    auc_a: float | np.ndarray
    auc_b: float | np.ndarray
    statistic: float | np.ndarray
    p_value: float | np.ndarray
    ci_low: float | np.ndarray
    ci_high: float | np.ndarray
    df: float | np.ndarray
    paired: bool
    level: float
    direction_a: str | np.ndarray
    direction_b: str | np.ndarray

    @property
    def difference(self) -> float | np.ndarray:
        return self.auc_a - self.auc_b


def _out(a: np.ndarray, vector: bool):
    return a.item() if vector else a


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level: confidence level must be in (0, 1), got {level}")


@dataclass(frozen=True)
class _Curves:
    """The two curves of a test: placements, per-column signs (+1 ``<``, -1 ``>``), 1-D input flag."""

    a: DelongPlacements
    b: DelongPlacements
    sign_a: np.ndarray
    sign_b: np.ndarray
    vector: bool


def _paired_curves(y_true, score_a, score_b, direction: str) -> _Curves:
    cols = binary_columns(y_true, score_a, score_b, names=("score_a", "score_b"))
    sa, sb = cols.scores
    sign_a = resolve_direction(direction, sa, cols.cases, cols.controls)
    sign_b = resolve_direction(direction, sb, cols.cases, cols.controls)
    return _Curves(placements_from_columns(sa * sign_a, cols.cases, cols.controls),
                   placements_from_columns(sb * sign_b, cols.cases, cols.controls), sign_a, sign_b, cols.vector)


def _unpaired_curves(y_true, score_a, y_true_b, score_b, direction: str) -> _Curves:
    cols_a = binary_columns(y_true, score_a, names=("score_a",))
    cols_b = binary_columns(y_true_b, score_b, names=("score_b",))
    (sa,), (sb,) = cols_a.scores, cols_b.scores
    if sa.shape[1] != sb.shape[1]:
        raise ValueError(f"score_b: {sb.shape[1]} columns but score_a has {sa.shape[1]}")
    sign_a = resolve_direction(direction, sa, cols_a.cases, cols_a.controls)
    sign_b = resolve_direction(direction, sb, cols_b.cases, cols_b.controls)
    return _Curves(placements_from_columns(sa * sign_a, cols_a.cases, cols_a.controls),
                   placements_from_columns(sb * sign_b, cols_b.cases, cols_b.controls), sign_a, sign_b,
                   cols_a.vector and cols_b.vector)


def paired_sd(a: DelongPlacements, b: DelongPlacements) -> np.ndarray:
    """SD of θa - θb on the same samples: sqrt(Va + Vb - 2 Cov) (DeLong 1988; pROC ``delong.paired.calculations``)."""
    (xa, ya), (xb, yb) = _centred(a), _centred(b)
    m, n = a.n_cases, a.n_controls
    var = _cov_terms(xa, ya, xa, ya, m, n) + _cov_terms(xb, yb, xb, yb, m, n) - 2 * _cov_terms(xa, ya, xb, yb, m, n)
    return np.sqrt(np.maximum(var, 0.0))  # rounding can leave -1e-18 for identical curves


def unpaired_sd_df(a: DelongPlacements, b: DelongPlacements) -> tuple[np.ndarray, np.ndarray]:
    """SD of θa - θb for independent samples and pROC's df (``delong.unpaired.test``)."""
    va, vb = delong_cov_of(a, a), delong_cov_of(b, b)
    na, nb = a.n_cases + a.n_controls, b.n_cases + b.n_controls
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return np.sqrt(va + vb), df


def delong_test(
    y_true,
    score_a,
    score_b,
    paired: bool = True,
    level: float = 0.95,
    direction: str = "<",
    y_true_b=None,
) -> DelongTest:
    """DeLong test of AUC(score_a) = AUC(score_b), two-sided, as R pROC ``roc.test(method="delong")``.

    Paired (the two scores rate the same samples): Z = (θa - θb) / sqrt(Va + Vb - 2 Cov)
    with the DeLong covariance, p = 2 Φ(-|Z|), CI = d ± z_(1-α/2) sqrt(...)
    (DeLong et al. 1988; pROC ``delong.paired.test``, ``ci.delong.paired``).

    Unpaired (independent samples; labels of sample b in ``y_true_b``, default
    ``y_true``): D = (θa - θb) / sqrt(Va + Vb), p = 2 P(T_df > |D|) with the
    Welch–Satterthwaite-type df = (Va + Vb)² / (Va²/(Na - 1) + Vb²/(Nb - 1)), N the
    total sample size of each curve (pROC ``delong.unpaired.test``). pROC reports no
    CI for the unpaired test; here CI = d ± t_(df, 1-α/2) sqrt(Va + Vb), consistent
    with the p value.

    Equal curves (d = 0 and zero variance of d) give statistic 0 and p = 1.
    Scores may be ``(n, K)``: column k of a is tested against column k of b.
    ``direction="auto"`` decides each curve's direction separately (pROC builds each
    ``roc`` object on its own); differing directions are logged as a warning.
    """
    _check_level(level)
    if paired and y_true_b is not None:
        raise ValueError("y_true_b: only for paired=False — a paired test rates the same samples")
    if paired:
        c = _paired_curves(y_true, score_a, score_b, direction)
        sig = paired_sd(c.a, c.b)
        df = np.full_like(sig, np.nan)
        crit = sps.norm.ppf(0.5 + level / 2)
    else:
        c = _unpaired_curves(y_true, score_a, y_true if y_true_b is None else y_true_b, score_b, direction)
        sig, df = unpaired_sd_df(c.a, c.b)
        crit = sps.t.ppf(0.5 + level / 2, df)
    if direction == "auto" and np.any(c.sign_a != c.sign_b):
        log.warning("delong_test: the two curves have different directions (auto); "
                    "DeLong's test should compare curves of the same direction")
    pa, pb, vector = c.a, c.b, c.vector
    d = pa.auc - pb.auc
    equal = (d == 0) & (sig == 0)  # pROC: Z = 0 for 0/0
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(equal, 0.0, d / sig)
        p = 2 * sps.norm.sf(np.abs(stat)) if paired else np.where(equal, 1.0, 2 * sps.t.sf(np.abs(stat), df))
    half = np.where(sig == 0, 0.0, crit * sig)  # equal curves: CI [0, 0], also when df is undefined
    return DelongTest(
        auc_a=_out(pa.auc, vector),
        auc_b=_out(pb.auc, vector),
        statistic=_out(stat, vector),
        p_value=_out(np.asarray(p, dtype=np.float64), vector),
        ci_low=_out(d - half, vector),
        ci_high=_out(d + half, vector),
        df=_out(np.asarray(df, dtype=np.float64), vector),
        paired=paired,
        level=level,
        direction_a=_out(np.array([direction_symbol(v) for v in c.sign_a]), vector),
        direction_b=_out(np.array([direction_symbol(v) for v in c.sign_b]), vector),
    )
