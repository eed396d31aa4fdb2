"""Per-study HDF5 files, written per shard: ``h5/{patient}/{study}.h5`` + a shard manifest.

Shard ``j`` (of ``shards``) handles the studies with ``crc32(study_id) % shards == j``
that have selected files in ``files.parquet``. Each HDF5 is written through
:func:`cinefm.atomic.atomic_path` (temporary file beside it, renamed on success), so
a killed job leaves no partial ``.h5``. A rerun keeps an existing file whose root
attribute ``source_digest`` (SHA-256 of schema version, parameters and the sorted
``(relpath, sha256, view)`` of its inputs) matches, so it only completes what is
missing; a file of this shard that is no longer wanted is removed.

HDF5 layout (``SCHEMA_VERSION``):

- root attrs: ``patient_id``, ``study_id`` (pseudonyms), ``schema_version``,
  ``cinefm_version``, ``views`` (names present), ``frame_size``,
  ``intensity_percentiles``, ``source_digest``.
- datasets ``4CH``, ``3CH``, ``2CH``, ``SAX`` (those present): ``(slices, frames, H, W)``
  uint8, chunked one slice per chunk, gzip level 1. Attributes: ``series_ids``
  (pseudonyms, per slice), ``slice_locations_mm``, ``pixel_spacing_mm`` (S, 2),
  ``original_pixel_spacing_mm`` (S, 2), ``original_size`` (S, 2: rows, cols),
  ``original_frames`` (S,), ``frame_time_ms`` (S,), ``vendor``, ``description``,
  ``view_rule``, ``intensity_window`` (lo, hi in stored units before scaling).

Manifest (``ingest/extract/shard_{j}.csv``), one row per study of the shard:
``patient_id, study_id, h5_relpath`` (relative to the h5 root), ``status``
(``written`` | ``unchanged`` | ``failed``), ``reason``, ``views``, ``sax_slices``,
``frames`` (frames per view, ``4CH:25;SAX:30``), ``vendor``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from cinefm import __version__
from cinefm.atomic import atomic_path, write_csv
from cinefm.dicom.assemble import NativeLayout, SourceFile, ViewVolume, assemble_view
from cinefm.dicom.scan import shard_of
from cinefm.dicom.views import VIEWS

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
MANIFEST_COLUMNS = ["patient_id", "study_id", "h5_relpath", "status", "reason", "views", "sax_slices", "frames", "vendor"]
_STR = h5py.string_dtype()


def h5_relpath(patient_id: str, study_id: str) -> str:
    """Location of a study's file under the h5 root."""
    return f"{patient_id}/{study_id}.h5"


def study_digest(doc: Mapping[str, Any], compression: str = "gzip") -> str:
    """The ``source_digest`` of a study file: SHA-256 of ``doc`` (its inputs and parameters, JSON with
    sorted keys) and the schema version, ``:<compression>`` appended unless gzip. A rerun keeps a
    file whose digest matches (every writer of the ingestion layout, :func:`write_study_h5`, uses it)."""
    digest = hashlib.sha256(json.dumps({"schema": SCHEMA_VERSION, **doc}, sort_keys=True).encode()).hexdigest()
    return digest if compression == "gzip" else f"{digest}:{compression}"


def source_digest(rows: pd.DataFrame, frame_size: int, percentiles: tuple[float, float],
                  compression: str = "gzip") -> str:
    """:func:`study_digest` of a study's DICOM inputs (relpath, sha256, view) and the parameters."""
    items = sorted(zip(rows["relpath"], rows["sha256"], rows["view"], strict=True))
    return study_digest({"frame_size": frame_size, "percentiles": list(percentiles), "files": items}, compression)


def studies_of_shard(files: pd.DataFrame, shard: int, shards: int) -> dict[str, pd.DataFrame]:
    """Selected rows per study id for the studies of ``shard`` (ordered by study id)."""
    sel = files[files["selected"].fillna(False).astype(bool) & files["status"].eq("ok") & files["view"].isin(VIEWS)]
    sel = sel.loc[np.array([shard_of(s, shards) == shard for s in sel["study_id"]], dtype=bool)]
    return {sid: g for sid, g in sorted(sel.groupby("study_id"), key=lambda kv: kv[0])}


def _present(v) -> bool:
    """``pd.notna`` for one plain Python value (None, NaN and pd.NA are missing), without its dispatch."""
    return v is not None and v is not pd.NA and v == v


def _num(v, default: float = np.nan) -> float:
    return float(v) if _present(v) else default


def _native_layout(r) -> NativeLayout | None:
    """The scan's record of a single-frame file, or None (multi-frame: pydicom reads it all).

    ``offset`` is set for native pixels of 8/16/32 bits (read without pydicom)."""
    usable = (
        _num(r.frames, 1) == 1 and r.photometric in ("MONOCHROME1", "MONOCHROME2")
        and _present(r.rows) and _present(r.cols) and _present(r.bits_allocated)
    )
    if not usable:
        return None
    native = _present(r.pixel_offset) and _num(r.bits_allocated, 0) in (8, 16, 32)
    spacing = tuple(float(v) for v in r.pixel_spacing) if r.pixel_spacing is not None else (1.0, 1.0)
    return NativeLayout(
        offset=int(r.pixel_offset) if native else None, rows=int(r.rows), cols=int(r.cols), bits_allocated=int(r.bits_allocated),
        bits_stored=int(_num(r.bits_stored, r.bits_allocated)), signed=_num(r.pixel_representation, 0) == 1,
        big_endian=bool(r.big_endian), monochrome1=r.photometric == "MONOCHROME1",
        slope=_num(r.rescale_slope, 1.0), intercept=_num(r.rescale_intercept, 0.0),
        position=_num(r.slice_location), time=_num(r.trigger_time), instance=_num(r.instance_number),
        spacing=spacing,
    )


_LAYOUT_COLUMNS = ["relpath", "series_id", "series_number", "frames", "photometric", "rows", "cols", "bits_allocated",
                   "pixel_offset", "pixel_spacing", "bits_stored", "pixel_representation", "big_endian",
                   "rescale_slope", "rescale_intercept", "slice_location", "trigger_time", "instance_number"]


def source_files(rows: pd.DataFrame, root: str | os.PathLike) -> list[SourceFile]:
    """files.parquet rows of one view -> :class:`SourceFile` records (native layout when usable)."""
    # plain Python values column by column: itertuples over Arrow-backed columns costs ~0.1 ms a row
    cols = {c: rows[c].tolist() for c in _LAYOUT_COLUMNS}
    root = os.fspath(root)
    return [
        SourceFile(path=os.path.join(root, r.relpath), series_id=r.series_id,
                   series_number=int(_num(r.series_number, 0)), native=_native_layout(r))
        for r in (SimpleNamespace(**dict(zip(cols, values, strict=True))) for values in zip(*cols.values(), strict=True))
    ]


COMPRESSION = {"none": {}, "lzf": {"compression": "lzf"}, "gzip": {"compression": "gzip", "compression_opts": 1}}


def write_study_h5(path: str | os.PathLike, patient_id: str, study_id: str, volumes: dict[str, ViewVolume],
                   meta: dict[str, dict], root_attrs: dict, compression: str = "gzip") -> None:
    """Write one study's HDF5 atomically (layout in the module docstring); the writer of every
    cohort's study files (ingestion, and the external adapters' views such as EchoNet's ``A4C``).

    ``compression`` (config ``ingest.compression``): ``gzip`` (level 1, smallest),
    ``lzf`` or ``none``. Training reads every sampled slice again each epoch, and
    gzip decoding is then the loader's main cost (benchmarks/loader.py); ``none``
    costs about 1.4x the disk of gzip on the phantom.
    """
    if compression not in COMPRESSION:
        raise ValueError(f"config.ingest.compression: {compression!r} is not one of {sorted(COMPRESSION)}")
    views = [v for v in VIEWS if v in volumes] + sorted(set(volumes) - set(VIEWS))  # external views (A4C) last
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as h5:
            h5.attrs["patient_id"] = patient_id
            h5.attrs["study_id"] = study_id
            h5.attrs["schema_version"] = SCHEMA_VERSION
            h5.attrs["cinefm_version"] = __version__
            h5.attrs["views"] = np.array(views, dtype=_STR)
            for k, v in root_attrs.items():
                h5.attrs[k] = v
            for view in views:
                vol = volumes[view]
                s, f, h, w = vol.data.shape
                ds = h5.create_dataset(view, data=vol.data, chunks=(1, f, h, w), track_times=False,
                                       **COMPRESSION[compression])
                ds.attrs["series_ids"] = np.array(vol.series_ids, dtype=_STR)
                ds.attrs["slice_locations_mm"] = vol.slice_locations_mm
                ds.attrs["pixel_spacing_mm"] = vol.pixel_spacing_mm
                ds.attrs["original_pixel_spacing_mm"] = vol.original_pixel_spacing_mm
                ds.attrs["original_size"] = vol.original_size
                ds.attrs["original_frames"] = vol.original_frames
                ds.attrs["frame_time_ms"] = vol.frame_time_ms
                ds.attrs["intensity_window"] = np.array(vol.window)
                for k, v in meta.get(view, {}).items():
                    ds.attrs[k] = v


def existing_digest(path: str | os.PathLike) -> str | None:
    """The ``source_digest`` of an existing study file (None when it cannot be read)."""
    try:
        with h5py.File(path, "r") as h5:
            return str(h5.attrs.get("source_digest", ""))
    except (OSError, KeyError):
        return None


def extract_study(
    rows: pd.DataFrame, root: str | os.PathLike, h5_root: str | os.PathLike, *,
    frame_size: int, percentiles: tuple[float, float], tol: float = 0.5, compression: str = "gzip",
) -> dict:
    """Assemble and write one study; return its manifest row (never raises for data problems)."""
    patient_id, study_id = rows["patient_id"].iloc[0], rows["study_id"].iloc[0]
    rel = h5_relpath(patient_id, study_id)
    path = Path(h5_root) / rel
    digest = source_digest(rows, frame_size, percentiles, compression)
    vendor = rows["vendor"].mode().iloc[0]
    row = {"patient_id": patient_id, "study_id": study_id, "h5_relpath": rel, "vendor": vendor, "reason": ""}
    for stale in path.parent.glob(f".{path.name}.*"):
        stale.unlink(missing_ok=True)  # temporary file of a killed run of this study
    volumes, meta, failures = {}, {}, []
    if path.is_file() and existing_digest(path) == digest:
        with h5py.File(path, "r") as h5:
            shapes = {v: h5[v].shape for v in VIEWS if v in h5}
        return {**row, **_summary(shapes), "status": "unchanged"}
    for view, g in rows.groupby("view"):
        g = g.sort_values("relpath")
        try:
            volumes[view] = assemble_view(source_files(g, root), frame_size=frame_size,
                                          percentiles=percentiles, tol=tol)
        except Exception as exc:  # a decode failure loses a view, not the shard
            log.exception("study %s view %s: assembly failed", study_id, view)
            failures.append(f"view {view}: {type(exc).__name__}: {exc}"[:300])
            continue
        meta[view] = {
            "vendor": str(g["vendor"].mode().iloc[0]),
            "description": str(g["description"].mode().iloc[0]) if g["description"].notna().any() else "",
            "view_rule": str(g["view_rule"].mode().iloc[0]),
        }
    reason = "assembly_failed: " + "; ".join(failures) if failures else ""
    if not volumes:
        path.unlink(missing_ok=True)
        return {**row, **_summary({}), "status": "failed", "reason": reason}
    root_attrs = {"frame_size": frame_size, "intensity_percentiles": np.array(percentiles, float), "source_digest": digest}
    write_study_h5(path, patient_id, study_id, volumes, meta, root_attrs, compression=compression)
    return {**row, **_summary({v: vol.data.shape for v, vol in volumes.items()}), "status": "written", "reason": reason}


def _summary(shapes: dict[str, tuple]) -> dict:
    views = [v for v in VIEWS if v in shapes]
    return {
        "views": ";".join(views),
        "sax_slices": int(shapes["SAX"][0]) if "SAX" in shapes else 0,
        "frames": ";".join(f"{v}:{shapes[v][1]}" for v in views),
    }


def remove_stale(h5_root: str | os.PathLike, keep: set[str], shard: int, shards: int) -> list[Path]:
    """Delete ``h5/*/*.h5`` of this shard's studies that are not in ``keep``; return them."""
    removed = []
    for p in Path(h5_root).glob("*/*.h5"):
        if shard_of(p.stem, shards) == shard and p.relative_to(h5_root).as_posix() not in keep:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def extract_shard(
    files: str | os.PathLike | pd.DataFrame,
    root: str | os.PathLike,
    h5_root: str | os.PathLike,
    manifest: str | os.PathLike,
    *,
    shard: int,
    shards: int,
    frame_size: int,
    percentiles: tuple[float, float],
    tol: float = 0.5,
    compression: str = "gzip",
) -> pd.DataFrame:
    """Write the HDF5 files of ``shard``'s studies and the shard manifest (atomically)."""
    logging.getLogger("pydicom").setLevel(logging.ERROR)  # per-file oddities; failures are in the manifest
    df = files if isinstance(files, pd.DataFrame) else pd.read_parquet(files)
    plan = studies_of_shard(df, shard, shards)
    log.info("extract shard %d/%d: %d studies", shard, shards, len(plan))
    # one BLAS thread: the resize matrices are small, and shards already use every core
    with threadpool_limits(limits=1, user_api="blas"):
        rows = [
            extract_study(g, root, h5_root, frame_size=frame_size, percentiles=tuple(percentiles), tol=tol,
                          compression=compression)
            for g in plan.values()
        ]
    out = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    keep = set(out.loc[out["status"].ne("failed"), "h5_relpath"])
    for p in remove_stale(h5_root, keep, shard, shards):
        log.info("removed stale %s (study no longer extracted)", p)
    write_csv(out, manifest)
    counts = out["status"].value_counts().to_dict()
    log.info("extract shard %d/%d: %s", shard, shards, counts)
    return out
