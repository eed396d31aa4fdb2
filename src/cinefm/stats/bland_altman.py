"""Bland–Altman agreement: bias, SD of differences, limits of agreement and their CIs.

With d = a - b (e.g. predicted - reference LVEF) over n pairs:
- bias = mean(d), SD = sample SD of d (n - 1), limits = bias ± z·SD with
  z = Φ⁻¹(1 - α/2) (1.96 at 95 %) (Bland JM, Altman DG. Statistical methods for
  assessing agreement between two methods of clinical measurement. Lancet
  1986;i:307-310).
- CI of the bias: bias ± t_(n-1, 1-α/2)·SD/√n; CI of each limit:
  limit ± t_(n-1, 1-α/2)·SD·sqrt(1/n + z²/(2(n - 1))) (Bland JM, Altman DG.
  Measuring agreement in method comparison studies. Stat Methods Med Res
  1999;8:135-160, section 5.2; the paper's sqrt(3 SD²/n) is this with z²/2 ≈ 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cinefm.stats.inputs import paired_values


@dataclass(frozen=True)
class BlandAltman:
    """Bland–Altman summary of ``a - b`` (Bland & Altman 1986, 1999)."""

    n: int
    bias: float
    sd: float
    loa_low: float
    loa_high: float
    bias_ci_low: float
    bias_ci_high: float
    loa_low_ci_low: float
    loa_low_ci_high: float
    loa_high_ci_low: float
    loa_high_ci_high: float
    level: float

    def as_row(self) -> dict[str, float]:
        return dict(self.__dict__)


def bland_altman(a, b, level: float = 0.95) -> BlandAltman:
    """Bias, SD and limits of agreement of ``a - b`` with CIs (Bland & Altman 1986; 1999 §5.2)."""
    if not 0 < level < 1:
        raise ValueError(f"level: confidence level must be in (0, 1), got {level}")
    from scipy import stats as sps  # here, not at import: cinefm.stats binds this module eagerly

    a_arr, b_arr = paired_values(a, b, names=("a", "b"))
    d = a_arr - b_arr
    n = len(d)
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    z = float(sps.norm.ppf(0.5 + level / 2))
    t = float(sps.t.ppf(0.5 + level / 2, n - 1))
    se_bias = sd / np.sqrt(n).item()
    se_loa = sd * np.sqrt(1 / n + z**2 / (2 * (n - 1))).item()
    lo, hi = bias - z * sd, bias + z * sd
    return BlandAltman(
        n=n,
        bias=bias,
        sd=sd,
        loa_low=lo,
        loa_high=hi,
        bias_ci_low=bias - t * se_bias,
        bias_ci_high=bias + t * se_bias,
        loa_low_ci_low=lo - t * se_loa,
        loa_low_ci_high=lo + t * se_loa,
        loa_high_ci_low=hi - t * se_loa,
        loa_high_ci_high=hi + t * se_loa,
        level=level,
    )


def bland_altman_plot(a, b, title: str = "", unit: str = "", level: float = 0.95, ax=None):
    """Scatter of (a + b)/2 against a - b with bias, limits of agreement and their CIs as bands.

    Returns the matplotlib Figure (Bland & Altman 1986, Fig. 2 style; CIs per 1999 §5.2).
    """
    from matplotlib.figure import Figure  # no pyplot: no global figure state, any backend

    res = bland_altman(a, b, level=level)
    a_arr, b_arr = paired_values(a, b, names=("a", "b"))
    mean, diff = (a_arr + b_arr) / 2, a_arr - b_arr
    if ax is None:
        fig = Figure(figsize=(6, 4.5))
        ax = fig.subplots()
    else:
        fig = ax.figure
    ax.scatter(mean, diff, s=14, alpha=0.7, color="#1f77b4", edgecolor="none")
    pct = f"{level:.0%}"
    u = f" {unit}" if unit else ""
    axis_unit = f" ({unit})" if unit else ""
    for y, lo, hi, label, colour in (
        (res.bias, res.bias_ci_low, res.bias_ci_high, f"bias {res.bias:.2f}{u}", "#d62728"),
        (res.loa_high, res.loa_high_ci_low, res.loa_high_ci_high, f"upper LoA {res.loa_high:.2f}{u}", "#555555"),
        (res.loa_low, res.loa_low_ci_low, res.loa_low_ci_high, f"lower LoA {res.loa_low:.2f}{u}", "#555555"),
    ):
        ax.axhline(y, color=colour, linestyle="--" if "LoA" in label else "-", linewidth=1.2, label=label)
        ax.axhspan(lo, hi, color=colour, alpha=0.12, linewidth=0)
    ax.set_xlabel(f"mean of the two measurements{axis_unit}")
    ax.set_ylabel(f"difference{axis_unit}")
    ax.set_title(title or f"Bland–Altman (n = {res.n}, {pct} limits of agreement)")
    ax.legend(loc="best", fontsize=8, frameon=False)
    return fig
