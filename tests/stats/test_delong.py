"""DeLong tests: covariance re-derived, vectorised columns, equal curves, unpaired samples."""

import logging

import numpy as np
import pytest

from cinefm.stats import delong_covariance, delong_test, roc_auc_ci


def brute_force_placements(y, s):
    cases, controls = s[y == 1], s[y == 0]
    psi = (cases[:, None] > controls[None, :]) + 0.5 * (cases[:, None] == controls[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


@pytest.fixture(scope="module")
def paired_scores():
    rng = np.random.default_rng(11)
    y = rng.permutation(np.r_[np.zeros(45), np.ones(35)])
    base = rng.normal(size=80) + y
    s = np.c_[base, np.round(base + rng.normal(0, 0.8, 80), 1), rng.normal(size=80) + 0.3 * y]
    return y, s


def test_covariance_matrix_equals_the_quadratic_definition(paired_scores):
    y, s = paired_scores
    auc, cov = delong_covariance(y, s)
    xs, ys = zip(*(brute_force_placements(y, s[:, k]) for k in range(3)), strict=True)
    expected = np.cov(np.array(xs)) / (y == 1).sum() + np.cov(np.array(ys)) / (y == 0).sum()
    np.testing.assert_allclose(cov, expected, atol=1e-15)
    np.testing.assert_allclose(auc, [x.mean() for x in xs])


def test_paired_z_uses_the_covariance(paired_scores):
    y, s = paired_scores
    auc, cov = delong_covariance(y, s[:, :2])
    t = delong_test(y, s[:, 0], s[:, 1])
    sd = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert t.statistic == pytest.approx((auc[0] - auc[1]) / sd)
    assert t.ci_high - t.ci_low == pytest.approx(2 * 1.959963984540054 * sd)
    # ignoring the correlation of the paired scores would inflate the SD
    assert abs(t.statistic) > abs(delong_test(y, s[:, 0], s[:, 1], paired=False).statistic)


def test_test_is_antisymmetric_in_its_two_scores(paired_scores):
    y, s = paired_scores
    ab, ba = delong_test(y, s[:, 0], s[:, 2]), delong_test(y, s[:, 2], s[:, 0])
    assert ab.statistic == pytest.approx(-ba.statistic) and ab.p_value == pytest.approx(ba.p_value)
    assert (ab.ci_low, ab.ci_high) == pytest.approx((-ba.ci_high, -ba.ci_low))


def test_vectorised_pairs_equal_column_by_column_tests(paired_scores):
    y, s = paired_scores
    a, b = s[:, [0, 1, 2]], s[:, [1, 2, 0]]
    t = delong_test(y, a, b, level=0.9)
    for k in range(3):
        one = delong_test(y, a[:, k], b[:, k], level=0.9)
        assert (t.statistic[k], t.p_value[k], t.ci_low[k], t.ci_high[k]) == pytest.approx(
            (one.statistic, one.p_value, one.ci_low, one.ci_high), abs=1e-14)
    tu = delong_test(y, a, b, paired=False)
    assert tu.df[1] == pytest.approx(delong_test(y, a[:, 1], b[:, 1], paired=False).df)


def test_identical_and_rank_equivalent_scores_give_z_zero_p_one(paired_scores):
    y, s = paired_scores
    for other in (s[:, 0].copy(), 3 * s[:, 0] + 7, np.exp(s[:, 0])):
        for paired in (True, False):
            t = delong_test(y, s[:, 0], other, paired=paired)
            assert (t.statistic, t.p_value) == (0.0, 1.0)
            assert t.ci_low <= 0 <= t.ci_high


def test_equal_constant_curves_give_z_zero_not_nan():
    y = np.array([0, 0, 1, 1, 0, 1])
    for paired in (True, False):
        t = delong_test(y, np.ones(6), np.full(6, 2.0), paired=paired)
        assert (t.auc_a, t.auc_b, t.statistic, t.p_value, t.ci_low, t.ci_high) == (0.5, 0.5, 0.0, 1.0, 0.0, 0.0)


def test_unpaired_test_on_independent_samples_uses_each_samples_variance():
    rng = np.random.default_rng(4)
    ya, yb = np.r_[np.zeros(30), np.ones(20)], np.r_[np.zeros(60), np.ones(40)]
    sa, sb = rng.normal(size=50) + 1.2 * ya, rng.normal(size=100) + 0.4 * yb
    t = delong_test(ya, sa, sb, paired=False, y_true_b=yb)
    ra, rb = roc_auc_ci(ya, sa), roc_auc_ci(yb, sb)
    v = ra.variance + rb.variance
    assert t.statistic == pytest.approx((ra.auc - rb.auc) / np.sqrt(v))
    assert t.df == pytest.approx(v**2 / (ra.variance**2 / 49 + rb.variance**2 / 99))
    from scipy import stats

    assert t.p_value == pytest.approx(2 * stats.t.sf(abs(t.statistic), t.df))
    assert (t.ci_low < 0 < t.ci_high) == (t.p_value > 0.05)


def test_paired_test_rejects_a_second_label_vector_and_mismatched_lengths(paired_scores):
    y, s = paired_scores
    with pytest.raises(ValueError, match="only for paired=False"):
        delong_test(y, s[:, 0], s[:, 1], y_true_b=y)
    with pytest.raises(ValueError, match="length mismatch.*score_b"):
        delong_test(y, s[:, 0], s[:-1, 1])
    with pytest.raises(ValueError, match="score_a: .*NaN"):
        delong_test(y, np.where(np.arange(80) == 3, np.nan, s[:, 0]), s[:, 1])


def test_auto_direction_is_decided_per_curve_and_logged_when_they_differ(paired_scores, caplog):
    y, s = paired_scores
    with caplog.at_level(logging.WARNING, logger="cinefm.stats.delong"):
        t = delong_test(y, s[:, 0], -s[:, 1], direction="auto")
    assert (t.direction_a, t.direction_b) == ("<", ">")
    assert "different directions" in caplog.text
    assert t.auc_b == pytest.approx(roc_auc_ci(y, s[:, 1]).auc)
