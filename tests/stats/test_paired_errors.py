"""Paired |error| comparison of two regressors (Wilcoxon signed-rank + bootstrap CI of the MAE difference)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from cinefm.stats.paired_errors import compare_absolute_errors


def test_difference_ci_and_wilcoxon_against_scipy():
    rng = np.random.default_rng(0)
    y = rng.uniform(20, 75, 60)
    a = y + rng.normal(0, 3, 60)   # the better model
    b = y + rng.normal(0, 8, 60)
    c = compare_absolute_errors(y, a, b, n_bootstrap=500, seed=1)
    ea, eb = np.abs(a - y), np.abs(b - y)
    assert c.mae_a == pytest.approx(ea.mean()) and c.mae_b == pytest.approx(eb.mean())
    assert c.difference == pytest.approx(ea.mean() - eb.mean()) and c.difference < 0
    assert c.ci_low < c.difference < c.ci_high < 0
    ref = sps.wilcoxon(ea - eb, zero_method="wilcox", method="approx")
    assert c.statistic == pytest.approx(ref.statistic) and c.p_value == pytest.approx(ref.pvalue)
    assert c.p_value < 0.01 and c.n_a_better == int(np.sum(ea < eb))


def test_swapping_the_models_flips_the_sign_and_keeps_p():
    rng = np.random.default_rng(2)
    y = rng.uniform(20, 75, 30)
    a, b = y + rng.normal(0, 5, 30), y + rng.normal(0, 5, 30)
    ab, ba = compare_absolute_errors(y, a, b, seed=3), compare_absolute_errors(y, b, a, seed=3)
    assert ab.difference == pytest.approx(-ba.difference) and ab.p_value == pytest.approx(ba.p_value)


def test_identical_predictions_give_no_difference():
    y = np.array([30.0, 50.0, 60.0])
    c = compare_absolute_errors(y, y + 1, y + 1)
    assert c.difference == 0 and c.p_value == 1.0 and c.ci_low == c.ci_high == 0


def test_nan_predictions_are_refused():
    with pytest.raises(ValueError, match="pred_b"):
        compare_absolute_errors([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, np.nan, 3.0])
