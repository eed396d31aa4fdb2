"""Synthetic releases of UK Biobank, ACDC and the Kaggle Data Science Bowl, each in its owner's exact format.

Hearts, chest and planes come from the phantom's anatomy (:mod:`cinefm.phantom.anatomy`,
:mod:`cinefm.phantom.diseases`, :mod:`cinefm.phantom.geometry`, :mod:`cinefm.phantom.render`);
DICOM files are written with the phantom's fast encoder (:mod:`cinefm.phantom.encoding`). Every
release has ``truth.csv`` (one row per unit: what the adapter must find, including the faults and
quirks injected) next to the files the owner ships. PHI-like strings (``PHI_STRINGS``) are planted
where each format carries identifiers (DICOM PatientName/ID/BirthDate/Institution, the UKB
manifest's ``patientid`` and dates, the NIfTI ``descrip``), so tests can assert they never leak.

Formats: see the adapters' docstrings (:mod:`cinefm.external.ukb`, :mod:`cinefm.external.acdc`,
:mod:`cinefm.external.kaggle`) and the sources cited there.

Volumes: UKB and Kaggle truths are the drawn geometry's analytic EDV/ESV (disk summation,
:func:`cinefm.phantom.anatomy.ejection_fraction`), written to ``lvef.csv`` / ``train.csv`` as the
owners ship their tables. ACDC truths are the LV-cavity voxel counts of the masks the generator
draws times the voxel volume it writes in the header, so the adapter must read labels, frames and
voxel sizes right to reproduce them.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset

from cinefm.atomic import write_csv
from cinefm.phantom.anatomy import Heart, Tissue, contraction
from cinefm.phantom.diseases import sample_patient_heart, study_heart
from cinefm.phantom.encoding import SeriesEncoder, element
from cinefm.phantom.geometry import (
    Body,
    Placement,
    Plane,
    PlaneScene,
    lax_plane,
    make_body,
    place_heart,
    sax_planes,
)
from cinefm.phantom.render import contrast_table, make_look, render, to_stored
from cinefm.phantom.writer import make_uid

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
PHI_NAME, PHI_ID, PHI_BIRTH, PHI_SITE, PHI_DATE = "DOE^JANE-PHI", "MRN-PHI-7781", "19510203", "ST-PHI-HOSPITAL", "20150830"
PHI_STRINGS = (PHI_NAME, PHI_ID, PHI_BIRTH, PHI_SITE, "Aug 30, 2015", PHI_DATE)
ACDC_GROUPS = {"NOR": (), "DCM": ("dcm",), "HCM": ("hcm",), "MINF": ("prior_mi",), "RV": ("rv_dilation",)}


@dataclass(frozen=True, eq=False)
class Subject:
    """One synthetic participant: heart at the study, its placement and thorax, true volumes."""

    heart: Heart
    place: Placement
    body: Body
    lvef: float
    edv: float
    esv: float


def make_subject(rng: np.random.Generator, diseases: tuple[str, ...] = ()) -> Subject:
    """Draw a heart with the phantom's disease models (:func:`cinefm.phantom.diseases.study_heart`)."""
    d = frozenset(diseases)
    base = sample_patient_heart(d, rng, male=bool(rng.random() < 0.5))
    place = place_heart(rng)
    body = make_body(place, rng)
    anterior = place.axes.T @ np.array([0.0, -1.0, 0.0])
    heart, ef, edv, esv = study_heart(base, d, float(np.arctan2(anterior[1], anterior[0])), rng)
    return Subject(heart, place, body, ef, edv, esv)


def cycle(heart: Heart, frames: int) -> np.ndarray:
    """Contraction per frame over one beat (frame 0 = end-diastole)."""
    return contraction(np.arange(frames) / frames, heart.es_fraction)


def render_planes(s: Subject, planes: list[Plane], cs: np.ndarray, rng: np.random.Generator,
                  masks: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``(slices, frames, rows, cols)`` uint16 cine pixels (and ACDC label masks when ``masks``)."""
    p0 = planes[0]
    look = make_look(rng, (p0.rows, p0.cols), contrast_table("cine"), 0.03, 1.0, textured=False)
    px = np.empty((len(planes), len(cs), p0.rows, p0.cols), np.uint16)
    lab = np.zeros(px.shape, np.uint8) if masks else None
    for i, pl in enumerate(planes):
        scene = PlaneScene(s.heart, s.place, s.body, pl)
        for j, c in enumerate(cs):
            t = scene.labels(float(c))
            px[i, j] = to_stored(render(t, look, rng), 620.0, 4095, False)
            if masks:
                lab[i, j][t == Tissue.RV_BLOOD] = 1
                lab[i, j][(t == Tissue.LV_MYO) | (t == Tissue.SCAR)] = 2
                lab[i, j][t == Tissue.LV_BLOOD] = 3
    return px, lab


def tilted(plane: Plane, degrees: float) -> Plane:
    """The same plane rotated about its row direction (an off-axis slice)."""
    a = np.deg2rad(degrees)
    col = np.cos(a) * plane.col_dir + np.sin(a) * plane.normal
    return Plane(plane.position, plane.row_dir, col / np.linalg.norm(col), plane.rows, plane.cols, plane.spacing,
                 plane.thickness)


# ---------------------------------------------------------------- DICOM


def _ds(values) -> list[str]:
    return [f"{round(float(v), 5):.10g}"[:16] for v in values]


def write_cine_dicom(folder: Path, names: list[str], planes: list[Plane], pixels: np.ndarray, *, rr_ms: float,
                     study_uid: str, series_uid: str, number: int, description: str, seed: object,
                     patient_id: str = PHI_ID) -> list[Path]:
    """One MR Image Storage file per (slice, frame) of ``pixels (S, F, rows, cols)``, names in order."""
    s_n, f_n, rows, cols = pixels.shape
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
    ds.SOPClassUID = MR_IMAGE
    ds.StudyDate = ds.SeriesDate = PHI_DATE
    ds.StudyTime = "101500"
    ds.AccessionNumber = ""
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.InstitutionName = PHI_SITE
    ds.SeriesDescription = description
    ds.ManufacturerModelName = "Aera"
    ds.PatientName = PHI_NAME
    ds.PatientID = patient_id
    ds.PatientBirthDate = PHI_BIRTH
    ds.PatientSex = "F"
    ds.SliceThickness = f"{planes[0].thickness:g}"
    ds.CardiacNumberOfImages = f_n
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.FrameOfReferenceUID = make_uid(seed, study_uid, "for")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    enc = SeriesEncoder(ds, MR_IMAGE, EXPLICIT_LE)
    out, k = [], 0
    for sl in range(s_n):
        pl = planes[sl]
        for fr in range(f_n):
            sop = make_uid(seed, series_uid, sl, fr)
            own = [
                (0x00080018, element(0x00080018, "UI", sop)),
                (0x00181060, element(0x00181060, "DS", f"{fr * rr_ms / f_n:.2f}")),
                (0x00200013, element(0x00200013, "IS", k + 1)),
                (0x00200032, element(0x00200032, "DS", _ds(pl.position))),
                (0x00200037, element(0x00200037, "DS", _ds(np.concatenate([pl.row_dir, pl.col_dir])))),
                (0x00201041, element(0x00201041, "DS", _ds([pl.slice_location])[0])),
                (0x00280030, element(0x00280030, "DS", _ds([pl.spacing, pl.spacing]))),
                (0x7FE00010, element(0x7FE00010, "OW", np.ascontiguousarray(pixels[sl, fr], "<u2").tobytes())),
            ]
            path = folder / names[k]
            enc.write(path, sop, own)
            out.append(path)
            k += 1
    return out


# ---------------------------------------------------------------- UK Biobank


MANIFEST_HEADER = "filename,patientid,studyid,aet,host,date,time,size,series discription"


def _ukb_zip(path: Path, files: dict[str, bytes], manifest_rows: list[tuple[str, str]], manifest_name: str) -> None:
    """A bulk zip: DICOM files side by side and the manifest (unquoted ``Aug 30, 2015`` dates)."""
    lines = [MANIFEST_HEADER] + [f"{name},{PHI_ID},1,UKBB,ukbb-host,Aug 30, 2015,10:15:00,{len(files.get(name, b''))},"
                                 f"{desc}" for name, desc in manifest_rows]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr(manifest_name, "\n".join(lines) + "\n")
        for name, data in files.items():
            zf.writestr(name, data)


def _read_folder(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def generate_ukb(out: str | os.PathLike, participants: int = 4, seed: int = 0, *, size: int = 32,
                 spacing: float = 5.0, slices: int = 6, frames: int = 12, faults: bool = True) -> dict[str, Path]:
    """Write ``{eid}_20209_2_0.zip`` / ``{eid}_20208_2_0.zip`` per participant, ``lvef.csv`` and ``truth.csv``.

    Good participants: SAX ``CINE_segmented_SAX_b1..b{slices}`` (the first repeats ``b2``'s slice
    with a later series: one ``repeat``), the ``CINE_segmented_SAX_InlineVF`` series to skip, LAX
    2Ch/3Ch/4Ch; manifests alternate ``manifest.cvs`` / ``manifest.csv``. Faults (one participant
    each, ``faults``): a truncated SAX zip (``corrupt``), a LAX zip whose manifest names a file it
    lacks (``inconsistent``), a SAX zip holding only the InlineVF series (``no_cine``).
    """
    import tempfile

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth, lvef_rows = [], []
    n_fault = 3 if faults else 0
    for i in range(participants + n_fault):
        eid = str(1000000 + 7919 * (i + 1) + seed)
        fault = ["", "truncated_zip", "manifest_absent_files", "inline_only"][max(0, i - participants + 1)] \
            if i >= participants else ""
        s = make_subject(rng, ("dcm",) if i % 3 == 1 else ())
        cs = cycle(s.heart, frames)
        study_uid = make_uid(seed, eid, "study")
        planes = sax_planes(s.place, s.heart, slices, size, size, spacing, 8.0, rng)
        sax, _ = render_planes(s, planes, cs, rng)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            rows_sax: list[tuple[str, str]] = []
            number = 10
            for k in range(slices):
                if fault == "inline_only":
                    break
                names = [f"1.3.12.2.1107.5.2.{eid}.{number}.{j}.dcm" for j in range(frames)]
                write_cine_dicom(tmp / "sax", names, [planes[k]], sax[k:k + 1], rr_ms=900.0, study_uid=study_uid,
                                 series_uid=make_uid(seed, eid, "sax", k), number=number,
                                 description=f"CINE_segmented_SAX_b{k + 1}", seed=seed)
                rows_sax += [(n, f"CINE_segmented_SAX_b{k + 1}") for n in names]
                number += 1
            if not fault and slices > 2:  # a repeat of b2's slice, acquired later (kept; b2 marked repeat)
                names = [f"1.3.12.2.1107.5.2.{eid}.{number}.{j}.dcm" for j in range(frames)]
                write_cine_dicom(tmp / "sax", names, [planes[1]], sax[1:2], rr_ms=900.0, study_uid=study_uid,
                                 series_uid=make_uid(seed, eid, "sax-repeat"), number=number + 20,
                                 description="CINE_segmented_SAX_b2", seed=seed)
                rows_sax += [(n, "CINE_segmented_SAX_b2") for n in names]
            inline = [f"1.3.12.2.1107.5.2.{eid}.99.{j}.dcm" for j in range(2)]
            write_cine_dicom(tmp / "sax", inline, [planes[slices // 2]], sax[slices // 2:slices // 2 + 1, :2],
                             rr_ms=900.0, study_uid=study_uid, series_uid=make_uid(seed, eid, "inline"), number=99,
                             description="CINE_segmented_SAX_InlineVF", seed=seed)
            rows_sax += [(n, "CINE_segmented_SAX_InlineVF") for n in inline]
            manifest = "manifest.cvs" if i % 2 == 0 else "manifest.csv"
            sax_zip = out / f"{eid}_20209_2_0.zip"
            _ukb_zip(sax_zip, _read_folder(tmp / "sax"), rows_sax, manifest)
            rows_lax: list[tuple[str, str]] = []
            for v, view in enumerate(("2Ch", "3Ch", "4Ch")):
                pl = lax_plane(s.place, s.heart, view.upper(), size, size, spacing * 1.2, 8.0, rng)
                px, _ = render_planes(s, [pl], cs, rng)
                names = [f"1.3.12.2.1107.5.2.{eid}.{200 + v}.{j}.dcm" for j in range(frames)]
                write_cine_dicom(tmp / "lax", names, [pl], px, rr_ms=900.0, study_uid=study_uid,
                                 series_uid=make_uid(seed, eid, "lax", view), number=200 + v,
                                 description=f"CINE_segmented_LAX_{view}", seed=seed)
                rows_lax += [(n, f"CINE_segmented_LAX_{view}") for n in names]
            lax_files = _read_folder(tmp / "lax")
            if fault == "manifest_absent_files":
                lax_files.pop(rows_lax[3][0])
            _ukb_zip(out / f"{eid}_20208_2_0.zip", lax_files, rows_lax, manifest)
        if fault == "truncated_zip":
            data = sax_zip.read_bytes()
            sax_zip.write_bytes(data[: len(data) // 2])
        sax_status = {"truncated_zip": "corrupt", "inline_only": "no_cine"}.get(fault, "ok")
        lax_status = "inconsistent" if fault == "manifest_absent_files" else "ok"
        views = ("SAX;" if sax_status == "ok" else "") + ("4CH;3CH;2CH" if lax_status == "ok" else "")
        truth.append({"eid": eid, "instance": "2", "fault": fault, "sax_status": sax_status, "lax_status": lax_status,
                      "views": views.strip(";"), "sax_slices": slices if sax_status == "ok" else 0, "frames": frames,
                      "lvef": round(s.lvef, 2), "edv_ml": round(s.edv, 2), "esv_ml": round(s.esv, 2)})
        lvef_rows.append({"eid": eid, "lvef": round(s.lvef, 2), "edv_ml": round(s.edv, 2), "esv_ml": round(s.esv, 2)})
    write_csv(pd.DataFrame(lvef_rows), out / "lvef.csv")
    write_csv(pd.DataFrame(truth), out / "truth.csv")
    return {"root": out, "lvef": out / "lvef.csv", "truth": out / "truth.csv"}


# ---------------------------------------------------------------- ACDC


def _nifti(path: Path, data: np.ndarray, zooms: tuple[float, ...], descrip: str = "") -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data, np.diag([*zooms[:3], 1.0]))
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm", "msec" if len(zooms) > 3 else "unknown")
    img.header["descrip"] = descrip.encode()[:79]
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def generate_acdc(out: str | os.PathLike, patients: int = 5, seed: int = 0, *, size: int = 32, spacing: float = 5.0,
                  slices: int = 6, frames: int = 12, faults: bool = True) -> dict[str, Path]:
    """Write ``training/`` and ``testing/`` ``patientNNN/`` folders in ACDC's format and ``truth.csv``.

    Groups cycle NOR, DCM, HCM, MINF, RV; the last good patient goes to ``testing/``. Faults
    (``faults``): a truncated ``_4d.nii.gz`` (``corrupt``), a ``_4d.nii.gz`` whose ``sizeof_hdr`` is
    not 348 (``unreadable``), Info.cfg ``NbFrame`` one more than the image holds (``inconsistent``),
    a folder without its ``_4d.nii.gz`` (``missing``).
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    truth = []
    groups = list(ACDC_GROUPS)
    fault_kinds = ["corrupt_gzip", "wrong_header", "nbframe_mismatch", "missing_4d"] if faults else []
    for i in range(patients + len(fault_kinds)):
        pid = f"patient{i + 1:03d}"
        fault = fault_kinds[i - patients] if i >= patients else ""
        split = "testing" if i == patients - 1 else "training"
        group = groups[i % len(groups)]
        s = make_subject(rng, ACDC_GROUPS[group])
        cs = cycle(s.heart, frames)
        planes = sax_planes(s.place, s.heart, slices, size, size, spacing, 8.0, rng)
        gap = float(np.linalg.norm(planes[1].position - planes[0].position)) if slices > 1 else 8.0
        px, lab = render_planes(s, planes, cs, rng, masks=True)
        ed, es = 1, int(np.argmax(cs)) + 1
        zooms = (spacing, spacing, gap, 900.0 / frames)
        folder = out / split / pid
        vol4 = px.astype(np.int16).transpose(3, 2, 0, 1)  # (S, F, rows, cols) -> (x=cols, y=rows, z, t)
        _nifti(folder / f"{pid}_4d.nii.gz", vol4, zooms, descrip=f"{PHI_NAME} {PHI_ID}")
        for fr in (ed, es):
            _nifti(folder / f"{pid}_frame{fr:02d}.nii.gz", vol4[..., fr - 1], zooms[:3])
            _nifti(folder / f"{pid}_frame{fr:02d}_gt.nii.gz", lab[:, fr - 1].transpose(2, 1, 0).astype(np.uint8),
                   zooms[:3])
        nb = frames + (1 if fault == "nbframe_mismatch" else 0)
        (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: {group}\nHeight: 170.0\nNbFrame: {nb}\n"
                                         f"Weight: 70.0\n")
        four_d = folder / f"{pid}_4d.nii.gz"
        if fault == "corrupt_gzip":
            data = four_d.read_bytes()
            four_d.write_bytes(data[: len(data) // 2])
        elif fault == "wrong_header":
            raw = bytearray(gzip.decompress(four_d.read_bytes()))
            raw[0:4] = (999).to_bytes(4, "little")
            four_d.write_bytes(gzip.compress(bytes(raw)))
        elif fault == "missing_4d":
            four_d.unlink()
        vox = spacing * spacing * gap / 1000.0
        edv, esv = float((lab[:, ed - 1] == 3).sum() * vox), float((lab[:, es - 1] == 3).sum() * vox)
        status = {"corrupt_gzip": "corrupt", "wrong_header": "unreadable", "nbframe_mismatch": "inconsistent",
                  "missing_4d": "missing"}.get(fault, "ok")
        truth.append({"patient": pid, "split": split, "group": group, "fault": fault, "status": status,
                      "slices": slices, "frames": frames, "ed": ed, "es": es, "edv_ml": edv, "esv_ml": esv,
                      "lvef": 100.0 * (edv - esv) / edv, "analytic_lvef": s.lvef})
    write_csv(pd.DataFrame(truth), out / "truth.csv")
    return {"root": out, "truth": out / "truth.csv"}


# ---------------------------------------------------------------- Kaggle Data Science Bowl


def _im_names(series: int, n: int) -> list[str]:
    return [f"IM-{4000 + series:04d}-{j + 1:04d}.dcm" for j in range(n)]


def generate_kaggle(out: str | os.PathLike, studies: int = 4, seed: int = 0, *, size: int = 32, spacing: float = 5.0,
                    slices: int = 6, frames: int = 12, faults: bool = True) -> dict[str, Path]:
    """Write ``train/``, ``validate/validate/`` (doubled nesting) and ``test/`` studies, the CSVs and ``truth.csv``.

    Study folders ``{Id}/study/sax_{N}`` (N from 5 up, one slice each), ``2ch_{N}``, ``4ch_{N}``.
    With ``faults``, the first study carries the set's quirks — one SAX slice with another matrix
    (``matrix``, sax_6), one tilted 30 degrees (``orientation``, sax_7), one left out (sax_8: a
    ``missing_slices`` note), one repeated at the same location in a later series (sax_9 ``repeat``,
    kept as the last sax_N) and one with ``frames - 2`` frames (sax_10, resampled) — and four units fail: a ``train.csv`` row without a
    folder (``missing``), a study whose series folders hold no DICOM (``no_cine``), a folder
    without ``study/`` (``no_cine``) and one Id under two splits (``duplicate``).
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    split_dirs = {"train": out / "train", "val": out / "validate" / "validate", "test": out / "test"}
    csv_rows: dict[str, list] = {"train": [], "val": [], "test": []}
    truth = []
    n_total = studies + (3 if faults else 0)
    for i in range(n_total):
        sid = str(i + 1)
        split = ["train", "val", "test"][i % 3] if i < studies else "train"
        fault = ["no_dicom", "no_study_folder", "duplicate"][i - studies] if i >= studies else ""
        quirks = faults and i == 0
        s = make_subject(rng, ("dcm",) if i % 2 else ())
        cs = cycle(s.heart, frames)
        study_uid = make_uid(seed, "kaggle", sid)
        folder = split_dirs[split] / sid / "study"
        n_sl = slices + (1 if quirks else 0)
        planes = sax_planes(s.place, s.heart, n_sl, size, size, spacing, 8.0, rng)
        px, _ = render_planes(s, planes, cs, rng)
        kept = list(range(n_sl))
        series_truth = {}
        if fault == "no_study_folder":
            (split_dirs[split] / sid / "notes").mkdir(parents=True, exist_ok=True)
        for k in range(n_sl):
            name = f"sax_{5 + k}"
            if quirks and k == 3:  # a missing slice: the folder is absent
                kept.remove(k)
                continue
            if fault == "no_study_folder":
                continue
            pl, arr, nfr = planes[k], px[k:k + 1], frames
            if quirks and k == 1:
                pl = pl.resized(size + 8, size + 8)
                arr, _ = render_planes(s, [pl], cs, rng)
                series_truth[name] = "matrix"
            if quirks and k == 2:
                pl = tilted(pl, 30.0)
                arr, _ = render_planes(s, [pl], cs, rng)
                series_truth[name] = "orientation"
            if quirks and k == 5:
                nfr = frames - 2
                arr, _ = render_planes(s, [pl], cycle(s.heart, nfr), rng)
            if fault == "no_dicom":
                (folder / name).mkdir(parents=True, exist_ok=True)
                (folder / name / "IM-0001-0001.dcm").write_text("not a DICOM file\n")
                continue
            write_cine_dicom(folder / name, _im_names(k, nfr), [pl], arr, rr_ms=900.0, study_uid=study_uid,
                             series_uid=make_uid(seed, sid, name), number=10 + k, description="sax", seed=seed,
                             patient_id=PHI_ID)
            series_truth.setdefault(name, "kept")
        if quirks:  # a later acquisition at sax_9's location (k = 4)
            name = f"sax_{5 + n_sl}"
            write_cine_dicom(folder / name, _im_names(50, frames), [planes[4]], px[4:5], rr_ms=900.0,
                             study_uid=study_uid, series_uid=make_uid(seed, sid, name), number=60, description="sax",
                             seed=seed)
            series_truth[name] = "kept"
            series_truth["sax_9"] = "repeat"
        if fault not in ("no_study_folder", "no_dicom"):
            for v, view in enumerate(("2ch", "4ch")):
                pl = lax_plane(s.place, s.heart, view.upper(), size, size, spacing * 1.2, 8.0, rng)
                arr, _ = render_planes(s, [pl], cs, rng)
                name = f"{view}_{20 + v}"
                write_cine_dicom(folder / name, _im_names(20 + v, frames), [pl], arr, rr_ms=900.0,
                                 study_uid=study_uid, series_uid=make_uid(seed, sid, name), number=30 + v,
                                 description=view, seed=seed)
        if fault == "duplicate":  # the same Id again under test/
            import shutil

            shutil.copytree(split_dirs[split] / sid, split_dirs["test"] / sid)
        sys_, dia = round(s.esv, 1), round(s.edv, 1)
        csv_rows[split].append((sid, sys_, dia))
        n_ok_sax = sum(1 for v in series_truth.values() if v == "kept")
        status = {"no_dicom": "no_cine", "no_study_folder": "no_cine"}.get(fault, "ok")
        truth.append({"Id": sid, "split": split, "fault": fault, "status": status,
                      "sax_slices": n_ok_sax if status == "ok" else 0, "frames": frames,
                      "systole": sys_, "diastole": dia, "lvef": 100.0 * (dia - sys_) / dia,
                      "series": ";".join(f"{k}={v}" for k, v in sorted(series_truth.items()))})
    if faults:  # a train.csv row without a folder
        sid = str(n_total + 1)
        csv_rows["train"].append((sid, 50.0, 120.0))
        truth.append({"Id": sid, "split": "train", "fault": "csv_row_without_folder", "status": "missing",
                      "sax_slices": 0, "frames": 0, "systole": 50.0, "diastole": 120.0, "lvef": 100 * 70 / 120,
                      "series": ""})
    for split, name in (("train", "train.csv"), ("val", "validate.csv")):
        write_csv(pd.DataFrame(csv_rows[split], columns=["Id", "Systole", "Diastole"]), out / name)
    sol = [(f"{sid}_{ph}", v, "Private") for sid, sy, di in csv_rows["test"] for ph, v in (("Diastole", di),
                                                                                          ("Systole", sy))]
    write_csv(pd.DataFrame(sol, columns=["Id", "Volume", "Usage"]), out / "solution.csv")
    write_csv(pd.DataFrame(truth), out / "truth.csv")
    return {"root": out, "truth": out / "truth.csv"}


GENERATORS = {"ukb": generate_ukb, "acdc": generate_acdc, "kaggle": generate_kaggle}


def read_text_blobs(root: str | os.PathLike) -> bytes:
    """Every byte under ``root`` (files, and the members of zips, and gzip payloads), for PHI scans in tests."""
    parts = []
    for p in sorted(Path(root).rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        parts.append(data)
        if p.suffix == ".zip":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                parts += [zf.read(n) for n in zf.namelist()]
        if p.suffix == ".gz":
            parts.append(gzip.decompress(data))
    return b"\n".join(parts)
