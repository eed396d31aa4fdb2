"""AUROC, DeLong variance and ROC curves: brute-force re-derivations, vectorisation, bad inputs."""

import numpy as np
import pandas as pd
import pytest

from cinefm.stats import delong_placements, roc_auc_ci, roc_ci_band, roc_curve, roc_thresholds


def brute_force_auc_var(y, s):
    """O(n²) DeLong 1988: psi = 1 / ½ / 0 for case >, =, < control; V = S10/m + S01/n."""
    cases, controls = s[y == 1], s[y == 0]
    psi = (cases[:, None] > controls[None, :]) + 0.5 * (cases[:, None] == controls[None, :])
    x, yv = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), x.var(ddof=1) / len(cases) + yv.var(ddof=1) / len(controls)


@pytest.fixture(scope="module")
def tied_columns():
    rng = np.random.default_rng(3)
    n, k = 80, 5
    y = rng.integers(0, 2, size=(n, k)).astype(float)
    y[rng.random((n, k)) < 0.15] = np.nan  # unknown labels, different rows per column
    s = np.round(rng.normal(size=(n, k)) + 0.7 * np.nan_to_num(y), 1)  # heavy ties
    s[np.isnan(y)] = np.nan  # scores may be missing where the label is unknown
    return y, s


def test_auc_and_variance_equal_the_quadratic_definition_with_ties(tied_columns):
    y, s = tied_columns
    for k in range(y.shape[1]):
        known = ~np.isnan(y[:, k])
        auc, var = brute_force_auc_var(y[known, k], s[known, k])
        r = roc_auc_ci(y[known, k], s[known, k])
        assert r.auc == pytest.approx(auc, abs=1e-14)
        assert r.variance == pytest.approx(var, abs=1e-14)


def test_two_dimensional_scores_equal_one_call_per_column(tied_columns):
    y, s = tied_columns
    r = roc_auc_ci(y, s, level=0.9)
    assert r.auc.shape == (y.shape[1],)
    for k in range(y.shape[1]):
        known = ~np.isnan(y[:, k])
        one = roc_auc_ci(y[known, k], s[known, k], level=0.9)
        assert (r.auc[k], r.ci_low[k], r.ci_high[k], r.variance[k]) == pytest.approx(
            (one.auc, one.ci_low, one.ci_high, one.variance), abs=1e-14)
        assert r.n_cases[k] == one.n_cases and r.n_controls[k] == one.n_controls


def test_auto_direction_is_decided_per_column_on_known_labels_only(tied_columns):
    y, s = tied_columns
    s = s * np.array([1, -1, 1, -1, 1])  # two columns reversed
    r = roc_auc_ci(y, s, direction="auto")
    assert list(r.direction) == ["<", ">", "<", ">", "<"]
    for k in range(y.shape[1]):
        known = ~np.isnan(y[:, k])
        assert r.auc[k] == pytest.approx(roc_auc_ci(y[known, k], s[known, k], direction="auto").auc)


def test_shared_label_vector_broadcasts_over_score_columns():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(20), np.ones(20)]
    s = rng.normal(size=(40, 3)) + y[:, None] * np.array([0.0, 1.0, 2.0])
    r = roc_auc_ci(y, s)
    assert np.all(np.diff(r.auc) > 0)
    assert r.auc[2] == pytest.approx(roc_auc_ci(y, s[:, 2]).auc)


def test_placements_average_to_the_auc_from_both_sides():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = delong_placements(y, np.array([0.1, 0.5, 0.5, 0.9, 0.3, 0.2]))
    assert p.x[p.cases].mean() == pytest.approx(p.auc[0])
    assert p.y[p.controls].mean() == pytest.approx(p.auc[0])
    assert p.auc[0] == pytest.approx((2.5 + 3 + 1) / 9)  # case 0.5: 2 below + 1 tie; 0.9: 3; 0.2: 1


def test_direction_greater_equals_less_on_negated_scores_and_auto_uses_medians():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([5.0, 4.0, 6.0, 1.0, 2.0, 4.0])
    gt = roc_auc_ci(y, s, direction=">")
    assert gt.auc == pytest.approx(roc_auc_ci(y, -s).auc)
    assert roc_auc_ci(y, s, direction="auto").direction == ">"
    assert roc_auc_ci(y, s).auc == pytest.approx(1 - gt.auc)
    # pROC's rule is median(controls) <= median(cases) -> "<": equal medians stay "<"
    assert roc_auc_ci(y, np.array([1.0, 2.0, 3.0, 2.0, 0.0, 9.0]), direction="auto").direction == "<"


def test_constant_scores_give_auc_one_half_with_zero_variance():
    r = roc_auc_ci([0, 1, 0, 1, 1], [0.3] * 5)
    assert (r.auc, r.variance, r.ci_low, r.ci_high) == (0.5, 0.0, 0.5, 0.5)


def test_ci_is_clipped_to_the_unit_interval():
    r = roc_auc_ci([0, 0, 0, 1, 1, 1], [1, 2, 3, 3.5, 4, 5])
    assert r.auc == 1.0 and r.ci_high == 1.0 and r.ci_low == 1.0
    r = roc_auc_ci([0, 0, 0, 1, 1, 1], [1, 2, 4, 3, 5, 6])
    assert r.ci_high == 1.0 and r.ci_low < r.auc < 1


def test_single_case_gives_nan_variance_as_proc():
    r = roc_auc_ci([0, 0, 0, 1], [0.1, 0.2, 0.4, 0.3])
    assert r.auc == pytest.approx(2 / 3)
    assert np.isnan(r.variance) and np.isnan(r.ci_low) and np.isnan(r.ci_high)


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
        ([0, 0, np.nan], [0.1, 0.2, 0.3], "only one class"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "NaN/infinite score"),
        ([0, 1, 1], [0.1, np.inf, 0.3], "NaN/infinite score"),
        ([0, 1, 1], [0.1, 0.2], "length mismatch"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "labels must be 0"),
        (["a", "b", "b"], [0.1, 0.2, 0.3], "labels must be 0/1"),
    ],
)
def test_degenerate_inputs_raise_a_clear_error(y, s, message):
    with pytest.raises(ValueError, match=message):
        roc_auc_ci(y, s)


def test_bad_direction_and_level_are_rejected():
    with pytest.raises(ValueError, match="direction"):
        roc_auc_ci([0, 1], [0.1, 0.2], direction="up")
    with pytest.raises(ValueError, match="level"):
        roc_auc_ci([0, 1], [0.1, 0.2], level=95)


def test_pandas_nullable_labels_mark_unknown_rows():
    y = pd.Series([0, 1, None, 1, 0], dtype="Int64")
    r = roc_auc_ci(y, pd.Series([0.1, 0.9, np.nan, 0.8, 0.2]))
    assert r.auc == 1.0 and r.n_cases == 2 and r.n_controls == 2


def test_thresholds_are_midpoints_with_infinite_ends():
    np.testing.assert_array_equal(roc_thresholds(np.array([3.0, 1.0, 2.0, 2.0]), "<"), [-np.inf, 1.5, 2.5, np.inf])


def test_curve_counts_follow_the_direction_rule():
    c = roc_curve([0, 0, 1, 1], [1.0, 2.0, 2.0, 3.0])
    f = c.to_frame()
    row = f[f.threshold == 1.5].iloc[0]  # positive when score >= 1.5
    assert (row.tp, row.fp, row.tn, row.fn, row.accuracy) == (2, 1, 1, 0, 0.75)
    assert np.all(np.diff(c.specificity) >= 0) and np.all(np.diff(c.sensitivity) <= 0)


def test_bootstrap_band_brackets_the_curve_and_is_seeded():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(40), np.ones(30)]
    s = rng.normal(size=70) + y
    band = roc_ci_band(y, s, n_bootstrap=200, seed=5)
    assert list(band.columns) == ["specificity", "sensitivity", "se_low", "se_high"]
    assert np.all(band.se_low <= band.se_high)
    inside = (band.se_low <= band.sensitivity + 1e-12) & (band.sensitivity <= band.se_high + 1e-12)
    assert inside.mean() > 0.9
    assert band.se_high.iloc[0] == 1.0  # at specificity 0 every threshold is allowed
    pd.testing.assert_frame_equal(band, roc_ci_band(y, s, n_bootstrap=200, seed=5))
    assert not band.equals(roc_ci_band(y, s, n_bootstrap=200, seed=6))
