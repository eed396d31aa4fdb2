"""Reports stage + rules labels + agreement on a tiny phantom cohort, scored against its truth."""

import re

import numpy as np
import pandas as pd
import pytest

from cinefm.labels.agreement import cohen_kappa, run_agreement
from cinefm.labels.table import label_reports
from cinefm.privacy import PHANTOM_KEY, pseudonymize
from cinefm.text.indexed_json import IndexedReports
from cinefm.text.reports import build_reports

DISEASES = ["hcm", "dcm", "prior_mi", "rv_dilation", "pericardial_effusion", "amyloidosis"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from cinefm.phantom import generate_cohort

    root = tmp_path_factory.mktemp("phantom")
    generate_cohort(root, patients=10, seed=5, studies_per_patient=(2, 3), frames=(10, 10), sax_slices=(4, 4),
                    faults=False, human_label_fraction=1.0)
    return root


@pytest.fixture(scope="module")
def staged(cohort, labels_cfg):
    text = cohort / "text"
    build_reports(cohort / "reports.csv", text, PHANTOM_KEY, vocab_size=600, max_tokens=32)
    labels = label_reports(text / "reports.csv", cohort / "labels.csv", dict(labels_cfg, backend="rules"))
    truth = pd.read_csv(cohort / "truth.csv", dtype={"accession_number": str, "patient_id": str})
    truth["study_id"] = [pseudonymize(a, PHANTOM_KEY, "study") for a in truth["accession_number"]]
    return text, labels.merge(truth, on="study_id", suffixes=("", "_truth"), validate="one_to_one")


def test_none_of_the_phantoms_phi_reaches_the_text_outputs(cohort, staged):
    text, _ = staged
    raw = pd.read_csv(cohort / "reports.csv", dtype=str)
    phi = set(raw["patient_id"]) | set(raw["accession_number"]) | set(raw["exam_date"])
    phi |= {part for name in raw["patient_name"] for part in name.split()}
    for report in raw["report_text"]:  # dates as written (DOB, exam, signature) and signers
        phi |= set(re.findall(r"\d{2}/\d{2}/\d{4}|\d{4}-\d{2}-\d{2}|\d{2} [A-Z][a-z]+ \d{4}", report))
        phi |= set(re.findall(r"Dr\. [A-Z]\. ([A-Z][a-z]+)", report))
    outputs = [text / "reports.json", text / "reports.csv", *sorted((text / "tokenizer").iterdir())]
    blob = "\n".join(p.read_text() for p in outputs).lower()
    assert len(phi) > 50
    assert not [s for s in phi if s.lower() in blob]
    assert len(IndexedReports(text / "reports.json")) == len(raw)


def test_rules_labels_agree_with_the_truth(staged):
    _, m = staged
    pooled_rules, pooled_truth = [], []
    for d in DISEASES:
        known = m[d].notna()
        assert known.mean() > 0.75, d
        accuracy = (m.loc[known, d] == m.loc[known, f"{d}_truth"]).mean()
        assert accuracy >= 0.85, (d, accuracy)
        pooled_rules += list(m.loc[known, d].astype(int))
        pooled_truth += list(m.loc[known, f"{d}_truth"])
    assert cohen_kappa(pooled_rules, pooled_truth) >= 0.8


def test_lvef_is_read_from_every_report_close_to_the_truth(staged):
    _, m = staged
    assert m["lvef"].notna().all()
    err = (m["lvef"].astype(float) - m["lvef_truth"]).abs()
    assert err.max() <= 6 and err.mean() <= 2  # reports state the truth + reader noise (sd ~1.2)
    stated_hf = (m["heart_failure"] == 1).to_numpy()
    assert (stated_hf == (m["heart_failure_truth"] == 1).to_numpy()).mean() >= 0.9


def test_rules_match_what_both_annotators_read_and_agreement_is_written(cohort, staged):
    _, m = staged
    out = run_agreement(cohort / "labels.csv", cohort / "human_labels.csv", cohort / "agreement.csv",
                        cohort / "agreement.png", DISEASES, key=PHANTOM_KEY, n_boot=200)
    assert len(out) == 3 * len(DISEASES)
    human = pd.read_csv(cohort / "human_labels.csv", dtype=str, keep_default_na=False)
    human["study_id"] = [pseudonymize(a, PHANTOM_KEY, "study") for a in human["accession_number"]]
    wide = human.pivot(index="study_id", columns="annotator", values=DISEASES)
    labels = m.set_index("study_id")
    agree, total = 0, 0
    for d in DISEASES:
        both = wide[d][(wide[d]["A"] == wide[d]["B"]) & (wide[d]["A"] != "")]["A"]
        ours = labels.loc[both.index, d]
        agree += int((ours.astype("Float64") == both.astype(float)).sum())
        total += len(both)
    assert total > 50 and agree / total >= 0.95
    model_rows = out[out["rater"] == "model"]
    assert np.nanmean(model_rows["kappa"]) >= 0.7
