"""What every external-cohort adapter shares: the unit/series/study tables, DICOM series checks, HDF5 writing.

An adapter (:mod:`cinefm.external.ukb`, :mod:`cinefm.external.acdc`, :mod:`cinefm.external.kaggle`)
turns its owner's *source units* (a UK Biobank zip, an ACDC patient folder, a Kaggle study folder or
CSV row) into :class:`Study` results and hands them to :func:`write_outputs`, which writes the same
tables as ``cinefm echonet`` (``out`` plays the role of ``results/external/{cohort}/``):

- ``files.csv`` (``FILES_COLUMNS``): one row per source unit: ``source_id`` as the owner names it,
  ``relpath`` (to ``--root``), ``patient_id``/``study_id`` (keyed pseudonyms), ``h5_relpath`` (``ok``
  rows), ``split``, ``status`` (``UNIT_STATUSES``) and ``reason`` (``code: detail``, as ingestion).
  It links the owner's ids (UK Biobank eids, ACDC patient numbers, Kaggle Ids) to the pseudonyms, so
  it is the cohort's id map: written 0600 (owner only) like ingestion's id map, and the only output
  that names them (reasons elsewhere say ``<id>``).
- ``series.csv`` (``SERIES_COLUMNS``): one row per series of the DICOM cohorts (a UKB manifest
  group, a Kaggle ``sax_N`` folder; ``unit`` = the UKB field it came from): ``kept`` or why it was left out (``skipped`` InlineVF,
  ``orientation``, ``matrix``, ``repeat``, ``few_frames``, ``no_dicom``...).
- ``h5/{patient}/{study}.h5``: ingestion's layout (:func:`cinefm.dicom.extract.write_study_h5`),
  assembled with ingestion's rules (:func:`cinefm.dicom.assemble.assemble_view`: intensity window,
  periodic frame resampling to the common count, aspect-keeping resize to ``frame_size``), so models
  trained on ingested studies read these unchanged. Root attrs add ``cohort``, ``source_digest`` and
  ``external_json`` (the study's series rows and measurements, so a rerun that keeps the file can
  still report them).
- ``studies.csv`` (``STUDY_COLUMNS``), the manifest :mod:`cinefm.splits` reads; ``labels.csv``
  (``study_id, patient_id, lvef, edv_ml, esv_ml``, the disease keys where the cohort has them,
  ``split``); ``flow.csv`` (ingestion's ``level, stage, status, reason, count``).

Resumable and idempotent: a study whose ``source_digest`` (identity of its inputs and the
preprocessing parameters) matches the existing file is not rewritten; a study no longer produced is
removed. Outputs are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from cinefm.atomic import write_csv
from cinefm.dicom.assemble import ViewVolume, assemble_view, fit_frames, intensity_window, to_uint8
from cinefm.dicom.extract import SCHEMA_VERSION, h5_relpath, source_files, write_study_h5
from cinefm.dicom.header import FileRecord, read_file, slice_normal
from cinefm.dicom.scan import write_id_map
from cinefm.dicom.series import cluster_positions
from cinefm.dicom.views import VIEWS

log = logging.getLogger(__name__)

UNIT_STATUSES = ("ok", "missing", "corrupt", "unreadable", "no_cine", "inconsistent", "duplicate")
FILES_COLUMNS = ["source_id", "relpath", "patient_id", "study_id", "h5_relpath", "split", "status", "reason"]
SERIES_COLUMNS = ["study_id", "unit", "series", "view", "files", "rows", "cols", "frames", "position_mm",
                  "status", "reason"]
STUDY_COLUMNS = ["patient_id", "study_id", "h5_relpath", "status", "reason", "views", "sax_slices", "frames", "split"]
MEASURES = ["lvef", "edv_ml", "esv_ml"]
ADAPTER_VERSION = 1  # part of every source_digest: bump when a change alters what the adapters write
FLOW_COLUMNS = ["level", "stage", "status", "reason", "count"]


class ExternalError(ValueError):
    """The release folder is not what the adapter reads; the message names the file and the fix."""


@dataclass(frozen=True)
class Preprocess:
    """Ingestion's clip preprocessing (config ``ingest``): the same numbers give the same clips."""

    frame_size: int = 64
    percentiles: tuple[float, float] = (0.5, 99.5)
    compression: str = "none"
    tol_mm: float = 0.5  # positions closer than this are one slice (views.yaml geometry.slice_tolerance_mm)
    min_frames: int = 10  # cine series with fewer frames are left out (config ingest.min_frames)

    def identity(self) -> dict:
        return {"schema": SCHEMA_VERSION, **asdict(self)}


@dataclass
class Study:
    """One study as an adapter resolved it, before writing (mutable while it is built)."""

    cohort: str
    patient_id: str
    study_id: str
    split: str = ""
    status: str = "ok"  # written | unchanged | failed (set by write_study)
    reason: str = ""
    volumes: dict[str, ViewVolume] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    series: list[dict] = field(default_factory=list)
    labels: dict[str, float | int | str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    digest: str = ""
    shapes: dict[str, tuple] = field(default_factory=dict)


def unit_row(source_id: str, relpath: str, status: str, reason: str = "", *, patient_id: str = "",
             study_id: str = "", split: str = "") -> dict:
    """One ``files.csv`` row (``h5_relpath`` is filled in by :func:`write_outputs` for ``ok`` rows)."""
    if status not in UNIT_STATUSES:
        raise ValueError(f"unit status {status!r} not in {UNIT_STATUSES}")
    return {"source_id": source_id, "relpath": relpath, "patient_id": patient_id, "study_id": study_id,
            "h5_relpath": "", "split": split, "status": status, "reason": reason}


def digest_of(items: Iterable, pre: Preprocess, extra: dict | None = None) -> str:
    """SHA-256 identity of a study's inputs (``items``: JSON-able, e.g. (name, sha256) pairs) and parameters."""
    doc = {"adapter": ADAPTER_VERSION, "pre": pre.identity(), "items": sorted(map(list, items)) if items else [], "extra": extra or {}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def to_number(value) -> float:
    """``float(value)`` when it is a finite number, else NaN (blank or malformed table cells)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return x if np.isfinite(x) else float("nan")


# ---------------------------------------------------------------- DICOM series checks


@dataclass(frozen=True)
class SeriesFiles:
    """The files of one series as its owner groups them (folder or manifest group), relative to ``root``."""

    name: str
    view: str  # SAX | 4CH | 3CH | 2CH; "" for a series left out
    relpaths: tuple[str, ...]
    skip: str = ""  # why a series is left out unread (``skipped: ...``)


def scan_series(root: str | os.PathLike, series: SeriesFiles, key: bytes) -> list[FileRecord]:
    """Header-scan every file of one series with ingestion's reader (never raises)."""
    return [read_file(root, rel, key) for rel in series.relpaths]


def split_by_uid(s: SeriesFiles, records: list[FileRecord]) -> list[tuple[SeriesFiles, list[FileRecord]]]:
    """Split a group holding several SeriesInstanceUIDs (UKB: a repeated slice under one series name;
    ukbb_cardiac ``find_series``) into ``name#1``, ``name#2``... ordered by SeriesNumber."""
    uids = {r.series_id for r in records if r.status == "ok"}
    if len(uids) < 2:
        return [(s, records)]
    number = {u: max(int(r.series_number or 0) for r in records if r.series_id == u) for u in uids}
    parts = []
    for n, u in enumerate(sorted(uids, key=lambda u: (number[u], u)), 1):
        recs = [r for r in records if r.series_id == u or (n == 1 and r.status != "ok")]
        parts.append((SeriesFiles(f"{s.name}#{n}", s.view, tuple(r.relpath for r in recs), s.skip), recs))
    return parts


def summarize_series(series: SeriesFiles, records: list[FileRecord], tol: float) -> dict:
    """One ``series.csv`` row (status ``kept`` for now) from the scan records of a series."""
    ok = [r for r in records if r.status == "ok"]
    row = {"series": series.name, "view": series.view, "files": len(records), "rows": np.nan, "cols": np.nan,
           "frames": 0, "position_mm": np.nan, "status": "kept", "reason": "", "normal": None,
           "series_number": 0}
    if not records:
        return {**row, "status": "no_dicom", "reason": "no_dicom: no file in this series"}
    if not ok:
        codes = Counter(r.reason.split(":", 1)[0] for r in records)
        return {**row, "status": "no_dicom",
                "reason": "no_dicom: no readable DICOM image (" + ", ".join(f"{k} x{n}" for k, n in codes.items()) + ")"}
    shapes = Counter((r.rows, r.cols) for r in ok)
    (rows, cols), _ = shapes.most_common(1)[0]
    normals = [tuple(float(x) for x in np.round(slice_normal(r.orientation), 2)) if r.orientation else None
               for r in ok]
    pos = np.array([np.nan if r.slice_location is None else r.slice_location for r in ok], float)
    labels, centres = cluster_positions(pos, tol)
    frames = Counter(labels.tolist()).most_common(1)[0][1] if len(labels) else 0
    row.update(rows=rows, cols=cols, frames=int(frames), position_mm=float(np.nanmedian(pos)) if np.isfinite(pos).any()
               else np.nan, normal=Counter(normals).most_common(1)[0][0],
               series_number=max(int(r.series_number or 0) for r in ok))
    bad = len(records) - len(ok)
    if bad:
        row["reason"] = f"files_left_out: {bad} of {len(records)} file(s) unreadable or not MR images"
    if len(shapes) > 1:
        row.update(status="matrix", reason=f"matrix: files of one series differ in size {sorted(shapes)}")
    return row


def select_sax(rows: list[dict], tol: float, min_frames: int) -> list[dict]:
    """Mark the SAX series that cannot join one stack (Kaggle DSB and UK Biobank quirks).

    In order: fewer frames than ``min_frames`` (``few_frames``); a slice normal other than the most
    common one (``orientation``, tilted slices or a stray LAX view); a matrix other than the most
    common one (``matrix``); and of several series at one position (within ``tol`` mm) all but the
    highest SeriesNumber, the latest acquisition (``repeat``). Cf. CineMA's
    ``cinema/data/kaggle/preprocess.py`` (keeps the longest run of equal size/spacing/direction) and
    ukbb_cardiac's ``biobank_utils.find_series`` (keeps the last of repeated series).
    """
    live = [r for r in rows if r["status"] == "kept"]
    for r in live:
        if r["frames"] < min_frames:
            r.update(status="few_frames", reason=f"few_frames: {r['frames']} frames < {min_frames}")
    live = [r for r in live if r["status"] == "kept"]
    if live:
        normal = Counter(r["normal"] for r in live).most_common(1)[0][0]
        for r in live:
            if r["normal"] != normal:
                r.update(status="orientation", reason=f"orientation: slice normal {r['normal']} differs from the "
                         f"stack's {normal}")
    live = [r for r in live if r["status"] == "kept"]
    if live:
        matrix = Counter((r["rows"], r["cols"]) for r in live).most_common(1)[0][0]
        for r in live:
            if (r["rows"], r["cols"]) != matrix:
                r.update(status="matrix", reason=f"matrix: {r['rows']}x{r['cols']} differs from the stack's "
                         f"{matrix[0]}x{matrix[1]}")
    live = [r for r in live if r["status"] == "kept"]
    pos = np.array([r["position_mm"] for r in live], float)
    if len(live) > 1:
        labels, _ = cluster_positions(pos, tol)
        for k in set(labels.tolist()):
            group = [r for r, lab in zip(live, labels, strict=True) if lab == k]
            if len(group) > 1 and np.isfinite(group[0]["position_mm"]):
                keep = max(group, key=lambda r: (r["series_number"], r["series"]))
                for r in group:
                    if r is not keep:
                        r.update(status="repeat", reason=f"repeat: same position ({r['position_mm']:.1f} mm) as "
                                 f"{keep['series']}, a later acquisition")
    return rows


def stack_notes(rows: list[dict], tol: float) -> list[str]:
    """Notes on a kept SAX stack: uneven slice gaps (missing slices) and differing frame counts."""
    kept = sorted((r for r in rows if r["status"] == "kept" and r["view"] == "SAX"), key=lambda r: r["position_mm"])
    notes = []
    pos = np.array([r["position_mm"] for r in kept], float)
    if len(pos) > 2 and np.isfinite(pos).all():
        gaps = np.diff(pos)
        step = float(np.median(gaps))
        wide = [(kept[i]["series"], kept[i + 1]["series"], g) for i, g in enumerate(gaps) if g > 1.5 * step + tol]
        if wide:
            notes.append("missing_slices: " + "; ".join(f"{a}->{b} {g:.1f} mm (step {step:.1f} mm)"
                                                        for a, b, g in wide))
    counts = Counter(r["frames"] for r in kept)
    if len(counts) > 1:
        common = max(counts, key=lambda n: (counts[n], n))
        odd = [f"{r['series']} {r['frames']}" for r in kept if r["frames"] != common]
        notes.append(f"frames_resampled: to {common} frames: " + ", ".join(odd))
    return notes


def assemble_series(root: str | os.PathLike, study: Study, groups: dict[str, list[tuple[SeriesFiles, list[FileRecord]]]],
                    pre: Preprocess, rule: str) -> None:
    """Assemble each view from its kept series (ingestion's :func:`assemble_view`) into ``study.volumes``."""
    for view, members in groups.items():
        recs = [r for _, records in members for r in records if r.status == "ok"]
        if not recs:
            continue
        df = pd.DataFrame([asdict(r) for r in recs])
        vendor = str(df["vendor"].mode().iloc[0]) if df["vendor"].notna().any() else ""
        try:
            study.volumes[view] = assemble_view(source_files(df, root), frame_size=pre.frame_size,
                                                percentiles=pre.percentiles, tol=pre.tol_mm)
        except Exception as exc:  # a decode failure loses a view, not the run
            log.warning("%s study %s view %s: assembly failed: %s", study.cohort, study.study_id, view, exc)
            study.notes.append(f"assembly_failed: view {view}: {type(exc).__name__}: {exc}"[:300])
            continue
        study.meta[view] = {"vendor": vendor, "description": ";".join(s.name for s, _ in members), "view_rule": rule}


def volume_from_array(data: np.ndarray, spacing: tuple[float, float], positions: np.ndarray, frame_ms: float,
                      pre: Preprocess, series_id: str) -> ViewVolume:
    """``(slices, frames, H, W)`` image values -> :class:`ViewVolume` with ingestion's rules 5-6.

    One intensity window over the whole view (``pre.percentiles``), then each slice resized keeping
    its physical aspect to ``frame_size`` and scaled to uint8 (:mod:`cinefm.dicom.assemble`).
    """
    s, f, h, w = data.shape
    lo, hi = intensity_window([data], pre.percentiles)
    out, sp = [], 0.0
    for k in range(s):
        resized, sp = fit_frames(data[k], spacing, pre.frame_size)
        out.append(to_uint8(resized, lo, hi))
    return ViewVolume(
        data=np.stack(out), series_ids=tuple([series_id] * s), slice_locations_mm=np.asarray(positions, float),
        pixel_spacing_mm=np.full((s, 2), sp), original_pixel_spacing_mm=np.tile(np.asarray(spacing, float), (s, 1)),
        original_size=np.tile(np.array([h, w], np.int64), (s, 1)), original_frames=np.full(s, f, np.int64),
        frame_time_ms=np.full(s, frame_ms, float), window=(lo, hi),
    )


# ---------------------------------------------------------------- writing


def _existing(path: Path) -> tuple[str | None, dict, dict[str, tuple]]:
    try:
        with h5py.File(path, "r") as h5:
            extra = json.loads(str(h5.attrs.get("external_json", "{}")))
            return str(h5.attrs.get("source_digest", "")), extra, {v: h5[v].shape for v in VIEWS if v in h5}
    except (OSError, KeyError, ValueError):
        return None, {}, {}


def reuse_existing(study: Study, h5_root: str | os.PathLike) -> bool:
    """True (and ``study`` filled from the file) when its HDF5 exists with the same ``source_digest``."""
    path = Path(h5_root) / h5_relpath(study.patient_id, study.study_id)
    if not path.is_file():
        return False
    digest, extra, shapes = _existing(path)
    if digest != study.digest or not shapes:
        return False
    study.status, study.shapes = "unchanged", shapes
    study.series = extra.get("series", [])
    study.labels = extra.get("labels", {})
    study.notes = extra.get("notes", [])
    return True


def write_study(study: Study, h5_root: str | os.PathLike, pre: Preprocess) -> None:
    """Write ``study.volumes`` as one ingestion-layout HDF5 (atomically), or mark it failed."""
    path = Path(h5_root) / h5_relpath(study.patient_id, study.study_id)
    if not study.volumes:
        study.status = "failed"
        return
    extra = {"series": study.series, "labels": study.labels, "notes": study.notes}
    root_attrs = {"frame_size": pre.frame_size, "intensity_percentiles": np.array(pre.percentiles, float),
                  "source_digest": study.digest, "cohort": study.cohort,
                  "external_json": json.dumps(extra, default=_json_default)}
    write_study_h5(path, study.patient_id, study.study_id, study.volumes, study.meta, root_attrs,
                   compression=pre.compression)
    study.status = "written"
    study.shapes = {v: vol.data.shape for v, vol in study.volumes.items()}
    study.volumes = {}  # free the pixels; the tables need only the shapes


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, tuple | np.ndarray):
        return list(o)
    return str(o)


def studies_table(studies: list[Study]) -> pd.DataFrame:
    """``studies.csv`` rows (``STUDY_COLUMNS``)."""
    rows = []
    for s in studies:
        views = [v for v in VIEWS if v in s.shapes]
        ok = s.status != "failed"
        rows.append({
            "patient_id": s.patient_id, "study_id": s.study_id,
            "h5_relpath": h5_relpath(s.patient_id, s.study_id) if ok else "", "status": s.status,
            "reason": "; ".join(s.notes) if ok else (s.reason or "; ".join(s.notes) or "no_cine: no usable view"),
            "views": ";".join(views), "sax_slices": int(s.shapes["SAX"][0]) if "SAX" in s.shapes else 0,
            "frames": ";".join(f"{v}:{s.shapes[v][1]}" for v in views), "split": s.split,
        })
    return pd.DataFrame(rows, columns=STUDY_COLUMNS)


def labels_table(studies: list[Study], extra_columns: list[str]) -> pd.DataFrame:
    """``labels.csv``: measures and disease keys of the studies written (``MEASURES`` + ``extra_columns``)."""
    cols = ["study_id", "patient_id", *MEASURES, *extra_columns, "split"]
    rows = [{"study_id": s.study_id, "patient_id": s.patient_id, **{c: s.labels.get(c, np.nan)
             for c in MEASURES + extra_columns}, "split": s.split} for s in studies if s.status != "failed"]
    return pd.DataFrame(rows, columns=cols)


def flow_counts(files: pd.DataFrame, series: pd.DataFrame, studies: pd.DataFrame, unit: str) -> pd.DataFrame:
    """Exclusion counts (ingestion's ``flow.csv`` layout) at the levels units, series, studies and patients."""
    rows = []

    def level(name: str, df: pd.DataFrame, ok: str) -> None:
        rows.append((name, "input", "", "", len(df)))
        if not len(df):
            return
        code = df["reason"].fillna("").map(lambda r: str(r).split(":", 1)[0].strip())
        bad = df.assign(code=code)[df["status"] != ok]
        for (status, reason), n in bad.groupby(["status", "code"]).size().sort_values(ascending=False).items():
            rows.append((name, "excluded", status, reason, int(n)))
        rows.append((name, "kept", ok, "", int((df["status"] == ok).sum())))

    level(unit, files, "ok")
    if len(series):
        level("series", series, "kept")
    st = studies.assign(status=studies["status"].where(studies["status"] == "failed", "ok"))
    level("studies", st, "ok")
    ok = studies[studies["status"] != "failed"]
    rows.append(("patients", "input", "", "", int(files.loc[files["patient_id"] != "", "patient_id"].nunique())))
    rows.append(("patients", "kept", "ok", "", int(ok["patient_id"].nunique())))
    for split, n in ok[ok["split"].fillna("") != ""].groupby("split")["patient_id"].nunique().items():
        rows.append(("patients", "split", split, "", int(n)))
    return pd.DataFrame(rows, columns=FLOW_COLUMNS)


def scrub(text: str, ids: set[str]) -> str:
    """``text`` with each owner id (longest first; ids of 3+ characters) replaced by ``<id>``."""
    for i in sorted((i for i in ids if len(i) >= 3), key=len, reverse=True):
        text = text.replace(i, "<id>")
    return text


def remove_stale(h5_root: Path, keep: set[str]) -> None:
    """Delete ``h5/*/*.h5`` (and temporaries of killed runs) that this run did not produce."""
    for p in list(h5_root.glob("*/*.h5")) + list(h5_root.glob("*/.*.h5.*")):
        if p.relative_to(h5_root).as_posix() not in keep:
            p.unlink(missing_ok=True)
            log.info("removed stale %s", p)
    for d in h5_root.glob("*"):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def write_outputs(out: str | os.PathLike, cohort: str, units: list[dict], studies: list[Study],
                  label_columns: list[str], unit_name: str) -> pd.DataFrame:
    """Write files.csv, series.csv, studies.csv, labels.csv and flow.csv; drop stale HDF5; return files."""
    out = Path(out)
    written = {s.study_id: s for s in studies if s.status != "failed"}
    for u in units:
        if u["status"] == "ok" and u["study_id"] in written:
            s = written[u["study_id"]]
            u["h5_relpath"] = h5_relpath(s.patient_id, s.study_id)
        elif u["status"] == "ok":  # readable, but its study yielded no usable view
            failed = next((s for s in studies if s.study_id == u["study_id"]), None)
            u["status"] = "no_cine"
            u["reason"] = (failed.reason or "; ".join(failed.notes) if failed else "") or "no_cine: no usable cine view"
    owner_ids = {}
    for u in units:
        owner_ids.setdefault(u["study_id"], set()).update(
            {u["source_id"], u["source_id"].split("_")[0], Path(u["relpath"]).name})
    for s in studies:  # reasons quote file names; the owner's ids stay in files.csv only
        s.reason = scrub(s.reason, owner_ids.get(s.study_id, set()))
        s.notes = [scrub(n, owner_ids.get(s.study_id, set())) for n in s.notes]
    files = pd.DataFrame(units, columns=FILES_COLUMNS)
    series = pd.DataFrame([{**r, "study_id": s.study_id} for s in studies for r in s.series])
    series = series.reindex(columns=SERIES_COLUMNS) if len(series) else pd.DataFrame(columns=SERIES_COLUMNS)
    studies_df = studies_table(studies)
    remove_stale(out / "h5", set(studies_df.loc[studies_df["status"] != "failed", "h5_relpath"]))
    write_id_map(files, out / "files.csv")
    write_csv(series, out / "series.csv")
    write_csv(studies_df, out / "studies.csv")
    write_csv(labels_table(studies, label_columns), out / "labels.csv")
    write_csv(flow_counts(files, series, studies_df, unit_name), out / "flow.csv")
    log.info("%s: units %s; studies %s", cohort, files["status"].value_counts().to_dict(),
             studies_df["status"].value_counts().to_dict())
    return files


def map_units(fn: Callable, items: list[tuple], jobs: int, desc: str, unit: str) -> list:
    """``[fn(*args) for args in items]`` in order, over ``jobs`` processes, with a progress bar.

    Studies are independent, so the adapters convert them side by side; each worker writes its
    own HDF5 files (atomically) and returns only the study record, without pixels.
    """
    from tqdm import tqdm

    out = []
    with tqdm(total=len(items), desc=desc, unit=unit, disable=None) as bar:
        if jobs <= 1 or len(items) <= 1:
            for args in items:
                out.append(fn(*args))
                bar.update()
            return out
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for fut in [pool.submit(fn, *args) for args in items]:
                out.append(fut.result())
                bar.update()
    return out


def skipped_row(s: SeriesFiles, unit: str) -> dict:
    """``series.csv`` row of a series left out unread."""
    return {"series": s.name, "view": "", "files": len(s.relpaths), "frames": 0, "status": "skipped",
            "reason": s.skip, "unit": unit}


def check_series(root: str | os.PathLike, series: list[SeriesFiles], key: bytes, pre: Preprocess, unit: str,
                 study: Study) -> dict[str, list[tuple[SeriesFiles, list[FileRecord]]]]:
    """Scan and check the series of one unit; record their rows and notes in ``study``; return view -> kept series.

    ``unit`` names the part of the study the series come from without naming the owner's ids (the
    UKB field, ``20209`` or ``20208``; empty for the Kaggle set).

    SAX series go through :func:`select_sax`; of several series of one LAX view the highest
    SeriesNumber (the latest) is kept, the others marked ``repeat``.
    """
    scanned = []
    for s in series:
        if not s.view:
            study.series.append(skipped_row(s, unit))
            continue
        for part, recs in split_by_uid(s, scan_series(root, s, key)):
            scanned.append((part, recs, {**summarize_series(part, recs, pre.tol_mm), "unit": unit}))
    select_sax([r for s, _, r in scanned if s.view == "SAX"], pre.tol_mm, pre.min_frames)
    groups: dict[str, list] = {}
    for s, recs, r in scanned:
        if s.view != "SAX" and r["status"] == "kept" and r["frames"] < pre.min_frames:
            r.update(status="few_frames", reason=f"few_frames: {r['frames']} frames < {pre.min_frames}")
        if r["status"] == "kept":
            groups.setdefault(s.view, []).append((s, recs, r))
    for view, members in groups.items():
        if view != "SAX" and len(members) > 1:
            keep = max(members, key=lambda m: (m[2]["series_number"], m[0].name))
            for m in members:
                if m is not keep:
                    m[2].update(status="repeat", reason=f"repeat: another {view} series ({keep[0].name}) is later")
            groups[view] = [keep]
    study.series += [{k: v for k, v in r.items() if k not in ("normal", "series_number")} for _, _, r in scanned]
    study.notes += stack_notes([r for _, _, r in scanned], pre.tol_mm)
    return {v: [(s, recs) for s, recs, _ in m] for v, m in groups.items()}


def run_cohort(cohort: str, root: str | os.PathLike, out: str | os.PathLike, *, key: bytes, pre: Preprocess,
               **options) -> pd.DataFrame:  # options: jobs; for ukb also lvef, tmp_root
    """Run the adapter of ``cohort`` (``ukb``, ``acdc`` or ``kaggle``); return its files.csv table."""
    if cohort == "ukb":
        from cinefm.external.ukb import run_ukb as run
    elif cohort == "acdc":
        from cinefm.external.acdc import run_acdc as run
    elif cohort == "kaggle":
        from cinefm.external.kaggle import run_kaggle as run
    else:
        raise ValueError(f"unknown external cohort {cohort!r}; expected ukb, acdc or kaggle")
    return run(root, out, key=key, pre=pre, **options)
