"""Free-text CMR reports in the style of real ones, consistent with the drawn truth.

A report states measurements (LVEDV, LVESV, LVEF, mass, wall thickness, RV volumes),
findings and an impression. Each disease is mentioned positively, negated ("no evidence
of ..."), hedged ("possible ...", "cannot be excluded") or not at all; the state chosen per
disease is returned with the text so human labels can be drawn from what the report says.
PHI (names, dates, MRN, accession) appears in the header and inside sentences, as in real
exports; a few reports carry typos.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from cinefm.phantom.anatomy import Heart
from cinefm.phantom.diseases import DISEASES
from cinefm.phantom.plan import PatientPlan, StudyPlan

# P(mention state | disease present) and P(... | absent)
P_PRESENT = {"positive": 0.84, "hedged": 0.11, "absent": 0.05}
P_ABSENT = {"negated": 0.47, "absent": 0.47, "hedged": 0.06}
TYPO_RATE = 0.3  # share of reports with at least one typo

_WALL = {"LAD": "anteroseptal", "LCx": "lateral", "RCA": "inferior"}


@dataclass(frozen=True)
class ReportFacts:
    """What the reporting cardiologist measured and saw (inputs to the text)."""

    lvef: int  # stated, rounded (measurement noise of a few points)
    edv: int
    esv: int
    mass_g: int
    max_wall_mm: int
    rvedv: int
    rvef: int
    effusion_mm: int
    native_t1: int
    territory: str


@dataclass(frozen=True)
class Report:
    text: str
    mentions: dict[str, str]  # disease -> positive | negated | hedged | absent


def measure(heart: Heart, lvef: float, edv: float, esv: float, territory: str, amyloid: bool,
            rng: np.random.Generator) -> ReportFacts:
    """Reported numbers: true geometry plus reader noise."""
    shell = 2 / 3 * np.pi * ((heart.r_endo_ed + heart.wall_ed) ** 2 * (heart.length_ed + heart.wall_ed)
                             - heart.r_endo_ed**2 * heart.length_ed) / 1000.0
    rvedv = 150.0 * heart.rv_scale**2 * rng.normal(1.0, 0.05)
    rvef = 100 * (1 - heart.rv_radial_es**2) * rng.normal(1.0, 0.04)
    return ReportFacts(
        lvef=int(round(lvef + rng.normal(0, 1.2))),
        edv=int(round(edv * rng.normal(1, 0.03))),
        esv=int(round(esv * rng.normal(1, 0.03))),
        mass_g=int(round(1.05 * shell * rng.normal(1, 0.05))),
        max_wall_mm=int(round(heart.wall_ed + heart.septal_extra + rng.normal(0, 0.5))),
        rvedv=int(round(rvedv)),
        rvef=int(round(rvef)),
        effusion_mm=int(round(heart.effusion_mm)),
        native_t1=int(round(rng.normal(1420 if amyloid else 1010, 30))),
        territory=territory,
    )


def _choose(rng: np.random.Generator, probs: dict[str, float]) -> str:
    keys = list(probs)
    p = np.array([probs[k] for k in keys])
    return str(keys[int(rng.choice(len(keys), p=p / p.sum()))])


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _sentence(d: str, state: str, f: ReportFacts, wall_thick: bool, rng: np.random.Generator) -> str:
    wall = _WALL.get(f.territory, "inferior")
    size = "Small" if f.effusion_mm < 8 else "Moderate" if f.effusion_mm < 14 else "Large"
    text = {
        ("hcm", "positive"): [
            f"Asymmetric septal hypertrophy with maximal wall thickness of {f.max_wall_mm} mm, consistent with hypertrophic cardiomyopathy (HCM).",
            f"Findings are in keeping with HCM (maximal septal thickness {f.max_wall_mm} mm).",
            f"Hypertrophic cardiomyopathy with a maximal end-diastolic wall thickness of {f.max_wall_mm} mm.",
        ],
        ("hcm", "negated"): ["No evidence of hypertrophic cardiomyopathy.", "No features of HCM."]
        + ([] if wall_thick else ["No LV hypertrophy."]),
        ("hcm", "hedged"): [
            f"Borderline septal thickness ({f.max_wall_mm} mm); possible early HCM phenotype, hypertensive remodelling cannot be excluded.",
            "HCM cannot be excluded.",
        ],
        ("dcm", "positive"): [
            "Dilated LV with globally reduced systolic function, consistent with dilated cardiomyopathy (DCM).",
            "Appearances are in keeping with a non-ischaemic dilated cardiomyopathy.",
            "Dilated cardiomyopathy.",
        ],
        ("dcm", "negated"): ["No evidence of dilated cardiomyopathy.", "No features of DCM."],
        ("dcm", "hedged"): ["Possible early dilated cardiomyopathy; clinical correlation is recommended.",
                            "Mild LV dilatation, ?DCM."],
        ("prior_mi", "positive"): [
            f"Transmural LGE in the {f.territory} territory with akinesia and thinning of the {wall} wall, consistent with a previous myocardial infarction.",
            f"Old {f.territory} territory infarct (prior MI) with an akinetic {wall} segment.",
            f"Subendocardial to transmural late enhancement of the {wall} wall in keeping with prior myocardial infarction.",
        ],
        ("prior_mi", "negated"): ["No LGE to suggest previous myocardial infarction.",
                                  "No infarct-pattern scar on LGE imaging."],
        ("prior_mi", "hedged"): [f"A small focus of LGE in the {wall} wall; a small prior infarct cannot be excluded.",
                                 "Questionable subendocardial LGE, possible old MI."],
        ("rv_dilation", "positive"): [f"The RV is dilated (RVEDV {f.rvedv} ml) with RVEF {f.rvef}%.",
                                      "Dilated right ventricle with mildly impaired function.",
                                      f"RV dilatation (RVEDV {f.rvedv} ml)."],
        ("rv_dilation", "negated"): ["Normal RV size and function.", "The right ventricle is not dilated."],
        ("rv_dilation", "hedged"): ["The RV is at the upper limit of normal size; possible mild RV dilatation."],
        ("pericardial_effusion", "positive"): [
            f"{size} circumferential pericardial effusion measuring up to {f.effusion_mm} mm.",
            f"Pericardial effusion ({f.effusion_mm} mm) without features of tamponade.",
        ],
        ("pericardial_effusion", "negated"): ["No pericardial effusion.", "Pericardium normal, no effusion."],
        ("pericardial_effusion", "hedged"): ["Possible small pericardial effusion versus epicardial fat.",
                                             "A trace pericardial effusion cannot be excluded."],
        ("amyloidosis", "positive"): [
            "Concentric LV thickening with diffuse subendocardial LGE and abnormal myocardial nulling, characteristic of cardiac amyloidosis.",
            f"Native T1 markedly elevated ({f.native_t1} ms); appearances consistent with cardiac amyloid.",
            "Cardiac amyloidosis.",
        ],
        ("amyloidosis", "negated"): ["No features to suggest an infiltrative cardiomyopathy such as amyloidosis.",
                                     "No evidence of cardiac amyloidosis."],
        ("amyloidosis", "hedged"): [
            "The LGE pattern raises the possibility of cardiac amyloidosis; DPD scintigraphy is suggested.",
            "Amyloid cannot be excluded.",
        ],
    }[(d, state)]
    return _pick(rng, text)


def _typo(text: str, rng: np.random.Generator) -> str:
    """Swap two letters or drop one in a random long word (never in numbers)."""
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) > 5 and w.isalpha()]
    if not idx:
        return text
    i = idx[int(rng.integers(len(idx)))]
    w = words[i]
    j = int(rng.integers(1, len(w) - 2))
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if rng.random() < 0.6 else w[:j] + w[j + 1:]
    return " ".join(words)


def _lv_function(ef: int) -> str:
    if ef >= 55:
        return "normal"
    if ef >= 45:
        return "mildly impaired"
    if ef >= 35:
        return "moderately impaired"
    return "severely impaired"


def _fmt_date(d: dt.date, rng: np.random.Generator) -> str:
    return _pick(rng, [d.strftime("%d/%m/%Y"), d.strftime("%Y-%m-%d"), d.strftime("%d %B %Y")])


def write_report(
    patient: PatientPlan,
    study: StudyPlan,
    facts: ReportFacts,
    prior: tuple[dt.date, int] | None,
    rng: np.random.Generator,
) -> Report:
    """Compose one report; ``prior`` = (date, stated LVEF) of the previous study, if any."""
    present = patient.diseases
    mentions = {d: _choose(rng, P_PRESENT if d in present else P_ABSENT) for d in DISEASES}
    age = (study.date - patient.birth_date).days // 365
    title = "Mr." if patient.sex == "M" else "Ms."
    wall_thick = facts.max_wall_mm >= 12
    ef = facts.lvef
    indication = _pick(rng, ["Breathlessness on exertion.", "Abnormal ECG.", "Assessment of LV function.",
                             "Chest pain, ?cardiomyopathy.", "Family history of cardiomyopathy.",
                             "Follow-up of known cardiac disease."])
    header = (
        f"CARDIAC MRI REPORT\nPatient: {patient.display_name}   MRN: {patient.mrn}   "
        f"DOB: {_fmt_date(patient.birth_date, rng)}\nExam date: {_fmt_date(study.date, rng)}   "
        f"Accession: {study.accession}\n"
    )
    article = "an" if str(age).startswith("8") or age in (11, 18) else "a"
    clinical = f"Clinical history: {title} {patient.family} is {article} {age}-year-old referred for: {indication}"
    technique = _pick(rng, [
        "Technique: Cine SSFP imaging in short-axis and long-axis (2CH, 3CH, 4CH) planes. "
        "Late gadolinium enhancement (LGE) imaging after contrast. Native T1 mapping.",
        "Technique: Standard CMR protocol with cine imaging, T1 mapping and LGE.",
    ])
    lv = (f"LV: LVEDV {facts.edv} ml, LVESV {facts.esv} ml, "
          + _pick(rng, [f"LVEF {ef}%", f"LV ejection fraction {ef}%", f"EF {ef} %", f"LVEF: {ef}%"])
          + f", LV mass {facts.mass_g} g. Maximal wall thickness {facts.max_wall_mm} mm. "
          f"LV systolic function is {_lv_function(ef)}.")
    findings = [lv]
    for d in DISEASES:
        if mentions[d] != "absent":
            findings.append(_sentence(d, mentions[d], facts, wall_thick, rng))
    if mentions["rv_dilation"] == "absent":
        findings.append(f"RVEF {facts.rvef}%.")
    if prior is not None:
        findings.append(f"Compared with the prior study of {_fmt_date(prior[0], rng)} "
                        f"(LVEF {prior[1]}%), LVEF is {'stable' if abs(prior[1] - ef) < 5 else 'changed'}.")
    impression = []
    for d in DISEASES:
        if mentions[d] in ("positive", "hedged") and rng.random() < 0.7:
            impression.append(_sentence(d, mentions[d], facts, wall_thick, rng))
    if ef < 40:
        impression.append(f"{_lv_function(ef).capitalize()} LV systolic function (LVEF {ef}%).")
    if not impression:
        impression.append(_pick(rng, ["Normal biventricular size and systolic function.",
                                      "Normal CMR study.", "No significant abnormality."]))
    body = "Findings: " + " ".join(findings)
    if rng.random() < TYPO_RATE:
        body = _typo(body, rng)
    imp = "Impression:\n" + "\n".join(f"{i + 1}. {s}" for i, s in enumerate(impression))
    signer = _pick(rng, ["Dr. E. Novak", "Dr. S. Iyer", "Dr. M. Brennan", "Dr. T. Okonkwo"])
    sign = f"Reported by {signer} on {_fmt_date(study.date + dt.timedelta(days=int(rng.integers(0, 4))), rng)}."
    text = "\n".join([header, clinical, technique, body, imp, sign])
    return Report(text=text, mentions=mentions)


def human_labels(mentions: dict[str, str], rng: np.random.Generator) -> dict[str, dict[str, str]]:
    """Two annotators reading the same report: ``{"A": {disease: "1"|"0"|""}, "B": ...}``.

    Both follow what the report says (positive -> 1, negated/not mentioned -> 0, hedged ->
    uncertain); each sometimes resolves a hedge (A toward present, B toward absent) and
    slips on ~2 % of clear labels, giving ~5-10 % disagreement as in real double reading.
    """
    out = {}
    for annotator, lean in (("A", "1"), ("B", "0")):
        labels = {}
        for d, state in mentions.items():
            lab = {"positive": "1", "negated": "0", "absent": "0", "hedged": ""}[state]
            if state == "hedged" and rng.random() < 0.45:
                lab = lean if rng.random() < 0.7 else ("0" if lean == "1" else "1")
            elif lab and rng.random() < 0.025:
                lab = "0" if lab == "1" else "1"
            labels[d] = lab
        out[annotator] = labels
    return out
