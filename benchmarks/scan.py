"""Header scan throughput (files/s, MB/s): cinefm's scan against plain pydicom reads.

Prints one table: our scan (header-only read + PixelData length check + SHA-256 of
every byte, :func:`cinefm.dicom.scan.scan_files`) and two references measured in the
same run on the same files with the same number of worker processes:

- ``pydicom.dcmread`` of every file with pixels (full read + ``pixel_array`` decode),
  what a scan that does not stop before the pixel data pays;
- ``pydicom.dcmread(stop_before_pixels=True)`` alone, the floor of any pydicom header scan;
- our scan with pydicom as its header reader (``reader="pydicom"``, the path before issue 27).

Files are read once before timing so every run reads from the page cache.

    .venv/bin/python benchmarks/scan.py [--dicom DIR | --patients 6] [--jobs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pydicom
from archive import add_archive_args, archive_root

from cinefm.dicom.scan import list_files, scan_files
from cinefm.privacy import PHANTOM_KEY


def _full_read(path: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
            return int(ds.pixel_array.size) if "PixelData" in ds else 0
        except Exception:
            return -1


def _header_read(path: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return len(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception:
            return -1


def _pool_map(fn, paths: list[str], jobs: int) -> None:
    if jobs <= 1:
        for p in paths:
            fn(p)
        return
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(fn, paths, chunksize=max(8, len(paths) // (jobs * 8))))


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_args(ap, repeats=3)
    args = ap.parse_args()
    root, tmp = archive_root(args)
    files = list_files(root)
    rel = list(files["relpath"])
    paths = [str(Path(root) / r) for r in rel]
    mb = files["size"].sum() / 1e6
    for p in paths:  # warm the page cache
        Path(p).read_bytes()
    rows = [
        ("cinefm scan_files (header + checks + sha256)", _best(lambda: scan_files(root, rel, PHANTOM_KEY, args.jobs), args.repeats)),
        ("pydicom.dcmread + pixel_array (reference)", _best(lambda: _pool_map(_full_read, paths, args.jobs), args.repeats)),
        ("pydicom.dcmread(stop_before_pixels) (floor)", _best(lambda: _pool_map(_header_read, paths, args.jobs), args.repeats)),
        ("cinefm scan_files, reader=pydicom", _best(lambda: scan_files(root, rel, PHANTOM_KEY, args.jobs, reader="pydicom"),
                                                    args.repeats)),
    ]
    ours = rows[0][1]
    print(f"{len(paths)} files, {mb:.1f} MB, {args.jobs} worker process(es), best of {args.repeats}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'implementation':48s} {'s':>7s} {'files/s':>9s} {'MB/s':>7s} {'ours/ref':>9s}")
    for name, t in rows:
        print(f"{name:48s} {t:7.2f} {len(paths) / t:9.0f} {mb / t:7.1f} {t / ours:9.2f}")


if __name__ == "__main__":
    main()
