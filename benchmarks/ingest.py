"""Full ingestion throughput (files/s, MB/s): ``cinefm ingest`` against dcm2niix on the same files.

Prints one table (wall time and CPU time, with throughput ratios ours / dcm2niix; on a
shared machine the CPU figures are the stable ones): our scan + merge + extract + flow
(:func:`cinefm.dicom.ingest.run_ingest`, ``--jobs`` worker processes) and dcm2niix converting the same export to NIfTI with the
same number of cores (dcm2niix is single-threaded: one process per top-level folder of
the export, ``--jobs`` at a time, ``-z n -b n``), measured in the same run, and the
ratio of throughputs. Files are read once before timing (page cache).

    .venv/bin/python benchmarks/ingest.py [--dicom DIR | --patients 6] [--jobs 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from archive import add_archive_args, archive_root

from cinefm.config import DEFAULT_CONFIG, REPO_ROOT, load_config
from cinefm.dicom.ingest import run_ingest
from cinefm.dicom.scan import list_files


def _dcm2niix(folders: list[Path], out: Path, jobs: int) -> None:
    exe = shutil.which("dcm2niix") or str(Path(os.sys.executable).with_name("dcm2niix"))

    def one(i_folder: tuple[int, Path]) -> None:
        i, folder = i_folder
        dst = out / f"part{i}"
        dst.mkdir(parents=True)
        subprocess.run([exe, "-z", "n", "-b", "n", "-v", "0", "-o", str(dst), str(folder)],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, enumerate(folders)))


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _best(fn, repeats: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run, this process and its children)."""
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            t0, c0 = time.perf_counter(), _cpu()
            fn(Path(out))
            runs.append((time.perf_counter() - t0, _cpu() - c0))
    return min(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_args(ap, repeats=2)
    args = ap.parse_args()
    root, tmp = archive_root(args)
    files = list_files(root)
    mb = files["size"].sum() / 1e6
    for r in files["relpath"]:
        (root / r).read_bytes()
    cfg = dict(load_config(DEFAULT_CONFIG)["ingest"])
    cfg["views"] = str(REPO_ROOT / cfg["views"])
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    ours = _best(lambda out: run_ingest(root, out, ingest_cfg=cfg, jobs=args.jobs, phantom=True), args.repeats)
    ref = _best(lambda out: _dcm2niix(folders, out, args.jobs), args.repeats)
    n = len(files)
    print(f"{n} files, {mb:.1f} MB, {args.jobs} core(s), best of {args.repeats}, frame_size {cfg['frame_size']}; "
          f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'implementation':42s} {'wall s':>7s} {'files/s':>8s} {'MB/s':>6s} {'ratio':>6s} "
          f"{'CPU s':>6s} {'files/CPU-s':>11s} {'ratio':>6s}")
    for name, (wall, cpu) in (("cinefm ingest (scan+merge+extract+flow)", ours), ("dcm2niix -z n -b n (reference)", ref)):
        print(f"{name:42s} {wall:7.2f} {n / wall:8.0f} {mb / wall:6.1f} {ref[0] / wall:6.2f} "
              f"{cpu:6.2f} {n / cpu:11.0f} {ref[1] / cpu:6.2f}")

if __name__ == "__main__":
    main()
