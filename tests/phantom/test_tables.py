"""reports.csv, human_labels.csv: realistic text, consistent with truth, no cross-patient leaks."""

from __future__ import annotations

import re

import numpy as np

from cinefm.phantom.diseases import DISEASES
from cinefm.phantom.reports import human_labels

LVEF_RE = re.compile(r"(?:LVEF:?|LV ejection fraction|EF)\s*(\d{1,2})\s*%")


def test_reports_state_the_true_lvef_and_their_own_phi_only(cohort):
    r = cohort.reports.merge(cohort.truth, on=["patient_id", "accession_number"])
    assert len(r) == len(cohort.truth)
    names = dict(zip(cohort.reports.patient_id, cohort.reports.patient_name, strict=False))
    for row in r.itertuples():
        text = row.report_text
        stated = [int(m) for m in LVEF_RE.findall(text.split("Compared with")[0])]
        assert stated and abs(stated[0] - float(row.lvef)) <= 5, (stated, row.lvef)
        assert row.patient_id in text and row.patient_name in text and row.accession_number in text
        for other, name in names.items():
            if other != row.patient_id:
                assert other not in text and name not in text
        other_acc = set(cohort.truth.accession_number) - {row.accession_number}
        assert not any(a in text for a in other_acc)
        assert "Impression" in text and "Findings" in text


def test_reports_use_negations_hedges_and_abbreviations(cohort):
    text = "\n".join(cohort.reports.report_text)
    assert re.search(r"\bNo (evidence|features|pericardial|LGE|LV hypertrophy)", text)
    assert re.search(r"possib|cannot be excluded|\?DCM|raises the possibility|[Qq]uestionable", text)
    for abbr in ("LVEF", "LGE", "RV"):
        assert abbr in text


def test_positive_mentions_are_made_only_for_true_disease(cohort):
    r = cohort.reports.merge(cohort.truth, on=["patient_id", "accession_number"])
    cues = {"dcm": "consistent with dilated cardiomyopathy (DCM)", "hcm": "consistent with hypertrophic cardiomyopathy",
            "pericardial_effusion": "circumferential pericardial effusion"}
    for row in r.itertuples():
        for d, cue in cues.items():
            if cue in row.report_text:
                assert getattr(row, d) == 1, (d, row.accession_number)


def test_human_labels_cover_a_subset_with_two_annotators(cohort):
    lab = cohort.labels
    assert list(lab.columns) == ["accession_number", "annotator", *DISEASES]
    assert set(lab.annotator) == {"A", "B"}
    per = lab.groupby("accession_number").annotator.agg(sorted)
    assert all(a == ["A", "B"] for a in per)
    assert 0 < len(per) < len(cohort.truth)
    assert set(lab[list(DISEASES)].values.ravel()) <= {"1", "0", ""}


def test_annotators_disagree_on_five_to_ten_percent_of_labels():
    rng = np.random.default_rng(0)
    states = ["positive", "negated", "absent", "hedged"]
    p = [0.15, 0.40, 0.38, 0.07]
    diff = total = 0
    for _ in range(2000):
        mentions = {d: states[rng.choice(4, p=p)] for d in DISEASES}
        lab = human_labels(mentions, rng)
        for d in DISEASES:
            total += 1
            diff += lab["A"][d] != lab["B"][d]
    assert 0.04 <= diff / total <= 0.11
