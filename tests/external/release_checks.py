"""Checks shared by the UKB, ACDC and Kaggle adapter tests (real files, no doubles)."""

from __future__ import annotations

import stat
from pathlib import Path

import h5py
import pandas as pd

from cinefm.dicom.extract import SCHEMA_VERSION
from cinefm.phantom.releases import PHI_STRINGS

KEY = b"external-test-key-0123456789abcdef"
TABLES = ("files", "series", "studies", "labels", "flow")


def tables(out: Path) -> dict[str, pd.DataFrame]:
    return {t: pd.read_csv(out / f"{t}.csv", dtype={"source_id": str}, keep_default_na=False) for t in TABLES}


def h5_shapes(out: Path, relpath: str) -> dict[str, tuple]:
    """View -> shape of one written study, after checking ingestion's root attributes."""
    with h5py.File(out / "h5" / relpath, "r") as h5:
        assert h5.attrs["schema_version"] == SCHEMA_VERSION
        assert {"patient_id", "study_id", "source_digest", "cohort", "frame_size"} <= set(h5.attrs)
        return {v: h5[v].shape for v in h5.attrs["views"]}


def output_bytes(out: Path, skip: tuple[str, ...] = ()) -> bytes:
    """Every byte the adapter wrote (tables, HDF5 with its attributes), except ``skip`` names."""
    return b"\n".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name not in skip)


def assert_no_phi(out: Path, owner_ids: list[str]) -> None:
    """No planted PHI string anywhere; owner ids only in the 0600 files.csv (the cohort's id map)."""
    everything = output_bytes(out)
    for phi in PHI_STRINGS:
        assert phi.encode() not in everything, f"PHI {phi!r} leaked into {out}"
    rest = output_bytes(out, skip=("files.csv",))
    for oid in owner_ids:
        assert oid.encode() not in rest, f"owner id {oid!r} outside files.csv"
    assert stat.S_IMODE((out / "files.csv").stat().st_mode) == 0o600


def mtimes(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in (out / "h5").rglob("*.h5")}
