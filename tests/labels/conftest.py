"""Shared inputs of the label tests: the project's vocabulary and a small report table."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cinefm.config import REPO_ROOT, load_config
from cinefm.labels.vocabulary import load_vocabulary

DISEASES = ["hcm", "dcm", "prior_mi", "rv_dilation", "pericardial_effusion", "amyloidosis"]

# study_id -> (report text, expected rules labels; None = unknown, missing key = 0, lvef)
REPORTS = {
    "S01": ("Findings: LVEF 62%. Asymmetric septal hypertrophy, consistent with hypertrophic "
            "cardiomyopathy (HCM). No pericardial effusion.", {"hcm": 1}, 62.0),
    "S02": ("LV ejection fraction 25%. Dilated cardiomyopathy. Amyloid cannot be excluded.",
            {"dcm": 1, "amyloidosis": None}, 25.0),
    "S03": ("EF 48 %. Old LAD territory infarct (prior MI). Dilated right ventricle. "
            "Small circumferential pericardial effusion.",
            {"prior_mi": 1, "rv_dilation": 1, "pericardial_effusion": 1}, 48.0),
    "S04": ("Normal CMR study. No evidence of cardiac amyloidosis. The right ventricle is not dilated.",
            {}, None),
    "S05": ("LVEF: 55%. Cardiac amyloidosis. Possible small pericardial effusion versus epicardial fat.",
            {"amyloidosis": 1, "pericardial_effusion": None}, 55.0),
}


@pytest.fixture(scope="session")
def labels_cfg() -> dict:
    cfg = load_config(REPO_ROOT / "config" / "config.yaml")["labels"]
    return dict(cfg, vocabulary=str(REPO_ROOT / cfg["vocabulary"]))


@pytest.fixture(scope="session")
def vocab(labels_cfg):
    return load_vocabulary(labels_cfg["vocabulary"], labels_cfg["diseases"])


@pytest.fixture(scope="session")
def reports() -> dict:
    return REPORTS


@pytest.fixture(scope="session")
def reports_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels_in") / "reports.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "study_id", "report_text"])
        for sid, (text, _, _) in REPORTS.items():
            w.writerow([f"P{sid}", sid, text])
    return path
