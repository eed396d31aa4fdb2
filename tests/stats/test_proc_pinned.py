"""pROC's published/recorded values pinned as constants: these run without R.

Values recorded with R 4.2.2, pROC 1.18.0 (Debian r-cran-proc) by:

    library(pROC); data(aSAH)                  # tests/stats/data/aSAH.csv = write.csv(aSAH)
    r1 <- roc(aSAH$outcome, aSAH$s100b)        # levels Good (control) < Poor (case), direction "<"
    r2 <- roc(aSAH$outcome, aSAH$ndka)
    ci.auc(r1, method = "delong"); var(r1); ci.auc(r2, method = "delong"); var(r2)
    roc.test(r1, r2, method = "delong", paired = TRUE)    # Z = 1.3908, p-value = 0.1643 (pROC docs)
    roc.test(r1, r2, method = "delong", paired = FALSE)   # D = 1.56, df = 222.24, p-value = 0.1202
    coords(r1, "best", best.method = "youden")            # 0.205, sp 0.8055556, se 0.6341463
    coords(r2, "best", best.method = "youden")            # 11.08, sp 0.5138889, se 0.7073171
"""

import numpy as np
import pytest

from cinefm.stats import delong_test, operating_points, roc_auc_ci, roc_curve

TOL = 1e-9


def test_asah_s100b_auc_and_delong_ci_match_proc(asah, asah_y):
    r = roc_auc_ci(asah_y, asah["s100b"], direction="auto")
    assert r.direction == "<"
    assert (r.n_cases, r.n_controls) == (41, 72)
    assert r.auc == pytest.approx(0.73136856368563685, abs=TOL)  # pROC prints 0.7314
    assert r.ci_low == pytest.approx(0.63011821176162264, abs=TOL)
    assert r.ci_high == pytest.approx(0.83261891560965107, abs=TOL)
    assert r.variance == pytest.approx(0.0026686824571724378, abs=1e-12)


def test_asah_ndka_auc_and_delong_ci_match_proc(asah, asah_y):
    r = roc_auc_ci(asah_y, asah["ndka"])
    assert r.auc == pytest.approx(0.61195799457994582, abs=TOL)
    assert r.ci_low == pytest.approx(0.50124499927170263, abs=TOL)
    assert r.ci_high == pytest.approx(0.72267098988818901, abs=TOL)
    assert r.variance == pytest.approx(0.0031908105493913021, abs=1e-12)


def test_asah_paired_delong_test_matches_proc_documented_example(asah, asah_y):
    t = delong_test(asah_y, asah["s100b"], asah["ndka"], paired=True)
    assert t.statistic == pytest.approx(1.3907700257355771, abs=TOL)
    assert t.p_value == pytest.approx(0.16429517522305448, abs=TOL)
    assert t.ci_low == pytest.approx(-0.048870606422809354, abs=TOL)
    assert t.ci_high == pytest.approx(0.28769174463419145, abs=TOL)
    assert np.isnan(t.df)


def test_asah_unpaired_delong_test_matches_proc(asah, asah_y):
    t = delong_test(asah_y, asah["s100b"], asah["ndka"], paired=False)
    assert t.statistic == pytest.approx(1.5599574338968532, abs=TOL)
    assert t.df == pytest.approx(222.23539595127096, abs=1e-7)
    assert t.p_value == pytest.approx(0.12019283243084519, abs=TOL)
    # pROC gives no CI here; ours is d ± t_df sd, which excludes 0 exactly when p < 0.05.
    assert t.ci_low < 0 < t.ci_high


def test_asah_youden_thresholds_match_proc(asah, asah_y):
    s = operating_points(asah_y, asah["s100b"]).loc["youden"]
    assert s["threshold"] == pytest.approx(0.205)
    assert s["specificity"] == pytest.approx(58 / 72) and s["sensitivity"] == pytest.approx(26 / 41)
    n = operating_points(asah_y, asah["ndka"]).loc["youden"]
    assert n["threshold"] == pytest.approx(11.08)
    assert n["specificity"] == pytest.approx(37 / 72) and n["sensitivity"] == pytest.approx(29 / 41)


# A data set of our own construction, small and tied within and across classes:
#   y <- c(0,0,0,0,0,1,1,1,1,1); a <- c(1,2,2,3,4, 2,3,3,5,6); b <- c(2,1,3,3,2, 4,2,5,3,6)
#   ra <- roc(y, a, direction = "<"); rb <- roc(y, b, direction = "<")
# AUC(a) by hand: case placements 2/5, 3.5/5, 3.5/5, 5/5, 5/5 -> 19/25 = 0.76.
Y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
A = np.array([1, 2, 2, 3, 4, 2, 3, 3, 5, 6], dtype=float)
B = np.array([2, 1, 3, 3, 2, 4, 2, 5, 3, 6], dtype=float)


def test_tied_small_sample_matches_proc_values():
    ra, rb = roc_auc_ci(Y, A), roc_auc_ci(Y, B)
    assert ra.auc == pytest.approx(19 / 25, abs=1e-15)
    assert ra.variance == pytest.approx(0.0252, abs=1e-15)  # var(ra)
    assert (ra.ci_low, ra.ci_high) == pytest.approx((0.44886536309582648, 1.0), abs=TOL)  # clipped at 1
    assert rb.auc == pytest.approx(0.84, abs=1e-15) and rb.variance == pytest.approx(0.0172, abs=1e-15)
    assert (rb.ci_low, rb.ci_high) == pytest.approx((0.58295313323065212, 1.0), abs=TOL)
    t = delong_test(Y, A, B)
    assert t.statistic == pytest.approx(-0.39129279043561516, abs=TOL)
    assert t.p_value == pytest.approx(0.69558082731823689, abs=TOL)
    assert (t.ci_low, t.ci_high) == pytest.approx((-0.48071558330693154, 0.3207155833069314), abs=TOL)
    u = delong_test(Y, A, B, paired=False)
    assert u.statistic == pytest.approx(-0.38851434494290604, abs=TOL)
    assert u.df == pytest.approx(17.381230663458233, abs=1e-9)
    assert u.p_value == pytest.approx(0.70235326401764575, abs=TOL)


def test_tied_small_sample_coords_and_youden_tie_rule_match_proc():
    c = roc_curve(Y, A)
    np.testing.assert_array_equal(c.threshold, [-np.inf, 1.5, 2.5, 3.5, 4.5, 5.5, np.inf])
    np.testing.assert_allclose(c.specificity, [0, 0.2, 0.6, 0.8, 1, 1, 1])
    np.testing.assert_allclose(c.sensitivity, [1, 1, 0.8, 0.4, 0.4, 0.2, 0])
    # pROC's "best" rows are 2.5 (se .8, sp .6) and 4.5 (se .4, sp 1): J ties; we take the first.
    y = operating_points(Y, A).loc["youden"]
    assert (y["threshold"], y["sensitivity"], y["specificity"], y["accuracy"]) == pytest.approx((2.5, 0.8, 0.6, 0.7))
