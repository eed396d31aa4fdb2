"""Regression metrics and bootstrap CIs, re-derived from their definitions."""

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from cinefm.stats import regression_metrics
from cinefm.stats.regression import METRICS


@pytest.fixture(scope="module")
def lvef():
    rng = np.random.default_rng(8)
    y = rng.uniform(20, 70, 120)
    return y, y + rng.normal(1.5, 6.0, 120)


def test_point_estimates_match_scikit_learn_and_numpy(lvef):
    y, p = lvef
    m = regression_metrics(y, p, n_bootstrap=50, seed=1).set_index("metric")["value"]
    assert list(m.index) == list(METRICS)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["mse"] == pytest.approx(mean_squared_error(y, p))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)))
    assert m["r2"] == pytest.approx(r2_score(y, p))
    assert m["pearson_r"] == pytest.approx(np.corrcoef(y, p)[0, 1])


def test_bootstrap_ci_is_the_percentile_of_seeded_pair_resamples(lvef):
    y, p = lvef
    got = regression_metrics(y, p, level=0.9, n_bootstrap=300, seed=42, block=64).set_index("metric")
    idx = np.random.default_rng(42).integers(0, len(y), size=(300, len(y)))  # one draw = the documented stream
    mae = np.array([np.mean(np.abs(p[i] - y[i])) for i in idx])
    r = np.array([np.corrcoef(y[i], p[i])[0, 1] for i in idx])
    assert (got.loc["mae", "ci_low"], got.loc["mae", "ci_high"]) == pytest.approx(tuple(np.quantile(mae, [0.05, 0.95])))
    assert (got.loc["pearson_r", "ci_low"], got.loc["pearson_r", "ci_high"]) == pytest.approx(
        tuple(np.quantile(r, [0.05, 0.95])))
    assert (got["ci_low"] <= got["value"]).all() and (got["value"] <= got["ci_high"]).all()


def test_same_seed_same_cis_other_seed_other_cis(lvef):
    y, p = lvef
    a = regression_metrics(y, p, n_bootstrap=100, seed=3)
    assert a.equals(regression_metrics(y, p, n_bootstrap=100, seed=3))
    assert not a.equals(regression_metrics(y, p, n_bootstrap=100, seed=4))


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [([1.0, 2.0], [1.0], "length mismatch"), ([1.0, np.nan, 2.0], [1.0, 2.0, 3.0], "y_true: 1 NaN"),
     ([1.0], [1.0], "at least 2")],
)
def test_bad_inputs_raise_a_clear_error(y, p, message):
    with pytest.raises(ValueError, match=message):
        regression_metrics(y, p, n_bootstrap=10)
