"""Cohort plan: who the patients are, which diseases and studies they have, which faults hit them.

Planning is cheap and happens once in the parent process from the cohort seed; the
expensive rendering then runs per patient with a per-patient random stream, so the
output does not depend on how many worker processes draw it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cinefm.phantom.diseases import DEFAULT_PREVALENCE, DISEASES, EXCLUSIVE
from cinefm.phantom.vendors import VENDORS

FAULT_KINDS = ("truncated", "not_dicom", "exact_duplicate", "duplicate_sop", "missing_frame", "mixed_matrix")
FAULT_RATE = 0.12  # share of patients hit by each fault kind (at least one patient each)

_GIVEN_F = ("Anna", "Maria", "Sofia", "Emma", "Laura", "Julia", "Clara", "Elena", "Hannah", "Lea",
            "Ingrid", "Marta", "Nora", "Olga", "Paula", "Rosa", "Sara", "Teresa", "Vera", "Zoe")
_GIVEN_M = ("Adam", "Bruno", "Carl", "David", "Erik", "Felix", "Georg", "Henrik", "Ivan", "Jonas",
            "Karl", "Lukas", "Marco", "Niklas", "Oskar", "Peter", "Rafael", "Simon", "Tobias", "Viktor")
_FAMILY = ("Albers", "Brandt", "Castillo", "Dahl", "Eriksen", "Fischer", "Gruber", "Hansen", "Ivanova",
           "Jansen", "Keller", "Lindqvist", "Moreau", "Novak", "Olsen", "Petrov", "Quist", "Rossi",
           "Schmidt", "Toth", "Ulrich", "Vogel", "Weber", "Xavier", "Young", "Zimmermann", "Bauer",
           "Costa", "Duarte", "Engel", "Ferrari", "Gomez", "Horvat", "Iversen", "Jovanovic", "Kowalski",
           "Larsen", "Meyer", "Nilsen", "Ortega", "Pereira", "Richter", "Santos", "Thorsen", "Urban",
           "Varga", "Wagner", "Yilmaz", "Zeller", "Berger")


@dataclass(frozen=True)
class StudyPlan:
    """One CMR exam of a patient."""

    index: int  # 0-based within the patient
    date: dt.date
    time: str  # HHMMSS
    accession: str
    vendor: str
    frames: int  # frames per cardiac cycle
    sax_slices: int


@dataclass(frozen=True)
class PatientPlan:
    """One synthetic patient and the studies to render."""

    index: int
    mrn: str  # DICOM PatientID and reports.csv patient_id
    family: str
    given: str
    sex: str  # "M" | "F"
    birth_date: dt.date
    diseases: frozenset[str]
    studies: tuple[StudyPlan, ...]
    faults: tuple[str, ...]  # fault kinds injected into this patient's files

    @property
    def dicom_name(self) -> str:
        return f"{self.family.upper()}^{self.given.upper()}"

    @property
    def display_name(self) -> str:
        return f"{self.given} {self.family}"


def _assign_diseases(n: int, rng: np.random.Generator, prevalence: Mapping[str, float]) -> list[set[str]]:
    """Give each disease to round(prevalence * n) patients (at least one when n >= 4)."""
    out: list[set[str]] = [set() for _ in range(n)]
    for d in DISEASES:
        k = int(round(prevalence.get(d, 0.0) * n))
        if prevalence.get(d, 0.0) > 0 and n >= 4:
            k = max(k, 1)
        pool = [i for i in range(n) if not (d in EXCLUSIVE and out[i] & set(EXCLUSIVE))]
        for i in rng.permutation(pool)[:k]:
            out[int(i)].add(d)
    return out


def _assign_faults(n: int, rng: np.random.Generator) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(n)]
    for kind in FAULT_KINDS:
        k = max(1, int(round(FAULT_RATE * n)))
        for i in rng.permutation(n)[: min(k, n)]:
            out[int(i)].append(kind)
    return out


def _vendor_p(weights: Mapping[str, float] | None) -> np.ndarray | None:
    """Probabilities over :data:`VENDORS` from ``weights`` (missing vendors weigh 0); None: uniform."""
    if weights is None:
        return None
    unknown = set(weights) - set(VENDORS)
    if unknown:
        raise ValueError(f"phantom vendor_weights: unknown vendors {sorted(unknown)}; use {list(VENDORS)}")
    w = np.array([float(weights.get(v, 0.0)) for v in VENDORS])
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"phantom vendor_weights: weights must be >= 0 with a positive sum, got {dict(weights)}")
    return w / w.sum()


def plan_cohort(
    patients: int,
    seed: int,
    studies_per_patient: tuple[int, int],
    frames: tuple[int, int],
    sax_slices: tuple[int, int],
    faults: bool,
    prevalence: Mapping[str, float] | None = None,
    vendor_weights: Mapping[str, float] | None = None,
) -> list[PatientPlan]:
    """Draw the whole cohort's patients, studies, diseases and fault assignments from ``seed``.

    ``vendor_weights`` (vendor -> weight, normalised) skews the scanner mix of a site, e.g. a second
    hospital that scans mostly on Philips; None draws the vendors uniformly (the same bytes as before).
    """
    rng = np.random.default_rng([seed, 0xC0C0])
    vendor_p = _vendor_p(vendor_weights)
    prevalence = DEFAULT_PREVALENCE if prevalence is None else prevalence
    unknown = set(prevalence) - set(DISEASES)
    if unknown:
        raise ValueError(f"phantom prevalence: unknown disease keys {sorted(unknown)}; use {list(DISEASES)}")
    diseases = _assign_diseases(patients, rng, prevalence)
    fault_sets = _assign_faults(patients, rng) if faults else [[] for _ in range(patients)]
    names: set[tuple[str, str]] = set()
    mrns: set[str] = set()
    accessions: set[str] = set()
    epoch = dt.date(2014, 1, 1)
    out = []
    for i in range(patients):
        sex = "M" if rng.random() < 0.55 else "F"
        while True:
            given = str(rng.choice(_GIVEN_M if sex == "M" else _GIVEN_F))
            family = str(rng.choice(_FAMILY))
            if (given, family) not in names:
                names.add((given, family))
                break
        while True:
            mrn = f"{rng.integers(10_000_000, 99_999_999)}"
            if mrn not in mrns:
                mrns.add(mrn)
                break
        age0 = int(rng.integers(22, 84))
        first = epoch + dt.timedelta(days=int(rng.integers(0, 365 * 7)))
        birth = first - dt.timedelta(days=365 * age0 + int(rng.integers(0, 365)))
        n_st = int(rng.integers(studies_per_patient[0], studies_per_patient[1] + 1))
        home_vendor = str(rng.choice(VENDORS, p=vendor_p))
        studies = []
        date = first
        for j in range(n_st):
            if j:
                date = date + dt.timedelta(days=int(rng.integers(45, 700)))
            while True:
                acc = f"A{rng.integers(10_000_000, 99_999_999)}"
                if acc not in accessions:
                    accessions.add(acc)
                    break
            vendor = home_vendor if rng.random() < 0.7 else str(rng.choice(VENDORS, p=vendor_p))
            studies.append(StudyPlan(
                index=j,
                date=date,
                time=f"{rng.integers(7, 18):02d}{rng.integers(0, 60):02d}{rng.integers(0, 60):02d}",
                accession=acc,
                vendor=vendor,
                frames=int(rng.integers(frames[0], frames[1] + 1)),
                sax_slices=int(rng.integers(sax_slices[0], sax_slices[1] + 1)),
            ))
        out.append(PatientPlan(
            index=i, mrn=mrn, family=family, given=given, sex=sex, birth_date=birth,
            diseases=frozenset(diseases[i]), studies=tuple(studies), faults=tuple(fault_sets[i]),
        ))
    return out
