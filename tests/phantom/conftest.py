"""Phantom cohorts generated once per session.

``cohort``: 6 patients with every fault kind, enhanced and RLE series, raised disease
prevalence so that each disease has positives; small frame counts keep it fast.
``tiny``: the smallest cohort settings, for determinism checks that generate several times.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from cinefm.phantom import generate_cohort

COHORT_OPTS = dict(
    studies_per_patient=(1, 2),
    frames=(20, 24),
    sax_slices=(8, 9),
    enhanced_fraction=0.6,
    rle_fraction=0.3,
    human_label_fraction=0.6,
    faults=True,
    prevalence={"hcm": 0.2, "dcm": 0.34, "prior_mi": 0.34, "rv_dilation": 0.34,
                "pericardial_effusion": 0.34, "amyloidosis": 0.17},
)
TINY_OPTS = dict(studies_per_patient=(1, 1), frames=(20, 20), sax_slices=(8, 8), enhanced_fraction=0.5,
                 rle_fraction=0.5, faults=True)


@dataclass
class Cohort:
    out: Path
    dicom: Path
    truth: pd.DataFrame
    reports: pd.DataFrame
    labels: pd.DataFrame
    faults: pd.DataFrame

    @functools.cached_property
    def headers(self) -> dict[Path, pydicom.Dataset]:
        """Headers (no pixels) of every valid file, read once."""
        return {f: pydicom.dcmread(f, stop_before_pixels=True) for f in self.valid_files()}

    def valid_files(self) -> list[Path]:
        """Files a correct scan marks ok: everything not listed in faults.csv."""
        bad = set(self.faults.relpath)
        return [f for f in sorted(self.dicom.rglob("*")) if f.is_file() and f.relative_to(self.dicom).as_posix() not in bad]


def load(out: Path) -> Cohort:
    read = dict(dtype={"patient_id": str, "accession_number": str}, keep_default_na=False)
    return Cohort(
        out=out,
        dicom=out / "dicom",
        truth=pd.read_csv(out / "truth.csv", **read),
        reports=pd.read_csv(out / "reports.csv", **read),
        labels=pd.read_csv(out / "human_labels.csv", dtype=str, keep_default_na=False),
        faults=pd.read_csv(out / "faults.csv", keep_default_na=False),
    )


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Cohort:
    out = tmp_path_factory.mktemp("phantom")
    generate_cohort(out, patients=6, seed=11, jobs=2, **COHORT_OPTS)
    return load(out)
