"""LVEF error by disease subgroup: membership, training counts per fraction, error statistics, figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cinefm.stats.subgroups import COLUMNS, SubgroupError, lvef_subgroups, subgroup_plot

DISEASES = ["hcm", "dcm", "prior_mi"]


def _tables():
    #                 test studies ..............................  training studies ...........
    ids = ["a", "b", "c", "d", "e", "f", "t1", "t2", "t3", "t4", "t5"]
    labels = pd.DataFrame({
        "study_id": ids,
        "hcm":      [1, 1, 0, 0, 0, 0,   1, 1, 0, 0, 0],
        "dcm":      [0, 0, 1, 0, 0, 0,   0, 0, 1, 1, 0],
        "prior_mi": [1, 0, 0, 0, np.nan, 0,   0, 0, 1, 0, 0],
        "lvef":     [40, 70, 25, 60, 55, 58,   72, 68, 30, np.nan, 61],
    })
    splits = pd.DataFrame({"patient_id": [f"P{i}" for i in ids], "study_id": ids, "cohort": "x",
                           "stage": "downstream", "split": ["test"] * 6 + ["train"] * 5})
    fractions = pd.DataFrame({"patient_id": [f"P{i}" for i in ids[6:]], "study_id": ids[6:],
                              "train_fraction": [0.5, 1.0, 0.5, 0.5, 0.5], "fraction_seed": 17})
    pred = pd.DataFrame({"study_id": ids[:6], "target": [40, 70, 25, 60, 55, 58],
                         "score": [60, 72, 28, 57, 55, np.nan]})
    return labels, splits, fractions, pred


def test_rows_per_disease_pair_and_none_with_training_counts_and_errors():
    labels, splits, fractions, pred = _tables()
    table = lvef_subgroups([("full", 1.0, pred), ("half", 0.5, pred)], labels, splits, fractions, DISEASES)
    assert list(table.columns) == COLUMNS
    full = table[table["experiment"] == "full"].set_index("subgroup")
    # pairs only where a test study has both; no test study has prior_mi alone with dcm, etc.
    assert list(full.index) == ["hcm", "dcm", "prior_mi", "hcm+prior_mi", "none"]
    assert full.loc["hcm", ["n_train", "n_test"]].tolist() == [2, 2]
    assert full.loc["hcm", "bias"] == pytest.approx((20 + 2) / 2)
    assert full.loc["hcm", "error_sd"] == pytest.approx(np.std([20, 2], ddof=1))
    assert full.loc["hcm+prior_mi", ["n_train", "n_test", "mae", "bias"]].tolist() == [0, 1, 20.0, 20.0]
    assert np.isnan(full.loc["hcm+prior_mi", "error_sd"])  # one study: no SD
    # dcm: t3 and t4 are training dcm studies, but t4's LVEF is unknown
    assert full.loc["dcm", "n_train"] == 1
    # none: every label known and negative; e (prior_mi uncertain) is out, f has no score
    assert full.loc["none", ["n_train", "n_test", "bias"]].tolist() == [1, 1, -3.0]
    half = table[table["experiment"] == "half"].set_index("subgroup")
    assert half.loc["hcm", "n_train"] == 1  # t2 joins at fraction 1.0 only
    assert half.loc["hcm", "mae"] == full.loc["hcm", "mae"]


def test_a_disease_missing_from_the_labels_is_named():
    labels, splits, fractions, pred = _tables()
    with pytest.raises(SubgroupError, match=r"no column for disease\(s\) \['amyloidosis'\]"):
        lvef_subgroups([("full", 1.0, pred)], labels, splits, fractions, [*DISEASES, "amyloidosis"])
    with pytest.raises(SubgroupError, match="no 'lvef' column"):
        lvef_subgroups([("full", 1.0, pred)], labels.drop(columns="lvef"), splits, fractions, DISEASES)


def test_figure_marks_subgroups_without_training_studies():
    labels, splits, fractions, pred = _tables()
    table = lvef_subgroups([("full", 1.0, pred)], labels, splits, fractions, DISEASES)
    fig = subgroup_plot(table, min_test=1)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(table["subgroup"])
    notes = {t.get_text(): t.get_color() for t in ax.texts}
    assert notes["0 / 1"] == "#d62728" and notes["2 / 2"] == "#333333"
