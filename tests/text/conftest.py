"""Shared inputs of the text tests: a messy hospital report CSV and the stage run on it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cinefm.privacy import PHANTOM_KEY

HEADER = ["patient_id", "patient_name", "accession_number", "exam_date", "report_text"]

# (patient_id, patient_name, accession_number, exam_date, report_text); PHI in every form.
GOOD_ROWS = [
    ("40112233", "Rossi^Anna", "A10000001", "2021-03-04",
     "CARDIAC MRI REPORT\nPatient: Anna Rossi   MRN: 40112233   DOB: 13/01/1961\n"
     "Exam date: 04 March 2021   Accession: A10000001\n\n"
     "Clinical history: Ms. Rossi is a 60-year-old referred for breathlessness.\n"
     "Findings: LV: LVEDV 150 ml, LVESV 60 ml, LVEF 60%, LV mass 120 g. "
     "Asymmetric septal hypertrophy with maximal wall thickness of 19 mm, consistent with "
     "hypertrophic cardiomyopathy (HCM). No pericardial effusion.\n"
     "Impression:\n1. Hypertrophic cardiomyopathy.\n"
     "Reported by Dr. E. Novak on 2021-03-05. Questions: call 555-201-3344."),
    ("40998877", "Weber^Jonas", "A10000002", "2020-11-30",
     "Patient: Jonas Weber (MRN 40998877), seen 11/30/2020.\n"
     "Findings: LV ejection fraction 28%. Dilated LV with globally reduced systolic function, "
     "consistent with dilated cardiomyopathy (DCM). Amyloid cannot be excluded.\n"
     "Impression: Severely impaired LV systolic function (LVEF 28%). Mr Weber was informed. "
     "Signed by: WEBER, J. (no relation); jonas.weber@example.org"),
    ("40555666", "Meyer^Sofia", "A10000003", "2019-07-15",
     "Ms. Meyer, 92-year-old. EF 55 %. The RV is dilated (RVEDV 220 ml). "
     "Compared with the prior study of July 2018, no change in the known pericardial effusion.\n"
     "Impression: RV dilatation."),
    ("40777888", "Hansen^Erik", "A10000004", "2022-01-02",
     "Findings: LVEF: 45%. Old LAD territory infarct (prior MI) with an akinetic anteroseptal "
     "segment. Cardiac amyloidosis."),
]


def write_messy_csv(path: Path) -> Path:
    """GOOD_ROWS plus one of each kind of bad row (numbered in comments: data rows 5-9)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(GOOD_ROWS)
        fh.write('40000005,Short^Row,A10000005\n')  # row 5: malformed (3 fields)
        w.writerow(["40000006", "Empty^Text", "A10000006", "2020-01-01", "   "])  # row 6: empty
        w.writerow(["40000007", "Dup^Acc", "A10000001", "2020-01-01", "LVEF 50%."])  # row 7: duplicate
    with open(path, "ab") as fh:  # row 8: Windows-1252 bytes (kept, repaired)
        fh.write(b'40000008,Caf\xe9^Zo\xeb,A10000008,2020-02-02,"Zo\xeb Caf\xe9: LVEF 61 %. No HCM."\n')
        fh.write(b'40000009,No^Accession,,2020-02-02,"LVEF 50%."\n')  # row 9: missing accession
    return path


@pytest.fixture(scope="session")
def good_rows() -> list[tuple[str, str, str, str, str]]:
    return GOOD_ROWS


@pytest.fixture(scope="session")
def messy_csv(tmp_path_factory) -> Path:
    return write_messy_csv(tmp_path_factory.mktemp("reports") / "reports.csv")


@pytest.fixture(scope="session")
def built(messy_csv, tmp_path_factory):
    """The reports stage run once on the messy CSV (trained WordPiece)."""
    from cinefm.text.reports import build_reports

    out = tmp_path_factory.mktemp("text")
    summary = build_reports(messy_csv, out, PHANTOM_KEY, vocab_size=300, min_frequency=1, max_tokens=16)
    return out, summary
