"""Fine-tuning targets from labels.csv."""

import math

import pandas as pd
import pytest

from cinefm.data.h5 import DataError
from cinefm.data.targets import load_targets, target_table

LABELS = pd.DataFrame({"study_id": ["S1", "S2", "S3"], "hcm": ["1", "0", ""],
                       "lvef": ["35.5", "", "62"]})


def test_diseases_are_one_zero_or_nan_and_lvef_is_float():
    t = target_table(LABELS, ["hcm", "lvef"])
    assert list(t.index) == ["S1", "S2", "S3"] and list(t.columns) == ["hcm", "lvef"]
    assert t.loc["S1", "hcm"] == 1.0 and t.loc["S2", "hcm"] == 0.0 and math.isnan(t.loc["S3", "hcm"])
    assert t.loc["S1", "lvef"] == 35.5 and math.isnan(t.loc["S2", "lvef"])


def test_heart_failure_is_lvef_below_the_threshold():
    t = target_table(LABELS, ["heart_failure"], heart_failure_lvef=40)
    assert t["heart_failure"].tolist()[0] == 1.0 and t.loc["S3", "heart_failure"] == 0.0
    assert math.isnan(t.loc["S2", "heart_failure"])


def test_bad_values_and_unknown_tasks_name_row_and_column(tmp_path):
    bad = LABELS.assign(hcm=["1", "yes", "0"])
    with pytest.raises(DataError, match="row 1 column 'hcm' holds 'yes'"):
        target_table(bad, ["hcm"])
    with pytest.raises(DataError, match="no column 'amyloid'"):
        target_table(LABELS, ["amyloid"])
    with pytest.raises(DataError, match="must hold 1, 0 or empty"):
        target_table(LABELS.assign(hcm=["2", "0", "1"]), ["hcm"])
    path = tmp_path / "labels.csv"
    LABELS.to_csv(path, index=False)
    assert load_targets(path, ["hcm"]).loc["S1", "hcm"] == 1.0
