"""UK Biobank bulk CMR adapter: ``{eid}_20209_2_0.zip`` (SAX) and ``{eid}_20208_2_0.zip`` (LAX) -> per-study HDF5.

Input, as UK Biobank delivers it (``ukbfetch`` bulk fields; showcase Category 100003):

- one zip per participant, field, instance and array: ``{eid}_{field}_{instance}_{array}.zip`` with
  field 20209 "Short axis heart images - DICOM" and 20208 "Long axis heart images - DICOM";
  instance 2 is the first imaging visit, 3 the repeat imaging visit (ukbb_cardiac
  ``data/download_data_ukbb_general.py``: ``'{eid} {field}_2_0'`` batch lines).
- each zip holds single-frame DICOM files side by side and a manifest named ``manifest.csv`` or,
  in many deliveries, ``manifest.cvs`` (ukbb_cardiac copies ``manifest.cvs`` to ``manifest.csv``;
  CineMA ``cinema/data/ukb/...`` globs ``manifest.*``). Its columns include ``filename``,
  ``patientid``, ``date`` and the misspelt ``series discription``; dates written ``Aug 30, 2015``
  carry an unquoted comma that shifts the columns after it, which ukbb_cardiac
  (``biobank_utils.process_manifest``) and CineMA (``fix_manifest``) repair with the regex
  ``([A-Z])(\\w{2}) (\\d{1,2}), 20(\\d{2})`` before parsing; so does :func:`read_manifest`.
- series (``series discription``): ``CINE_segmented_SAX_b{k}``, one per SAX slice (ukbb_cardiac
  ``Biobank_Dataset``: ``CINE_segmented_SAX_b(\\d*)$``); ``CINE_segmented_SAX`` (all slices in one
  series, older deliveries); ``CINE_segmented_LAX_2Ch`` / ``_3Ch`` / ``_4Ch``; and derived series to
  skip: the scanner's inline analysis ``CINE_segmented_SAX_InlineVF`` and ``Inline_VF_Results``
  (CineMA skips names containing ``InlineVF`` / ``Inline_VF_Results``; the ml4h-style readers skip
  ``CINE_segmented_SAX_InlineVF``). Slices are ordered by position along the slice normal (not by
  ``b{k}``), as ingestion does; of repeated series at one position the latest is kept
  (ukbb_cardiac ``find_series`` keeps the last of several series in one slice folder).
- ``--lvef CSV``: ``eid`` and ``lvef`` (%), optionally ``edv_ml``, ``esv_ml`` and ``instance``
  (default 2); or the showcase columns ``22420-{i}.0`` (LV ejection fraction), ``22421-{i}.0``
  (LV end-diastolic volume), ``22422-{i}.0`` (LV end-systolic volume), derived by UK Biobank from
  the cvi42 contours of the SAX stack (Petersen et al., JCMR 2017).

A unit is one zip (``source_id`` = the zip's stem). A study is one eid and instance: its SAX and
LAX zips land in one HDF5 (views ``SAX`` and the ``4CH``/``3CH``/``2CH`` found). Unit statuses:
``corrupt`` (not a zip, truncated, CRC error), ``inconsistent`` (manifest names files absent from
the zip, lacks the ``filename``/``series discription`` columns, or the manifest is absent and the
headers give no series), ``no_cine`` (no usable cine series), ``duplicate`` (the same zip name twice
under ``--root``: the first in sorted order is read). ``patient_id = pseudonymize("ukb:" + eid)``,
``study_id = pseudonymize("ukb:{eid}_{instance}")``; the manifest's identifiers and dates are never copied.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.external.release import (
    ExternalError,
    Preprocess,
    SeriesFiles,
    Study,
    assemble_series,
    check_series,
    digest_of,
    map_units,
    reuse_existing,
    to_number,
    unit_row,
    write_outputs,
    write_study,
)
from cinefm.privacy import pseudonymize

log = logging.getLogger(__name__)

COHORT = "ukb"
SAX_FIELD, LAX_FIELD = "20209", "20208"
ZIP_NAME = re.compile(r"^(\d+)_(20208|20209)_(\d+)_(\d+)\.zip$")
MANIFEST_NAMES = ("manifest.csv", "manifest.cvs")
DATE_WITH_COMMA = re.compile(r"([A-Z])(\w{2}) (\d{1,2}), 20(\d{2})")
SAX_SLICE = re.compile(r"^CINE_segmented_SAX_b(\d+)$")
LAX_VIEWS = {"CINE_segmented_LAX_2Ch": "2CH", "CINE_segmented_LAX_3Ch": "3CH", "CINE_segmented_LAX_4Ch": "4CH"}
DERIVED = ("InlineVF", "Inline_VF_Results")
SHOWCASE = {"lvef": "22420", "edv_ml": "22421", "esv_ml": "22422"}


@dataclass(frozen=True)
class UkbZip:
    """One bulk zip under ``--root``."""

    path: Path
    relpath: str
    eid: str
    field: str
    instance: str
    array: str

    @property
    def source_id(self) -> str:
        return self.path.stem


def find_zips(root: str | os.PathLike) -> tuple[list[UkbZip], list[str]]:
    """Bulk zips under ``root`` (any depth, sorted) and the ``.zip`` names that do not follow the naming."""
    root = Path(root)
    if not root.is_dir():
        raise ExternalError(f"{root}: not a folder — --root must hold the {{eid}}_20209_2_0.zip / "
                            "{eid}_20208_2_0.zip files fetched with ukbfetch")
    zips, other = [], []
    for p in sorted(root.rglob("*.zip")):
        m = ZIP_NAME.match(p.name)
        if m:
            zips.append(UkbZip(p, p.relative_to(root).as_posix(), *m.groups()))
        else:
            other.append(p.relative_to(root).as_posix())
    return zips, other


def classify_series(name: str) -> tuple[str, str]:
    """(view or '', reason when skipped) of a ``series discription``."""
    if any(tag in name for tag in DERIVED):
        return "", "skipped: derived inline-analysis series"
    if SAX_SLICE.match(name) or name == "CINE_segmented_SAX":
        return "SAX", ""
    if name in LAX_VIEWS:
        return LAX_VIEWS[name], ""
    if name == "CINE_segmented_LAX":
        return "", "skipped: mixed LAX series, the view of each file is not recorded"
    return "", "skipped: not a cine series this pipeline uses"


def read_manifest(text: str) -> pd.DataFrame:
    """Parse a manifest after repairing ``Aug 30, 2015``-style dates; columns lower-cased and stripped.

    Lines that still do not parse are left out and counted in ``df.attrs["skipped_lines"]``.
    """
    fixed = DATE_WITH_COMMA.sub(lambda m: f"{m.group(3)}-{m.group(1)}{m.group(2)}-20{m.group(4)}", text)
    df = pd.read_csv(io.StringIO(fixed), dtype=str, keep_default_na=False, on_bad_lines="skip")
    df.columns = [c.strip().lower() for c in df.columns]
    df.attrs["skipped_lines"] = sum(1 for line in fixed.splitlines()[1:] if line.strip()) - len(df)
    if "series description" in df.columns and "series discription" not in df.columns:
        df = df.rename(columns={"series description": "series discription"})
    return df


def _member_series(zf: zipfile.ZipFile) -> tuple[dict[str, list[str]] | None, str]:
    """Series name -> member names from the manifest; (None, reason) when it cannot be used."""
    members = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    manifests = [n for n in members if n.rsplit("/", 1)[-1].lower() in MANIFEST_NAMES]
    if not manifests:
        return {}, "no_manifest: neither manifest.csv nor manifest.cvs in the zip; series from SeriesDescription"
    text = zf.read(manifests[0]).decode("utf-8", errors="replace")
    df = read_manifest(text)
    missing = [c for c in ("filename", "series discription") if c not in df.columns]
    if missing:
        return None, f"manifest_columns: {manifests[0].rsplit('/', 1)[-1]} lacks {missing}"
    prefix = manifests[0].rsplit("/", 1)[0] + "/" if "/" in manifests[0] else ""
    names = [prefix + f.strip() for f in df["filename"]]
    absent = [n for n in names if n not in members]
    if absent:
        return None, f"manifest_absent_files: {len(absent)} of {len(names)} file(s) named by the manifest are not in the zip"
    groups: dict[str, list[str]] = {}
    for n, s in zip(names, df["series discription"].str.strip(), strict=True):
        groups.setdefault(s, []).append(n)
    notes = []
    if df.attrs["skipped_lines"]:
        notes.append(f"manifest_lines_skipped: {df.attrs['skipped_lines']} line(s) of the manifest do not parse")
    unlisted = len(members) - len(manifests) - len(set(names))
    if unlisted > 0:
        notes.append(f"files_not_in_manifest: {unlisted} file(s) of the zip are not named by the manifest, left out")
    return groups, "; ".join(notes)


def _series_from_headers(folder: Path, names: list[str]) -> dict[str, list[str]]:
    """Series name -> files from SeriesDescription (header only) when the manifest is absent."""
    import pydicom

    groups: dict[str, list[str]] = {}
    for n in names:
        try:
            ds = pydicom.dcmread(folder / n, stop_before_pixels=True, specific_tags=["SeriesDescription"])
            desc = str(ds.get("SeriesDescription", "")).strip()
        except Exception:  # unreadable files are counted by the scan
            desc = ""
        groups.setdefault(desc or "(no SeriesDescription)", []).append(n)
    return groups


def open_zip(z: UkbZip, into: Path | None) -> tuple[str, str, list[SeriesFiles], list]:
    """Check one zip and extract it into ``into`` (None: central directory and manifest only):
    (status, reason, series, digest items = member name, CRC-32, size). Never raises."""
    try:
        with zipfile.ZipFile(z.path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            items = [(z.source_id, i.filename, i.CRC, i.file_size) for i in infos]
            groups, note = _member_series(zf)
            if groups is None:
                return "inconsistent", note, [], items
            wanted = [i for i in infos if i.filename.rsplit("/", 1)[-1].lower() not in MANIFEST_NAMES]
            if into is None:
                return "ok", note, [], items
            for info in wanted:
                zf.extract(info, into)  # CRC checked on read: a damaged member raises here
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        return "corrupt", f"corrupt_zip: {type(exc).__name__}: {exc}"[:300], [], []
    except OSError as exc:
        return "corrupt", f"unreadable: {type(exc).__name__}: {exc.strerror or exc}"[:300], [], []
    if not groups:
        groups = _series_from_headers(into, [i.filename for i in wanted])
    series = []
    for name, files in sorted(groups.items()):
        view, skip = classify_series(name)
        series.append(SeriesFiles(name, view, tuple(sorted(files)), skip))
    return "ok", note, series, items


def read_lvef(path: str | os.PathLike | None) -> dict[tuple[str, str], dict[str, float]]:
    """``--lvef`` CSV -> {(eid, instance): {lvef, edv_ml, esv_ml}} (module docstring for the columns)."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ExternalError(f"--lvef {p}: file not found")
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    df.columns = [c.strip() for c in df.columns]
    if "eid" not in df.columns:
        raise ExternalError(f"--lvef {p}: no 'eid' column; expected eid,lvef[,edv_ml,esv_ml,instance] or the "
                            "showcase columns eid,22420-2.0,22421-2.0,22422-2.0")
    out: dict[tuple[str, str], dict[str, float]] = {}
    showcase = {c for c in df.columns if re.match(r"^2242[012]-\d+\.0$", c)}
    if "lvef" not in df.columns and not showcase:
        raise ExternalError(f"--lvef {p}: neither an 'lvef' column nor showcase columns 22420-<instance>.0")
    for r in df.to_dict("records"):
        eid = str(r["eid"]).strip()
        if "lvef" in df.columns:
            inst = str(r.get("instance", "") or "2").strip()
            out[(eid, inst)] = {k: to_number(r.get(k, "")) for k in SHOWCASE}
        for c in showcase:
            field, inst = c.split("-")[0], c.split("-")[1].split(".")[0]
            key = next(k for k, f in SHOWCASE.items() if f == field)
            out.setdefault((eid, inst), {k: np.nan for k in SHOWCASE})[key] = to_number(r[c])
    return out


def convert_study(eid: str, instance: str, zips: list[UkbZip], key: bytes, h5_root: Path, pre: Preprocess,
                  measures: dict[str, float], tmp_root: str | None = None) -> tuple[Study, list[dict]]:
    """Read the zips of one eid and instance into one study HDF5; return it and one row per zip."""
    study = Study(COHORT, pseudonymize(f"ukb:{eid}", key, "patient"), pseudonymize(f"ukb:{eid}_{instance}", key, "study"))
    rows = []
    opened = []
    for z in zips:
        status, reason, _, items = open_zip(z, None)
        rows.append(unit_row(z.source_id, z.relpath, status, reason, patient_id=study.patient_id,
                             study_id=study.study_id))
        if status == "ok":
            opened.append((z, items))
    study.digest = digest_of([it for _, items in opened for it in items], pre, {"measures": measures})
    if not (opened and reuse_existing(study, h5_root)):
        with tempfile.TemporaryDirectory(prefix="cinefm-ukb-", dir=tmp_root) as tmp:
            for z, _ in opened:
                folder = Path(tmp) / z.field
                folder.mkdir()
                status, reason, series, _ = open_zip(z, folder)
                if status != "ok":  # a member damaged past its central-directory entry (CRC)
                    next(r for r in rows if r["source_id"] == z.source_id).update(status=status, reason=reason)
                    continue
                groups = check_series(folder, series, key, pre, z.field, study)
                assemble_series(folder, study, groups, pre, f"ukb:{z.field}")
        study.labels = {k: measures.get(k, np.nan) for k in ("lvef", "edv_ml", "esv_ml")}
        if not study.volumes:
            study.reason = "; ".join(r["reason"] for r in rows if r["reason"]) or "no_cine: no usable cine series"
        write_study(study, h5_root, pre)
    opened = [(z, items) for z, items in opened
              if next(r for r in rows if r["source_id"] == z.source_id)["status"] == "ok"]
    for z, *_ in opened:  # a readable zip that gave no view of the study
        mine = [r for r in study.series if r["unit"] == z.field]
        views = {r["view"] for r in mine if r["status"] == "kept"}
        if not views & set(study.shapes):
            why = [r["reason"] for r in mine if r["status"] != "kept"]
            row = next(r for r in rows if r["source_id"] == z.source_id)
            row.update(status="no_cine", reason=("no_cine: no usable cine series (" + "; ".join(why)[:250] + ")")
                       if why else "no_cine: no usable cine series")
    return study, rows


def run_ukb(root: str | os.PathLike, out: str | os.PathLike, *, key: bytes, lvef: str | os.PathLike | None = None,
            pre: Preprocess | None = None, tmp_root: str | None = None, jobs: int = 1) -> pd.DataFrame:
    """Convert the UK Biobank zips under ``root`` into ``out`` (module docstring); return files.csv."""
    pre = pre or Preprocess()
    out = Path(out)
    zips, other = find_zips(root)
    if other:
        log.warning("%s: %d .zip file(s) not named {eid}_{field}_{instance}_{array}.zip left out, e.g. %s",
                    root, len(other), other[0])
    measures = read_lvef(lvef)
    units, by_study, seen = [], {}, set()
    for z in zips:
        if z.path.name in seen:
            units.append(unit_row(z.source_id, z.relpath, "duplicate", "duplicate: a zip of this name was read "
                                  "from another folder"))
            continue
        seen.add(z.path.name)
        by_study.setdefault((z.eid, z.instance), []).append(z)
    work = [(eid, inst, sorted(group, key=lambda z: z.field != SAX_FIELD), key, out / "h5", pre,
             measures.get((eid, inst), {}), tmp_root) for (eid, inst), group in sorted(by_study.items())]
    studies = []
    for study, rows in map_units(convert_study, work, jobs, "ukb studies", "study"):
        studies.append(study)
        units += rows
    if measures:
        found = {(z.eid, z.instance) for z in zips}
        unmatched = [k for k in measures if k not in found]
        if unmatched:
            log.info("--lvef: %d row(s) with no zip under --root", len(unmatched))
    return write_outputs(out, COHORT, units, studies, [], "zips")
