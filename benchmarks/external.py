"""External-cohort adapters (UK Biobank, ACDC, Kaggle DSB): subjects/s against the bare read of the same files.

For each cohort a synthetic release in the owner's format (:mod:`cinefm.phantom.releases`, no
faults) is converted by its adapter into a fresh output folder (scan, checks, assembly with
ingestion's preprocessing, HDF5 writing, tables), then converted again into the same folder (the
resumable rerun: every study unchanged). The reference, timed in the same run on the same files,
is the least any converter must do to get the pixels:

- UK Biobank: extract every zip member (``zipfile``), and that plus ``pydicom.dcmread`` +
  ``pixel_array`` of every DICOM file;
- ACDC: ``nibabel.load`` + ``get_fdata`` of the 4-D image, the ED/ES frames and their masks;
- Kaggle: ``pydicom.dcmread`` + ``pixel_array`` of every DICOM file.

Files are read once before timing (page cache). One process; best of ``--repeats``.

    .venv/bin/python benchmarks/external.py [--units 4] [--size 96] [--slices 8] [--frames 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from cinefm.external.release import Preprocess, run_cohort
from cinefm.phantom.releases import GENERATORS

KEY = b"benchmark-key-0123456789abcdef"
UNITS = {"ukb": "participants", "acdc": "patients", "kaggle": "studies"}


def _dicom_pixels(paths: list[Path]) -> int:
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in paths:
            n += int(pydicom.dcmread(p).pixel_array.size)
    return n


def bare_ukb(root: Path, decode: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for z in sorted(root.glob("*.zip")):
            with zipfile.ZipFile(z) as zf:
                zf.extractall(Path(tmp) / z.stem)
        if decode:
            _dicom_pixels(sorted(Path(tmp).rglob("*.dcm")))


def bare_acdc(root: Path) -> None:
    for p in sorted(root.rglob("*.nii.gz")):
        np.asarray(nib.load(str(p)).get_fdata())


def bare_kaggle(root: Path) -> None:
    _dicom_pixels(sorted(root.rglob("*.dcm")))


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=4, help="subjects per cohort")
    ap.add_argument("--size", type=int, default=96, help="image matrix")
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--frame-size", type=int, default=64, help="stored frame size (config ingest.frame_size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cohorts", nargs="+", default=["ukb", "acdc", "kaggle"])
    args = ap.parse_args()
    pre = Preprocess(frame_size=args.frame_size, min_frames=4)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cohort in args.cohorts:
            root = Path(tmp) / f"{cohort}_release"
            t = time.perf_counter()
            release = GENERATORS[cohort](root, **{UNITS[cohort]: args.units}, seed=1, size=args.size,
                                         slices=args.slices, frames=args.frames, faults=False)
            gen_s = time.perf_counter() - t
            for p in root.rglob("*"):
                if p.is_file():
                    p.read_bytes()  # page cache
            extra = {"lvef": release["lvef"]} if cohort == "ukb" else {}
            out = Path(tmp) / f"{cohort}_out"

            def fresh(out=out, root=root, extra=extra, cohort=cohort):
                shutil.rmtree(out, ignore_errors=True)
                run_cohort(cohort, root, out, key=KEY, pre=pre, **extra)

            ours = best(fresh, args.repeats)
            rerun = best(lambda out=out, root=root, extra=extra, cohort=cohort:
                         run_cohort(cohort, root, out, key=KEY, pre=pre, **extra), args.repeats)
            refs = {"ukb": [("zip extraction", lambda root=root: bare_ukb(root, False)),
                            ("zip extraction + pydicom read", lambda root=root: bare_ukb(root, True))],
                    "acdc": [("nibabel load (4-D, ED/ES, masks)", lambda root=root: bare_acdc(root))],
                    "kaggle": [("pydicom read", lambda root=root: bare_kaggle(root))]}[cohort]
            n = args.units
            files = sum(1 for p in root.rglob("*") if p.is_file())
            rows.append((cohort, f"cinefm {cohort} (fresh output)", ours, n / ours, None))
            rows.append((cohort, f"cinefm {cohort} (rerun, all unchanged)", rerun, n / rerun, None))
            for name, fn in refs:
                sec = best(fn, args.repeats)
                rows.append((cohort, f"bare {name}", sec, n / sec, ours / sec))
            print(f"# {cohort}: {n} subjects, {files} files, release generated in {gen_s:.1f} s", flush=True)
    print(f"\n{args.units} subjects per cohort, {args.size}x{args.size} matrix, {args.slices} SAX slices, "
          f"{args.frames} frames, stored {args.frame_size}x{args.frame_size}; best of {args.repeats}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n")
    print("| cohort | what | seconds | subjects/s | ours / this |")
    print("|---|---|---:|---:|---:|")
    for cohort, what, sec, rate, ratio in rows:
        print(f"| {cohort} | {what} | {sec:.3f} | {rate:.2f} | {'' if ratio is None else f'{ratio:.1f}'} |")


if __name__ == "__main__":
    main()
