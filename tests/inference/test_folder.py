"""The pure parts of export/predict: version compatibility, calls at operating points, the scoring flow."""

from __future__ import annotations

import pandas as pd
import pytest

from cinefm.inference.folder import compatibility_problem, folder_digest
from cinefm.inference.predict import calls, scoring_flow


@pytest.mark.parametrize(("exported", "installed", "ok"), [
    ("2.14.1", "2.15.0+cu130", True),   # same major
    ("2.14.1", "3.0.0", False),         # another major
    ("0.1.0", "0.1.7", True),           # 0.x: same minor
    ("0.1.0", "0.2.0", False),          # 0.x: the minor is the major
])
def test_versions_agree_on_the_major_number(exported, installed, ok):
    problem = compatibility_problem("torch", exported, installed)
    assert (problem is None) == ok
    if not ok:
        assert "incompatible major version" in problem and exported in problem


def test_digest_depends_on_every_checksum_not_on_order():
    a = {"weights.safetensors": "aa", "recipe.yaml": "bb"}
    assert folder_digest(a) == folder_digest(dict(reversed(list(a.items()))))
    assert folder_digest(a) != folder_digest({**a, "recipe.yaml": "bc"})


def test_calls_use_each_tasks_direction_and_leave_tasks_without_a_threshold_empty():
    rows = pd.DataFrame({"task": ["hcm", "hcm", "lvef", "lvef", "dcm"], "score": [0.7, 0.2, 35.0, 55.0, 0.9]})
    thresholds = pd.DataFrame({"task": ["hcm", "lvef"], "call_for": ["hcm", "heart_failure"],
                               "point": ["youden", "youden"], "direction": ["<", ">"], "threshold": [0.5, 40.0]})
    out = calls(rows, thresholds)
    assert out["call_youden"].tolist()[:4] == [1, 0, 1, 0]
    assert pd.isna(out["call_youden"].iloc[4])
    assert out["call_for"].tolist() == ["hcm", "hcm", "heart_failure", "heart_failure", "dcm"]
    edge = calls(pd.DataFrame({"task": ["hcm", "lvef"], "score": [0.5, 40.0]}), thresholds)
    assert edge["call_youden"].tolist() == [1, 1]  # at the threshold: positive both ways (pROC)


def test_scoring_flow_counts_every_study_once():
    studies = pd.DataFrame({"status": ["scored", "scored", "excluded", "failed"],
                            "reason": ["", "", "no_cine_view: none", "extract: bad"]})
    flow = scoring_flow(studies)
    assert flow.loc[flow["stage"] == "input", "count"].item() == 4
    assert flow.loc[flow["stage"] == "kept", "count"].item() == 2
    assert flow.loc[flow["stage"] == "excluded", "count"].sum() == 2
    assert set(flow.loc[flow["stage"] == "excluded", "reason"]) == {"no_cine_view", "extract"}
