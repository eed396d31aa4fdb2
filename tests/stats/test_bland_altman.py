"""Bland–Altman summary against the published peak-flow example, and the plot."""

import numpy as np
import pytest
from scipy import stats

from cinefm.atomic import save_figure
from cinefm.stats import bland_altman, bland_altman_plot

# Bland & Altman, Lancet 1986, Table 1: first PEFR readings (l/min), Wright vs mini Wright meter.
WRIGHT = np.array([494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427.0])
MINI = np.array([512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451.0])


def test_peak_flow_example_reproduces_the_published_bias_sd_and_bias_ci():
    r = bland_altman(WRIGHT, MINI)
    assert r.n == 17
    assert round(r.bias, 1) == -2.1 and round(r.sd, 1) == 38.8  # paper: mean -2.1, SD 38.8
    assert (round(r.bias_ci_low, 1), round(r.bias_ci_high, 1)) == (-22.0, 17.8)  # paper: -22.0 to 17.8


def test_limits_and_their_cis_follow_bland_altman_1999():
    r = bland_altman(WRIGHT, MINI, level=0.95)
    z, t = stats.norm.ppf(0.975), stats.t.ppf(0.975, 16)
    assert (r.loa_low, r.loa_high) == pytest.approx((r.bias - z * r.sd, r.bias + z * r.sd))
    se = r.sd * np.sqrt(1 / 17 + z**2 / 32)
    assert r.loa_low_ci_high - r.loa_low_ci_low == pytest.approx(2 * t * se)
    assert r.loa_high_ci_low == pytest.approx(r.loa_high - t * se)
    # the paper's approximation sqrt(3 s²/n) is within a few percent
    assert se == pytest.approx(np.sqrt(3 * r.sd**2 / 17), rel=0.05)
    assert isinstance(r.loa_low, float) and r.as_row()["n"] == 17


def test_narrower_level_gives_narrower_limits():
    wide, narrow = bland_altman(WRIGHT, MINI, 0.95), bland_altman(WRIGHT, MINI, 0.8)
    assert narrow.loa_high - narrow.loa_low < wide.loa_high - wide.loa_low


def test_plot_is_written_and_not_blank(tmp_path):
    import matplotlib.image as mpimg

    fig = bland_altman_plot(WRIGHT, MINI, title="PEFR", unit="l/min")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][0].startswith("bias -2.12")
    save_figure(fig, tmp_path / "ba.png", dpi=60)
    img = mpimg.imread(tmp_path / "ba.png")
    assert img.shape[0] > 100 and img[..., :3].std() > 0.05


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="length mismatch: a has 17 values but b has 16"):
        bland_altman(WRIGHT, MINI[:-1])
