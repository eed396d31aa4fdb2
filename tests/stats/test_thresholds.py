"""Operating points: Youden, sensitivity/specificity targets, tie rules, both directions."""

import numpy as np
import pytest

from cinefm.stats import operating_points

Y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
S = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 6.5, 8.5, 10, 11, 13, 14, 15, 16, 17, 18], dtype=float)


def test_rows_and_columns_follow_the_contract():
    ops = operating_points(Y, S)
    assert list(ops.index) == ["youden", "sensitivity_0.9", "specificity_0.9"]
    assert list(ops.columns[:4]) == ["threshold", "sensitivity", "specificity", "accuracy"]
    assert ops.index.name == "point"


def test_youden_maximises_sensitivity_plus_specificity():
    ops = operating_points(Y, S)
    y = ops.loc["youden"]
    grid = np.unique(S)
    mids = (grid[1:] + grid[:-1]) / 2
    j = [((S[Y == 1] >= t).mean() + (S[Y == 0] < t).mean()) for t in mids]
    assert y["sensitivity"] + y["specificity"] == pytest.approx(max(j))
    assert y["threshold"] in mids


def test_sensitivity_target_takes_the_most_specific_threshold_reaching_it():
    # se >= 0.9 allows thresholds 6.75, 7.5 and 8.25 (one case, 6.5, below); 8.25 is the most specific.
    ops = operating_points(Y, S, sensitivity_target=0.9, specificity_target=0.9)
    se = ops.loc["sensitivity_0.9"]
    assert (se["threshold"], se["sensitivity"], se["specificity"]) == (8.25, 0.9, 0.8)
    assert se["accuracy"] == pytest.approx((9 + 8) / 20)
    # sp >= 0.9 needs 9 controls below: 9.5 and above; 9.5 keeps the most cases.
    sp = ops.loc["specificity_0.9"]
    assert (sp["threshold"], sp["sensitivity"], sp["specificity"]) == (9.5, 0.8, 0.9)


def test_target_ties_prefer_the_better_target_metric():
    # se >= 0.6 allows 1.5 (se 1, sp 1/2) and 2.5 (se 2/3, sp 1/2): equal specificity, so 1.5.
    ops = operating_points([0, 0, 1, 1, 1], [1, 4, 2, 3, 5], sensitivity_target=0.6)
    se = ops.loc["sensitivity_0.6"]
    assert (se["threshold"], se["sensitivity"], se["specificity"]) == (1.5, 1.0, 0.5)


def test_greater_direction_calls_low_scores_positive():
    ops = operating_points(Y, -S, direction=">")
    ref = operating_points(Y, S)
    np.testing.assert_allclose(ops["threshold"], -ref["threshold"])
    np.testing.assert_allclose(ops[["sensitivity", "specificity", "accuracy"]], ref[["sensitivity", "specificity", "accuracy"]])


def test_targets_of_one_reach_the_extreme_thresholds():
    ops = operating_points([0, 0, 1, 1], [0.1, 0.9, 0.2, 0.8], sensitivity_target=1.0, specificity_target=1.0)
    assert ops.loc["sensitivity_1", "threshold"] == pytest.approx(0.15)
    assert ops.loc["sensitivity_1", "sensitivity"] == 1.0 and ops.loc["sensitivity_1", "specificity"] == 0.5
    assert ops.loc["specificity_1", "sensitivity"] == 0.0 and ops.loc["specificity_1", "threshold"] == np.inf


def test_targets_outside_the_unit_interval_are_rejected():
    with pytest.raises(ValueError, match="sensitivity_target"):
        operating_points(Y, S, sensitivity_target=90)


def test_thresholds_chosen_on_validation_are_applied_unchanged_to_test():
    from cinefm.stats.thresholds import counts_at, transferred_operating_points

    rng = np.random.default_rng(2)
    y_val, y_test = (rng.random(80) < 0.4).astype(float), (rng.random(60) < 0.4).astype(float)
    s_val, s_test = rng.normal(size=80) + y_val, rng.normal(size=60) + 1.3 * y_test
    ops = transferred_operating_points(y_val, s_val, y_test, s_test)
    chosen = operating_points(y_val, s_val)
    assert list(ops["split"]) == ["val", "test"] * 3
    for point, row in chosen.iterrows():
        val, test = (ops[(ops.point == point) & (ops.split == sp)].iloc[0] for sp in ("val", "test"))
        assert val["threshold"] == test["threshold"] == row["threshold"]
        assert val["sensitivity"] == pytest.approx(row["sensitivity"])
        # re-derived on the test split by hand: a case is called at score >= threshold
        t = row["threshold"]
        called = s_test >= t
        assert test["tp"] == np.sum(called & (y_test == 1)) and test["fp"] == np.sum(called & (y_test == 0))
        assert test["sensitivity"] == pytest.approx(np.mean(s_test[y_test == 1] >= t))
        assert test["specificity"] == pytest.approx(np.mean(s_test[y_test == 0] < t))
        assert test["accuracy"] == pytest.approx(np.mean(called == (y_test == 1)))
    # the test-fitted Youden point is at least as good on test as the transferred one (it saw the labels)
    fitted = operating_points(y_test, s_test).loc["youden"]
    transferred = ops[(ops.point == "youden") & (ops.split == "test")].iloc[0]
    assert fitted["sensitivity"] + fitted["specificity"] >= transferred["sensitivity"] + transferred["specificity"]
    # direction ">": lower scores are cases (LVEF for heart failure)
    lower = counts_at([1, 1, 0, 0], [20.0, 35.0, 50.0, 39.0], 40.0, direction=">")
    assert (lower["tp"], lower["fp"], lower["tn"], lower["fn"]) == (2, 1, 1, 0)
