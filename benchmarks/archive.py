"""The DICOM archive a benchmark reads: ``--dicom DIR`` or a phantom cohort made on the spot."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def add_archive_args(ap: argparse.ArgumentParser, repeats: int) -> None:
    """--dicom, --patients, --jobs and --repeats, shared by the ingestion benchmarks."""
    ap.add_argument("--dicom", type=Path, help="DICOM export (default: generate a phantom cohort)")
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=repeats)


def archive_root(args: argparse.Namespace) -> tuple[Path, tempfile.TemporaryDirectory]:
    """(root, temporary folder holding it); keep the folder object alive while benchmarking."""
    tmp = tempfile.TemporaryDirectory()
    if args.dicom is not None:
        return args.dicom, tmp
    from cinefm.phantom import generate_cohort

    generate_cohort(tmp.name, patients=args.patients, seed=3)
    return Path(tmp.name) / "dicom", tmp
