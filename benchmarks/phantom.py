"""Phantom cohort speed: patients/s on N cores against the raw cost of writing the same files.

Ours: ``cinefm.phantom.generate_cohort`` with the options of a config file (default
config/config.yaml) — render every frame, write DICOM (classic, enhanced, RLE), faults,
reports. Reference, measured in the same run on the same cores: ``pydicom.dcmwrite`` of
the same number of files with the same matrices and frame counts, zero pixels and a
minimal header, no rendering. The ratio says how many times the bare write cost the
whole generator takes.

    .venv/bin/python benchmarks/phantom.py [--patients 24] [--jobs 2] [--config config/config.yaml]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cinefm.config import REPO_ROOT, load_config
from cinefm.phantom import generate_cohort


def _shapes(dicom: Path) -> list[tuple[int, int, int]]:
    """(rows, cols, frames) of every readable DICOM file of the cohort."""
    out = []
    for f in sorted(dicom.rglob("*")):
        if not f.is_file():
            continue
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            out.append((int(ds.Rows), int(ds.Columns), int(getattr(ds, "NumberOfFrames", 1) or 1)))
        except Exception:  # noqa: BLE001 - junk and truncated files are not part of the reference
            continue
    return out


def _write_plain(args: tuple[Path, list[tuple[int, int, int]]]) -> None:
    folder, shapes = args
    for i, (rows, cols, frames) in enumerate(shapes):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = uid = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, uid
        ds.Modality = "MR"
        ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.PixelData = np.zeros((frames, rows, cols), np.uint16).tobytes()
        pydicom.dcmwrite(folder / f"{i}.dcm", ds, enforce_file_format=True)


def reference_seconds(shapes: list[tuple[int, int, int]], jobs: int) -> float:
    """Seconds to dcmwrite files of these shapes with ``jobs`` processes."""
    with tempfile.TemporaryDirectory() as d:
        parts = [(Path(d), shapes[k::jobs]) for k in range(jobs)]
        t0 = time.perf_counter()
        with mp.get_context("fork").Pool(jobs) as pool:
            pool.map(_write_plain, parts)
        return time.perf_counter() - t0


def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO_ROOT / "config" / "config.yaml"))
    ap.add_argument("--patients", type=int, default=None, help="default: the config's phantom.patients")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    opts = dict(load_config(args.config)["phantom"])
    patients = args.patients or opts.pop("patients")
    opts.pop("patients", None)
    seed = args.seed if args.seed is not None else opts.pop("seed")
    opts.pop("seed", None)
    with tempfile.TemporaryDirectory() as d:
        t0, c0 = time.perf_counter(), _cpu()
        generate_cohort(d, patients=patients, seed=seed, jobs=args.jobs, **opts)
        ours, ours_cpu = time.perf_counter() - t0, _cpu() - c0
        shapes = _shapes(Path(d) / "dicom")
        studies = sum(1 for _ in open(Path(d) / "truth.csv")) - 1
    c0 = _cpu()
    ref = reference_seconds(shapes, args.jobs)
    ref_cpu = _cpu() - c0
    frames = sum(s[2] for s in shapes)
    print(f"phantom benchmark: {patients} patients, {studies} studies, {len(shapes)} DICOM files, "
          f"{frames} frames, {args.jobs} processes")
    print(f"{'what':<44}{'wall s':>8}{'CPU s':>8}{'patients/s':>12}{'ratio':>8}")
    print(f"{'generate_cohort (render + write + tables)':<44}{ours:>8.1f}{ours_cpu:>8.1f}"
          f"{patients / ours:>12.2f}{ours / ref:>8.2f}")
    print(f"{'reference: pydicom.dcmwrite of the same files':<44}{ref:>8.1f}{ref_cpu:>8.1f}"
          f"{patients / ref:>12.2f}{1.0:>8.2f}")
    print("ratio = wall seconds / reference wall seconds (CPU s: user+system of all processes)")


if __name__ == "__main__":
    main()
