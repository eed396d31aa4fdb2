"""ACDC adapter: the Automated Cardiac Diagnosis Challenge release -> per-study HDF5, volumes, diagnoses.

Input (Bernard et al., IEEE TMI 2018, "Deep Learning Techniques for Automatic MRI Cardiac
Multi-structures Segmentation and Diagnosis: Is the Problem Solved?";
https://www.creatis.insa-lyon.fr/Challenge/acdc/), a folder holding ``training/`` (100 patients) and
``testing/`` (50), directly or under ``database/`` as the archive unpacks, each with
``patientNNN/`` folders of:

- ``Info.cfg``: ``key: value`` lines ``ED``, ``ES`` (1-based frame numbers), ``Group`` (``NOR``,
  ``MINF``, ``DCM``, ``HCM``, ``RV``), ``Height`` (cm), ``NbFrame``, ``Weight`` (kg) (CineMA
  ``cinema/data/acdc/preprocess.py::load_config``; public loaders split each line at ``": "``).
- ``patientNNN_4d.nii.gz``: the cine SAX stack, NIfTI-1 ``(x, y, slices, frames)``; voxel size in
  ``pixdim`` (``header.get_zooms()``).
- ``patientNNN_frame{ED:02d}.nii.gz`` / ``..._frame{ES:02d}.nii.gz`` and their ``_gt`` masks:
  labels 0 background, 1 RV cavity, 2 LV myocardium, 3 LV cavity (CineMA's preprocess docstring;
  the challenge's ``metrics_acdc.py``).

Volumes as CineMA computes them (``edv = (gt == LV).sum() * prod(spacing) / 1000``) but on the
native grid: ``EDV/ESV (ml) = (# voxels labelled 3) x (product of the three voxel sizes, mm^3) / 1000``
on the ED/ES masks; ``LVEF = 100 (EDV - ESV) / EDV``. Groups map to the disease keys:
DCM -> ``dcm``, HCM -> ``hcm``, MINF -> ``prior_mi``, RV -> ``rv_dilation``, NOR -> none (all 0).

The HDF5 view ``SAX`` is the 4-D image as ``(slices, frames, S, S)``: rows along NIfTI ``y``,
columns along ``x``, pixel spacing ``(dy, dx)``, slice locations ``k * dz``; preprocessing as
ingestion (:func:`cinefm.external.release.volume_from_array`). Dataset attrs add ``ed_frame`` and
``es_frame`` (0-based).

Unit statuses (one unit = one ``patientNNN`` folder): ``missing`` (no Info.cfg or no 4-D image),
``corrupt`` (gzip stream damaged), ``unreadable`` (a NIfTI-1 header that
``nibabel.Nifti1Header.diagnose_binaryblock`` finds fault with, e.g. ``sizeof_hdr`` other than 348
or a bad magic (nifti1.h), or dimensions/voxel sizes that cannot be a cine stack), ``inconsistent`` (Info.cfg unparsable, ED/ES
outside 1..NbFrame, frames of the 4-D image != NbFrame). Missing or mismatched masks keep the study
and leave its volumes empty with a reason. ``patient_id = pseudonymize("acdc:patientNNN")``.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.external.release import (
    ExternalError,
    Preprocess,
    Study,
    digest_of,
    map_units,
    reuse_existing,
    unit_row,
    volume_from_array,
    write_outputs,
    write_study,
)
from cinefm.privacy import pseudonymize

log = logging.getLogger(__name__)

COHORT = "acdc"
SPLITS = {"training": "train", "testing": "test"}
GROUPS = {"DCM": "dcm", "HCM": "hcm", "MINF": "prior_mi", "RV": "rv_dilation", "NOR": None}
DISEASES = ["dcm", "hcm", "prior_mi", "rv_dilation"]
LV_CAVITY = 3
PATIENT = re.compile(r"^patient\d+$")


class NiftiProblem(Exception):
    """A NIfTI file that cannot be used: ``status`` (corrupt | unreadable) and a reason."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def split_folders(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """(split, folder) of ``training``/``testing`` under ``root`` or ``root/database``."""
    root = Path(root)
    for base in (root, root / "database"):
        found = [(split, base / name) for name, split in SPLITS.items() if (base / name).is_dir()]
        if found:
            return found
    raise ExternalError(f"{root}: no training/ or testing/ folder (nor under database/) — --root must be the "
                        "unpacked ACDC release")


def read_info(path: Path) -> dict[str, str]:
    """``Info.cfg`` -> {key: value} (``key: value`` lines; blank lines ignored)."""
    info = {}
    for line in path.read_text(errors="replace").splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


def load_nifti(path: Path, ndim: int) -> tuple[np.ndarray, tuple[float, ...], object]:
    """Load a NIfTI image fully: (data float32, zooms, header); raise :class:`NiftiProblem`."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.openers import ImageOpener
    from nibabel.spatialimages import HeaderDataError

    try:
        with ImageOpener(str(path)) as fh:
            raw = fh.read(348)
        problems = nib.Nifti1Header.diagnose_binaryblock(raw) if len(raw) == 348 else "header shorter than 348 bytes"
        if problems:  # nibabel would "fix" e.g. sizeof_hdr silently; a broken header is not a cine stack
            raise NiftiProblem("unreadable", f"nifti_header: {path.name}: {problems}".replace("\n", "; ")[:300])
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise NiftiProblem("corrupt", f"corrupt_gzip: {type(exc).__name__}: {exc}"[:300]) from exc
    except (ImageFileError, HeaderDataError) as exc:
        raise NiftiProblem("unreadable", f"nifti_header: {type(exc).__name__}: {exc}"[:300]) from exc
    except (OSError, ValueError) as exc:  # "Not a gzipped file", short reads, bad dims
        status = "corrupt" if "gzip" in str(exc).lower() or "compressed" in str(exc).lower() else "unreadable"
        code = "corrupt_gzip" if status == "corrupt" else "nifti_header"
        raise NiftiProblem(status, f"{code}: {type(exc).__name__}: {exc}"[:300]) from exc
    zooms = tuple(float(z) for z in img.header.get_zooms())
    if data.ndim != ndim:
        raise NiftiProblem("unreadable", f"nifti_header: {path.name} has {data.ndim} dimensions, expected {ndim}")
    if len(zooms) < 3 or not all(np.isfinite(z) and z > 0 for z in zooms[:3]):
        raise NiftiProblem("unreadable", f"nifti_header: {path.name} voxel size {zooms[:3]} is not positive")
    return data, zooms, img.header


def lv_volume_ml(mask: np.ndarray, zooms: tuple[float, ...]) -> float:
    """LV cavity volume (ml): voxels labelled 3 x voxel volume (mm^3) / 1000."""
    return float(np.count_nonzero(np.rint(mask) == LV_CAVITY) * float(np.prod(zooms[:3])) / 1000.0)


def frame_time_ms(header, zooms: tuple[float, ...]) -> float:
    """Time between frames (ms) from ``pixdim[4]`` when the header gives its unit, else NaN."""
    if len(zooms) < 4:
        return float("nan")
    unit = header.get_xyzt_units()[1]
    return {"sec": 1000.0, "msec": 1.0, "usec": 0.001}.get(unit, float("nan")) * zooms[3]


def _volumes(folder: Path, pid: str, ed: int, es: int, shape: tuple[int, ...]) -> tuple[dict, str]:
    """(lvef, edv_ml, esv_ml) from the ED/ES masks, or NaN and a reason."""
    out = {"lvef": np.nan, "edv_ml": np.nan, "esv_ml": np.nan}
    vols = {}
    for name, frame in (("edv_ml", ed), ("esv_ml", es)):
        path = folder / f"{pid}_frame{frame:02d}_gt.nii.gz"
        if not path.is_file():
            return out, f"no_masks: {path.name} absent; volumes left empty"
        try:
            mask, zooms, _ = load_nifti(path, 3)
        except NiftiProblem as p:
            return out, f"masks_unreadable: {path.name}: {p.reason}"
        if mask.shape != shape:
            return out, f"masks_inconsistent: {path.name} shape {mask.shape} != image {shape}"
        vols[name] = lv_volume_ml(mask, zooms)
    out.update(vols)
    if vols["edv_ml"] > 0:
        out["lvef"] = 100.0 * (vols["edv_ml"] - vols["esv_ml"]) / vols["edv_ml"]
    return out, ""


def convert_patient(folder: Path, split: str, root: Path, key: bytes, h5_root: Path,
                    pre: Preprocess) -> tuple[Study, dict]:
    """One ``patientNNN`` folder -> (study, files.csv row). Never raises for data problems."""
    pid = folder.name
    rel = folder.relative_to(root).as_posix()
    study = Study(COHORT, pseudonymize(f"acdc:{pid}", key, "patient"), pseudonymize(f"acdc:{pid}", key, "study"),
                  split=split)
    ids = {"patient_id": study.patient_id, "study_id": study.study_id, "split": split}

    def fail(status: str, reason: str) -> tuple[Study, dict]:
        study.status, study.reason = "failed", reason
        return study, unit_row(pid, rel, status, reason, **ids)

    info_path, image_path = folder / "Info.cfg", folder / f"{pid}_4d.nii.gz"
    if not info_path.is_file():
        return fail("missing", "missing: Info.cfg absent")
    if not image_path.is_file():
        return fail("missing", f"missing: {image_path.name} absent")
    info = read_info(info_path)
    try:
        ed, es, nb = int(info["ED"]), int(info["ES"]), int(info["NbFrame"])
    except (KeyError, ValueError):
        return fail("inconsistent", "info_cfg: ED, ES and NbFrame must be integers in Info.cfg")
    if not (1 <= ed <= nb and 1 <= es <= nb):
        return fail("inconsistent", f"info_cfg: ED {ed} / ES {es} outside 1..NbFrame {nb}")
    group = info.get("Group", "").strip().upper()
    inputs = sorted(p for p in folder.iterdir() if p.is_file())
    study.digest = digest_of([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in inputs], pre)
    if reuse_existing(study, h5_root):
        return study, unit_row(pid, rel, "ok", "; ".join(study.notes), **ids)
    try:
        data, zooms, header = load_nifti(image_path, 4)
    except NiftiProblem as p:
        return fail(p.status, p.reason)
    if data.shape[3] != nb:
        return fail("inconsistent", f"frames: {image_path.name} holds {data.shape[3]} frames, Info.cfg NbFrame {nb}")
    labels, note = _volumes(folder, pid, ed, es, data.shape[:3])
    if note:
        study.notes.append(note)
    if group and group not in GROUPS:
        study.notes.append(f"group_unknown: Group {group!r} not in {sorted(GROUPS)}; disease keys left empty")
    disease = GROUPS.get(group, "?") if group else "?"
    for k in DISEASES:
        labels[k] = np.nan if disease == "?" else int(disease == k)
    study.labels = labels
    arr = np.ascontiguousarray(data.transpose(2, 3, 1, 0))  # (x, y, z, t) -> (slices, frames, rows=y, cols=x)
    vol = volume_from_array(arr, (zooms[1], zooms[0]), np.arange(arr.shape[0]) * zooms[2],
                            frame_time_ms(header, zooms), pre, study.study_id)
    study.volumes = {"SAX": vol}
    study.meta = {"SAX": {"vendor": "", "description": f"ACDC {image_path.name.replace(pid, 'patient')}",
                          "view_rule": "acdc:4d", "ed_frame": ed - 1, "es_frame": es - 1}}
    write_study(study, h5_root, pre)
    return study, unit_row(pid, rel, "ok", "; ".join(study.notes), **ids)


def run_acdc(root: str | os.PathLike, out: str | os.PathLike, *, key: bytes, pre: Preprocess | None = None,
             jobs: int = 1) -> pd.DataFrame:
    """Convert the ACDC release under ``root`` into ``out`` (module docstring); return files.csv."""
    pre = pre or Preprocess()
    root, out = Path(root), Path(out)
    entries = [(split, p) for split, base in split_folders(root) for p in sorted(base.iterdir())]
    folders = [(split, p) for split, p in entries if p.is_dir() and PATIENT.match(p.name)]
    other = [p.name for sp, p in entries if (sp, p) not in folders]
    if other:
        log.warning("acdc: %d entr(ies) of training/testing not named patientNNN left out, e.g. %s",
                    len(other), other[0])
    done = map_units(convert_patient, [(folder, split, root, key, out / "h5", pre) for split, folder in folders],
                     jobs, "acdc patients", "patient")
    studies, units = [s for s, _ in done], [r for _, r in done]
    return write_outputs(out, COHORT, units, studies, DISEASES, "folders")
