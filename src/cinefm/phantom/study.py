"""One CMR exam: place the heart, lay out the vendor's series, render and write them.

A Siemens-like exam has one cine series per SAX slice (``CINE_segmented_SAX_b1``...), GE and
Philips one SAX series holding every slice; Philips series are sometimes one enhanced
multi-frame file. Each exam also holds non-cine series (localizer, LGE, T1 map, inline
analysis) that ingestion must exclude. The series-level faults (a missing frame, mixed
matrix sizes) are drawn here because they change what gets written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation

from cinefm.phantom.anatomy import Heart, Tissue, contraction
from cinefm.phantom.diseases import PatientHeart, study_heart
from cinefm.phantom.geometry import (
    Placement,
    Plane,
    PlaneScene,
    lax_plane,
    make_body,
    place_heart,
    sax_planes,
    survey_planes,
)
from cinefm.phantom.plan import PatientPlan, StudyPlan
from cinefm.phantom.render import contrast_table, make_look, render, to_stored
from cinefm.phantom.vendors import VENDOR_BY_KEY, Vendor, cine_description, other_descriptions
from cinefm.phantom.writer import (
    SeriesSpec,
    StudyHeader,
    WrittenFile,
    make_uid,
    write_classic_series,
    write_enhanced_series,
    write_report_capture,
)

LAX_VIEWS = ("2CH", "4CH", "3CH")


@dataclass(frozen=True)
class FaultRow:
    """One line of faults.csv."""

    relpath: str
    fault: str
    expected_status: str
    series_instance_uid: str
    detail: str


@dataclass
class StudyResult:
    """What one written exam contributes to the cohort tables."""

    study_uid: str
    vendor: str
    lvef: float
    edv_ml: float
    esv_ml: float
    heart: Heart
    sax_mid_ed_area_mm2: float
    max_wall_mm: float
    files: list[WrittenFile] = field(default_factory=list)  # valid cine files only
    faults: list[FaultRow] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    """Per-series writing choices from the config ``phantom:`` section."""

    enhanced_fraction: float
    rle_fraction: float


def _token(rng: np.random.Generator, n: int = 10) -> str:
    return "".join(rng.choice(list("0123456789ABCDEF"), n))


def _anterior_angle(place: Placement) -> float:
    a = place.axes.T @ np.array([0.0, -1.0, 0.0])
    return float(np.arctan2(a[1], a[0]))


class _Folders:
    """Meaningless export folder and file names in the vendor's style."""

    def __init__(self, rng: np.random.Generator, patient: PatientPlan, study: StudyPlan, vendor: Vendor):
        self.rng = rng
        self.vendor = vendor
        batch = f"EXPORT_{(patient.index * 5 + study.index * 3) % 4 + 1:02d}"
        self.study_dir = Path(batch) / _token(rng, 8) / _token(rng, 8)
        self.counter = 0

    def series(self) -> Path:
        return self.study_dir / ("S" + _token(self.rng, 7))

    def names(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            self.counter += 1
            stem = self.vendor.file_pattern.format(n=self.counter, h=_token(self.rng, 16))
            out.append(stem + self.vendor.file_ext)
        return out


def _render_series(scenes: list[PlaneScene], cs: np.ndarray, look_args: dict, rng: np.random.Generator,
                   vendor: Vendor, sequence: str, full_scale: float | None = None) -> np.ndarray:
    """(slices, frames, rows, cols) stored integers for the given planes and contraction values."""
    p0 = scenes[0].plane
    table = contrast_table(sequence, **look_args["gains"], amyloid=look_args["amyloid"])
    look = make_look(rng, (p0.rows, p0.cols), table, look_args["noise"], look_args["gamma"],
                     textured=look_args["amyloid"] and sequence in ("cine", "lge"))
    scale = vendor.full_scale if full_scale is None else full_scale
    max_stored = 32767 if vendor.signed else (2**vendor.bits_stored - 1 if sequence != "t1map" else 65535)
    signed = vendor.signed and sequence != "t1map"
    out = np.empty((len(scenes), len(cs), p0.rows, p0.cols), dtype=np.int16 if signed else np.uint16)
    for i, sc in enumerate(scenes):
        for j, c in enumerate(cs):
            out[i, j] = to_stored(render(sc.labels(float(c)), look, rng), scale, max_stored, signed)
    return out


def _contours(labels: np.ndarray) -> np.ndarray:
    """Endocardial and epicardial LV outlines (as an inline analysis draws them)."""
    blood = labels == Tissue.LV_BLOOD
    myo = blood | (labels == Tissue.LV_MYO) | (labels == Tissue.SCAR)
    return (binary_dilation(blood) & ~blood) | (binary_dilation(myo) & ~myo)


def write_study(
    patient: PatientPlan,
    study: StudyPlan,
    base: PatientHeart,
    root: Path,
    seed: int,
    opts: Options,
    faults: tuple[str, ...],
) -> StudyResult:
    """Render and write every series of one exam under ``root``; return truth and file records."""
    rng = np.random.default_rng([seed, patient.index, study.index, 11])
    v = VENDOR_BY_KEY[study.vendor]
    place = place_heart(rng)
    heart, ef, edv, esv = study_heart(base, patient.diseases, _anterior_angle(place), rng)
    body = make_body(place, rng)
    study_uid = make_uid(seed, patient.mrn, study.accession, "study")
    header = StudyHeader(
        patient=patient, study=study, vendor=v, study_uid=study_uid,
        frame_of_reference_uid=make_uid(seed, study_uid, "for"),
        model=str(rng.choice(v.models)), field_strength=float(rng.choice([1.5, 1.5, 3.0])),
        institution=str(rng.choice(["St. Elsewhere Hospital", "University Heart Centre", "Mercy General"])),
        station=f"{v.station_prefix}{rng.integers(10000, 99999)}",
        referring=f"Dr^{rng.choice(['Okafor', 'Lindgren', 'Haddad', 'Moreno', 'Schulz'])}",
        operator=str(rng.choice(["TECH^ANNA", "TECH^JOHN", "RT^MARIA"])),
        weight_kg=float(rng.uniform(55, 105)), height_m=float(rng.uniform(1.55, 1.95)),
        software={"siemens": "syngo MR E11", "ge": "27\\LX\\MR Software release:RX27.0_R05",
                  "philips": "5.6.1\\5.6.1.2"}[v.key],
    )
    folders = _Folders(rng, patient, study, v)
    rows, cols = v.matrices[int(rng.integers(len(v.matrices)))]
    spacing = float(rng.uniform(*v.fov_mm)) / cols
    thickness = 8.0 if v.key != "philips" else float(rng.choice([8.0, 10.0]))
    rr = 60000.0 / float(rng.uniform(55, 92))
    n_fr = study.frames
    trig = tuple(round(k * rr / n_fr, 2) for k in range(n_fr))
    cs = contraction(np.arange(n_fr) / n_fr, heart.es_fraction)
    look_args = dict(gains=dict(blood_gain=v.blood_gain * rng.normal(1, 0.04), myo_gain=v.myo_gain * rng.normal(1, 0.06)),
                     amyloid="amyloidosis" in patient.diseases, noise=float(rng.uniform(*v.noise)), gamma=v.gamma)
    sax = sax_planes(place, heart, study.sax_slices, rows, cols, spacing, thickness, rng)
    lax = {view: lax_plane(place, heart, view, rows, cols, spacing, thickness, rng) for view in LAX_VIEWS}
    result = StudyResult(study_uid, v.key, ef, edv, esv, heart, 0.0, heart.wall_ed + heart.septal_extra)
    number = iter(range(1, 1000))
    t_clock = [int(study.time[:2]) * 3600 + int(study.time[2:4]) * 60]

    def next_time() -> str:
        t_clock[0] += int(rng.integers(40, 120))
        t = t_clock[0] % 86400
        return f"{t // 3600:02d}{t % 3600 // 60:02d}{t % 60:02d}"

    def spec(desc: str, kind: str, planes: list[Plane], trigger=(), enhanced=False, rle=False, derived=False):
        n = next(number)
        return SeriesSpec(uid=make_uid(seed, study_uid, "series", n), number=n, description=desc, kind=kind,
                          planes=tuple(planes), trigger_ms=tuple(trigger), rr_ms=rr, enhanced=enhanced,
                          rle=rle, derived=derived, time=next_time())

    others = other_descriptions(v.key)
    non_cine: list[tuple[SeriesSpec, list[WrittenFile]]] = []

    # localizer first, as on the scanner
    loc_planes = survey_planes(place, 128, 3.2)
    loc = spec(others["localizer"], "localizer", loc_planes)
    loc_px = _render_series([PlaneScene(heart, place, body, p) for p in loc_planes], np.zeros(1), look_args, rng,
                            v, "localizer")
    folder = folders.series()
    non_cine.append((loc, write_classic_series(header, loc, loc_px, folder, root, seed, folders.names(3))))

    # series-level faults: which cine series gets a dropped frame / a second matrix size
    fault_target = {}
    single_slice = ["LAX_2CH"] if not v.sax_one_series_per_slice else [f"SAX_{k}" for k in range(1, len(sax) - 1)]
    if "missing_frame" in faults:
        fault_target[str(rng.choice(single_slice))] = "missing_frame"
    if "mixed_matrix" in faults:
        fault_target["LAX_3CH"] = "mixed_matrix"

    cine_jobs: list[tuple[str, str, list[Plane]]] = [(f"LAX_{view}", view, [lax[view]]) for view in LAX_VIEWS]
    if v.sax_one_series_per_slice:
        cine_jobs += [(f"SAX_{k + 1}", "SAX", [p]) for k, p in enumerate(sax)]
    else:
        cine_jobs.append(("SAX_ALL", "SAX", sax))
    sax_pixels: list[np.ndarray] = []
    for key, view, planes in cine_jobs:
        slice_idx = int(key.split("_")[1]) if key.startswith("SAX_") and key != "SAX_ALL" else None
        enhanced = v.key == "philips" and rng.random() < opts.enhanced_fraction and key not in fault_target
        rle = bool(rng.random() < opts.rle_fraction)
        s = spec(cine_description(v.key, view, slice_idx), "cine", planes, trig, enhanced, rle)
        scenes = [PlaneScene(heart, place, body, p) for p in planes]
        px = _render_series(scenes, cs, look_args, rng, v, "cine")
        if view == "SAX":
            sax_pixels.extend(list(px))
        folder = folders.series()
        if enhanced:
            files = write_enhanced_series(header, s, px, folder, root, seed, folders.names(1)[0])
        else:
            skip: frozenset = frozenset()
            override = None
            fault = fault_target.get(key)
            if fault == "missing_frame":
                gone = int(rng.integers(1, n_fr - 1))
                skip = frozenset({(0, gone)})
            elif fault == "mixed_matrix":
                alt = planes[0].resized(rows + 16, cols + 16) if rows + 16 <= 176 else planes[0].resized(rows - 16, cols - 16)
                alt_scene = PlaneScene(heart, place, body, alt)
                start = n_fr // 2
                alt_px = _render_series([alt_scene], cs[start:], look_args, rng, v, "cine")
                override = {(0, start + j): (alt, alt_px[0, j]) for j in range(n_fr - start)}
            files = write_classic_series(header, s, px, folder, root, seed, folders.names(px.shape[0] * n_fr),
                                         skip=skip, override_pixels=override)
            if fault:
                detail = (f"frame {sorted(skip)[0][1] + 1} of {n_fr} (TriggerTime {trig[sorted(skip)[0][1]]:.2f} ms) removed"
                          if fault == "missing_frame" else
                          f"frames {n_fr // 2 + 1}-{n_fr} are {override[(0, n_fr - 1)][1].shape[0]}x"
                          f"{override[(0, n_fr - 1)][1].shape[1]}, the rest {rows}x{cols}")
                result.faults += [FaultRow(f.relpath, fault, "inconsistent", s.uid, detail) for f in files]
                continue
        result.files += files

    # a mid-ventricular ED statistic kept for checks (not written anywhere the pipeline reads)
    mid = PlaneScene(heart, place, body, sax[len(sax) // 2]).labels(0.0)
    result.sax_mid_ed_area_mm2 = float((mid == Tissue.LV_BLOOD).sum() * spacing**2)

    # inline analysis: derived copies of mid-ventricular cines with contours burned in
    if rng.random() < (0.85 if v.key == "siemens" else 0.5):
        k0 = len(sax) // 2 - 1
        if v.key == "ge":
            rgb = np.repeat((sax_pixels[k0 + 1][0].astype(float) / max(sax_pixels[k0 + 1][0].max(), 1) * 255)[..., None], 3, -1)
            edge = _contours(PlaneScene(heart, place, body, sax[k0 + 1]).labels(0.0))
            rgb[edge] = (255, 40, 40)
            s = spec(others["inline"], "inline", [sax[k0 + 1]], derived=True)
            non_cine.append((s, write_report_capture(header, s, rgb, folders.series(), root, seed, folders.names(1)[0])))
        else:
            planes = sax[k0:k0 + 3]
            px = np.stack(sax_pixels[k0:k0 + 3]).copy()
            top = int(min(1.2 * np.percentile(px, 99.5), 2**v.bits_stored - 1 if not v.signed else 32767))
            for i, p in enumerate(planes):
                sc = PlaneScene(heart, place, body, p)
                for j in range(0, n_fr):
                    px[i, j][_contours(sc.labels(float(cs[j])))] = top
            s = spec(others["inline"], "inline", planes, trig, derived=True)
            non_cine.append((s, write_classic_series(header, s, px, folders.series(), root, seed,
                                                     folders.names(px.shape[0] * n_fr))))

    # LGE: one late-diastolic image per SAX slice
    if rng.random() < 0.85:
        s = spec(others["lge"], "lge", sax, rle=bool(rng.random() < opts.rle_fraction))
        px = _render_series([PlaneScene(heart, place, body, p) for p in sax], np.array([0.05]), look_args, rng, v, "lge")
        non_cine.append((s, write_classic_series(header, s, px, folders.series(), root, seed, folders.names(len(sax)))))
    # native T1 map: basal, mid and apical slices, pixel values in ms
    if rng.random() < 0.6:
        planes = [sax[1], sax[len(sax) // 2], sax[-2]]
        s = spec(others["t1map"], "t1map", planes)
        t1_args = dict(look_args, noise=0.01, gamma=1.0)
        px = _render_series([PlaneScene(heart, place, body, p) for p in planes], np.array([0.05]), t1_args, rng, v,
                            "t1map", full_scale=2000.0)
        non_cine.append((s, write_classic_series(header, s, px, folders.series(), root, seed, folders.names(3))))

    for s, files in non_cine:
        result.faults += [FaultRow(f.relpath, "non_cine", "not_cine", s.uid, f"{s.kind}: {s.description}")
                          for f in files]
    return result
