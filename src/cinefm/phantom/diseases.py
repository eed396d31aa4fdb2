"""Diseases -> heart geometry: how each condition changes what the cine videos show.

Disease keys are the project's (config ``labels.diseases``). Effects, chosen to mirror the
textbook CMR phenotype:

- ``hcm``: thick walls, asymmetric septal hypertrophy, small hyperdynamic cavity.
- ``dcm``: dilated, elongated LV with thin walls and low LVEF.
- ``prior_mi``: a thinned, akinetic sector in a coronary territory (bright on LGE).
- ``rv_dilation``: enlarged, hypokinetic right ventricle.
- ``pericardial_effusion``: a fluid ring inside the pericardium.
- ``amyloidosis``: concentric thick, bright, textured myocardium, reduced long-axis motion.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cinefm.phantom.anatomy import Heart, ejection_fraction, solve_radial_es

DISEASES = ("hcm", "dcm", "prior_mi", "rv_dilation", "pericardial_effusion", "amyloidosis")

# Default share of patients with each disease; cardiomyopathies are mutually exclusive.
DEFAULT_PREVALENCE = {
    "hcm": 0.15,
    "dcm": 0.15,
    "prior_mi": 0.2,
    "rv_dilation": 0.15,
    "pericardial_effusion": 0.15,
    "amyloidosis": 0.12,
}
EXCLUSIVE = ("dcm", "hcm", "amyloidosis")

# Coronary territories as angles (rad) relative to the anterior wall direction.
TERRITORIES = {"LAD": 0.45, "LCx": -1.9, "RCA": np.pi}


@dataclasses.dataclass(frozen=True)
class PatientHeart:
    """Per-patient baseline that persists across the patient's studies."""

    r_endo: float
    length: float
    wall: float
    target_ef: float
    territory: str  # infarct territory (used only with prior_mi)
    mi_width: float
    mi_start: float
    rv_scale: float
    effusion_mm: float


def sample_patient_heart(diseases: frozenset[str], rng: np.random.Generator, male: bool) -> PatientHeart:
    """Baseline heart size, LVEF and disease features of one patient."""
    size = 1.06 if male else 1.0
    r_endo = rng.uniform(23.0, 26.5) * size
    length = rng.uniform(84.0, 96.0) * size
    wall = rng.uniform(7.5, 9.5)
    ef = rng.uniform(56.0, 70.0)
    if "hcm" in diseases:
        r_endo = rng.uniform(19.0, 22.0) * size
        wall = rng.uniform(11.0, 14.0)
        ef = rng.uniform(66.0, 80.0)
    if "dcm" in diseases:
        r_endo = rng.uniform(31.0, 37.0) * size
        length = rng.uniform(100.0, 112.0) * size
        wall = rng.uniform(5.5, 7.5)
        ef = rng.uniform(16.0, 36.0)
    if "amyloidosis" in diseases:
        wall = rng.uniform(13.0, 17.0)
        r_endo = rng.uniform(20.0, 23.5) * size
        ef = rng.uniform(40.0, 58.0)
    if "prior_mi" in diseases:
        r_endo *= rng.uniform(1.04, 1.14)
        ef = min(ef, rng.uniform(30.0, 50.0))
    return PatientHeart(
        r_endo=float(r_endo),
        length=float(length),
        wall=float(wall),
        target_ef=float(ef),
        territory=str(rng.choice(list(TERRITORIES))),
        mi_width=float(rng.uniform(1.0, 1.6)),
        mi_start=float(rng.uniform(0.3, 0.55)),
        rv_scale=float(rng.uniform(1.45, 1.75) if "rv_dilation" in diseases else rng.uniform(0.9, 1.1)),
        effusion_mm=float(rng.uniform(6.0, 16.0)) if "pericardial_effusion" in diseases else 0.0,
    )


def study_heart(
    base: PatientHeart,
    diseases: frozenset[str],
    anterior_angle: float,
    rng: np.random.Generator,
) -> tuple[Heart, float, float, float]:
    """The heart at one study (baseline + visit-to-visit variation) and its (LVEF, EDV, ESV)."""
    thickening, descent, rv_es = 0.45, rng.uniform(0.10, 0.15), 0.72
    septal = 0.0
    if "hcm" in diseases:
        septal, thickening = rng.uniform(7.0, 13.0), 0.3
    if "dcm" in diseases:
        thickening, descent = 0.15, 0.05
    if "amyloidosis" in diseases:
        septal, thickening, descent = rng.uniform(0.0, 2.0), 0.2, 0.05
    if "rv_dilation" in diseases:
        rv_es = 0.85
    mi_angle = None
    if "prior_mi" in diseases:
        mi_angle = float(anterior_angle + TERRITORIES[base.territory])
    jitter = rng.normal(1.0, 0.02)
    heart = Heart(
        r_endo_ed=base.r_endo * jitter,
        length_ed=base.length * jitter,
        wall_ed=base.wall * rng.normal(1.0, 0.03),
        septal_extra=septal,
        thickening=thickening,
        base_descent=descent,
        rv_scale=base.rv_scale,
        rv_radial_es=rv_es,
        effusion_mm=base.effusion_mm * rng.uniform(0.8, 1.2),
        mi_angle=mi_angle,
        mi_width=base.mi_width,
        mi_start=base.mi_start,
        es_fraction=float(rng.uniform(0.32, 0.4)),
    )
    target = float(np.clip(base.target_ef + rng.normal(0, 2.5), 12.0, 82.0))
    heart = solve_radial_es(heart, target)
    ef, edv, esv = ejection_fraction(heart)
    return heart, ef, edv, esv
