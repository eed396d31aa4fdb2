"""``generate_cohort``: the whole phantom export (DICOM tree + CSV tables), deterministic per seed.

Layout written under ``out_dir`` (see the project brief):

- ``dicom/``: nested export tree (valid cine series of three vendors, non-cine series, faults);
- ``reports.csv``: patient_id, patient_name, accession_number, exam_date, report_text;
- ``human_labels.csv``: accession_number, annotator, one column per disease (1 / 0 / empty);
- ``truth.csv``: patient_id, accession_number, study_instance_uid, vendor, lvef, edv_ml,
  esv_ml, one 0/1 column per disease, heart_failure (for checks only);
- ``faults.csv``: relpath, fault, expected_status, series_instance_uid, detail — every file
  a scan should not mark ``ok`` (faults and non-cine series); all other files are valid cine.

Everything is first written into a hidden temporary folder beside the outputs and moved
into place at the end, so an interrupted run leaves the previous outputs untouched and a
rerun with the same arguments gives the same bytes.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.atomic import write_csv
from cinefm.phantom import faults as fault_mod
from cinefm.phantom.diseases import DISEASES, sample_patient_heart
from cinefm.phantom.plan import PatientPlan, plan_cohort
from cinefm.phantom.reports import human_labels, measure, write_report
from cinefm.phantom.study import FaultRow, Options, write_study

log = logging.getLogger(__name__)

HEART_FAILURE_LVEF = 40.0  # truth.csv heart_failure := LVEF < this (config labels.heart_failure_lvef)
FAULT_COLUMNS = ["relpath", "fault", "expected_status", "series_instance_uid", "detail"]


@dataclass(frozen=True)
class _Job:
    patient: PatientPlan
    root: str
    seed: int
    opts: Options
    human_label_fraction: float


@dataclass
class PatientOutput:
    """Rows one patient contributes to the cohort tables."""

    truth: list[dict]
    reports: list[dict]
    labels: list[dict]
    faults: list[FaultRow]
    n_files: int


def _patient(job: _Job) -> PatientOutput:
    """Render, write and describe one patient's studies (runs in a worker process)."""
    p = job.patient
    root = Path(job.root)
    rng = np.random.default_rng([job.seed, p.index, 7])
    base = sample_patient_heart(p.diseases, rng, male=p.sex == "M")
    out = PatientOutput([], [], [], [], 0)
    valid = []
    prior = None
    for st in p.studies:
        res = write_study(p, st, base, root, job.seed, job.opts, p.faults if st.index == 0 else ())
        valid += res.files
        out.faults += res.faults
        facts = measure(res.heart, res.lvef, res.edv_ml, res.esv_ml, base.territory,
                        "amyloidosis" in p.diseases, rng)
        rep = write_report(p, st, facts, prior, rng)
        prior = (st.date, facts.lvef)
        out.reports.append(dict(patient_id=p.mrn, patient_name=p.display_name, accession_number=st.accession,
                                exam_date=st.date.isoformat(), report_text=rep.text))
        truth = dict(patient_id=p.mrn, accession_number=st.accession, study_instance_uid=res.study_uid,
                     vendor=res.vendor, lvef=round(res.lvef, 2), edv_ml=round(res.edv_ml, 2),
                     esv_ml=round(res.esv_ml, 2))
        truth.update({d: int(d in p.diseases) for d in DISEASES})
        truth["heart_failure"] = int(res.lvef < HEART_FAILURE_LVEF)
        out.truth.append(truth)
        if rng.random() < job.human_label_fraction:
            for annotator, labs in human_labels(rep.mentions, rng).items():
                out.labels.append(dict(accession_number=st.accession, annotator=annotator, **labs))
    out.faults += fault_mod.inject(root, p.faults, valid, rng)
    out.n_files = len(valid) + len(out.faults)
    return out


def _run(jobs: list[_Job], n_proc: int, progress: Callable[[int], None] | None) -> list[PatientOutput]:
    if n_proc <= 1 or len(jobs) <= 1:
        outs = []
        for j in jobs:
            outs.append(_patient(j))
            if progress:
                progress(1)
        return outs
    ctx = mp.get_context("spawn" if os.name == "nt" else "fork")
    with ctx.Pool(min(n_proc, len(jobs))) as pool:
        outs = []
        for o in pool.imap(_patient, jobs):
            outs.append(o)
            if progress:
                progress(1)
        return outs


def generate_cohort(
    out_dir: str | os.PathLike,
    patients: int,
    seed: int,
    jobs: int = 1,
    studies_per_patient: tuple[int, int] = (1, 3),
    frames: tuple[int, int] = (20, 50),
    sax_slices: tuple[int, int] = (8, 12),
    enhanced_fraction: float = 0.35,
    rle_fraction: float = 0.2,
    human_label_fraction: float = 0.4,
    faults: bool = True,
    prevalence: Mapping[str, float] | None = None,
    vendor_weights: Mapping[str, float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Path]:
    """Write a synthetic multi-vendor cine CMR export of ``patients`` patients under ``out_dir``.

    The output depends only on the arguments other than ``jobs`` and ``progress`` (same seed,
    same bytes). ``progress`` is called with 1 after each patient. Returns the output paths.
    """
    _check(patients, studies_per_patient, frames, sax_slices, enhanced_fraction, rle_fraction, human_label_fraction)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".phantom-tmp-*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out / f".phantom-tmp-{os.getpid()}"
    root = tmp / "dicom"
    root.mkdir(parents=True)
    plans = plan_cohort(patients, seed, tuple(studies_per_patient), tuple(frames), tuple(sax_slices), faults,
                        prevalence, vendor_weights)
    opts = Options(enhanced_fraction=enhanced_fraction, rle_fraction=rle_fraction)
    log.info("phantom: %d patients, %d studies, seed %d, %d worker(s) -> %s", patients,
             sum(len(p.studies) for p in plans), seed, jobs, out)
    try:
        results = _run([_Job(p, str(root), seed, opts, human_label_fraction) for p in plans], jobs, progress)
        fault_rows = fault_mod.export_junk(root) if faults else []
        for r in results:
            fault_rows += r.faults
        tables = {
            "truth.csv": pd.DataFrame([row for r in results for row in r.truth]),
            "reports.csv": pd.DataFrame([row for r in results for row in r.reports]),
            "human_labels.csv": pd.DataFrame([row for r in results for row in r.labels],
                                             columns=["accession_number", "annotator", *DISEASES]),
            "faults.csv": pd.DataFrame([f.__dict__ for f in fault_rows], columns=FAULT_COLUMNS)
            .sort_values("relpath", kind="stable"),
        }
        for name, df in tables.items():
            write_csv(df, tmp / name)
        final = out / "dicom"
        if final.exists():
            shutil.rmtree(final)
        os.replace(root, final)
        for name in tables:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n_files = sum(r.n_files for r in results) + (2 if faults else 0)
    log.info("phantom: wrote %d files, %d fault/non-cine rows", n_files, len(fault_rows))
    return {"dicom": out / "dicom", **{n.removesuffix(".csv"): out / n for n in tables}}


def _check(patients, studies, frames, sax, *fractions) -> None:
    if patients < 1:
        raise ValueError(f"phantom.patients: must be >= 1, got {patients}")
    for key, rng_, lo in (("studies_per_patient", studies, 1), ("frames", frames, 10), ("sax_slices", sax, 4)):
        if len(rng_) != 2 or rng_[0] > rng_[1] or rng_[0] < lo:
            raise ValueError(f"phantom.{key}: expected [min, max] with {lo} <= min <= max, got {list(rng_)}")
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"phantom fractions must lie in [0, 1], got {f}")
