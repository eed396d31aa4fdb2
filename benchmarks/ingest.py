"""Full ingestion throughput (files/s, MB/s): ``cinefm ingest`` against dcm2niix on the same files.

Prints one table (wall time and CPU time, with throughput ratios ours / dcm2niix; on a
shared machine the CPU figures are the stable ones): our scan + merge + extract + flow
(:func:`cinefm.dicom.ingest.run_ingest`, ``--jobs`` worker processes) and dcm2niix converting the same export to NIfTI with the
same number of cores (dcm2niix is single-threaded: one process per top-level folder of
the export, ``--jobs`` at a time, ``-z n -b n``), measured in the same run, and the
ratio of throughputs. Files are read once before timing (page cache).

On a shared machine one run says little: ``--rounds N`` repeats the pair (ours, then
dcm2niix, each best of ``--repeats``) N times and prints every round with the load average
before it, then the median ratios. ``--profile`` adds where our CPU time goes per file,
phase by phase, in one process (no workers): list; scan split into open + read, SHA-256,
header parse (:mod:`cinefm.dicom.rawheader`) and the checks + record; merge; extract; flow
(matplotlib already imported). ``--reader pydicom`` times the scan with pydicom as the header
reader (the pre-issue-27 path) for comparison.

    .venv/bin/python benchmarks/ingest.py [--dicom DIR | --patients 6] [--jobs 2] [--repeats 2]
        [--rounds 3] [--profile] [--reader fast|pydicom]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from archive import add_archive_args, archive_root

from cinefm.config import DEFAULT_CONFIG, REPO_ROOT, load_config
from cinefm.dicom.extract import extract_shard
from cinefm.dicom.flow import write_flow
from cinefm.dicom.header import _classify
from cinefm.dicom.ingest import ingest_paths, run_ingest
from cinefm.dicom.rawheader import parse
from cinefm.dicom.scan import list_files, scan_shard, write_filelist
from cinefm.dicom.series import merge_scans
from cinefm.dicom.views import load_view_rules
from cinefm.privacy import PHANTOM_KEY


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


def _self_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def profile(root: Path, cfg: dict) -> list[tuple[str, float]]:
    """(phase, CPU seconds) of one in-process ingestion (1 job) plus the scan's split by step."""
    import matplotlib.pyplot  # noqa: F401  (imported once per process; not ingestion's cost per file)

    rel = list(list_files(root)["relpath"])
    out: list[tuple[str, float]] = []
    c = _self_cpu()
    blobs = []
    for r in rel:
        with open(root / r, "rb") as fp:
            blobs.append(fp.read())
    out.append(("scan: open + read", _self_cpu() - c))
    c = _self_cpu()
    for b in blobs:
        hashlib.sha256(b).hexdigest()
    out.append(("scan: SHA-256", _self_cpu() - c))
    c = _self_cpu()
    headers = [parse(b) for b in blobs]
    out.append(("scan: header parse (rawheader)", _self_cpu() - c))
    c = _self_cpu()
    for r, b, h in zip(rel, blobs, headers, strict=True):
        _classify(io.BytesIO(b), r, len(b), "", PHANTOM_KEY, [], h)
    out.append(("scan: checks + record (pydicom for fallbacks)", _self_cpu() - c))
    del blobs, headers
    with tempfile.TemporaryDirectory() as tmp:
        paths = ingest_paths(tmp, 1)
        c = _self_cpu()
        write_filelist(root, paths["filelist"])
        out.append(("list", _self_cpu() - c))
        c = _self_cpu()
        scan_shard(paths["filelist"], root, paths["scan"][0], shard=0, shards=1, phantom=True, jobs=1)
        out.append(("scan (whole, with tables)", _self_cpu() - c))
        c = _self_cpu()
        merge_scans(paths["scan"][:1], paths["files"], views=cfg["views"], min_frames=cfg.get("min_frames", 10),
                    quarantine_csv=paths["quarantine"], jobs=1)
        out.append(("merge (series rules)", _self_cpu() - c))
        c = _self_cpu()
        extract_shard(paths["files"], root, paths["h5_root"], paths["manifests"][0], shard=0, shards=1,
                      frame_size=cfg["frame_size"], percentiles=tuple(cfg.get("intensity_percentiles", (0.5, 99.5))),
                      tol=load_view_rules(cfg["views"]).geometry.slice_tolerance_mm,
                      compression=cfg.get("compression", "gzip"))
        out.append(("extract (decode, assemble, HDF5)", _self_cpu() - c))
        c = _self_cpu()
        write_flow(paths["files"], paths["manifests"], paths["flow_csv"], paths["flow_png"], paths["studies"])
        out.append(("flow (csv + png)", _self_cpu() - c))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_args(ap, repeats=2)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the (ours, dcm2niix) pair; print each and the median")
    ap.add_argument("--profile", action="store_true", help="also print our CPU time per file by phase")
    ap.add_argument("--reader", choices=("fast", "pydicom"), default="fast", help="header reader of the scan")
    args = ap.parse_args()
    root, tmp = archive_root(args)
    files = list_files(root)
    mb = files["size"].sum() / 1e6
    for r in files["relpath"]:
        (root / r).read_bytes()
    cfg = dict(load_config(DEFAULT_CONFIG)["ingest"])
    cfg["views"] = str(REPO_ROOT / cfg["views"])
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    n = len(files)
    print(f"{n} files, {mb:.1f} MB, {args.jobs} core(s), best of {args.repeats}, frame_size {cfg['frame_size']}, "
          f"reader {args.reader}; {platform.machine()}, {os.cpu_count()} cores")
    print(f"{'round':>5s} {'load':>5s} {'implementation':42s} {'wall s':>7s} {'files/s':>8s} {'MB/s':>6s} {'ratio':>6s} "
          f"{'CPU s':>6s} {'files/CPU-s':>11s} {'ratio':>6s}")
    ratios = []
    for k in range(args.rounds):
        load = os.getloadavg()[0]
        ours = _best(lambda out: run_ingest(root, out, ingest_cfg=cfg, jobs=args.jobs, phantom=True,
                                                   reader=args.reader), args.repeats)
        ref = _best(lambda out: _dcm2niix(folders, out, args.jobs), args.repeats)
        ratios.append((ref[0] / ours[0], ref[1] / ours[1]))
        for name, (wall, cpu) in (("cinefm ingest (scan+merge+extract+flow)", ours),
                                  ("dcm2niix -z n -b n (reference)", ref)):
            print(f"{k + 1:5d} {load:5.1f} {name:42s} {wall:7.2f} {n / wall:8.0f} {mb / wall:6.1f} {ref[0] / wall:6.2f} "
                  f"{cpu:6.2f} {n / cpu:11.0f} {ref[1] / cpu:6.2f}")
    print(f"median ratio ours / dcm2niix over {args.rounds} round(s): wall {statistics.median(r[0] for r in ratios):.2f}, "
          f"CPU {statistics.median(r[1] for r in ratios):.2f}; load average now {os.getloadavg()[0]:.1f}")
    if args.profile:
        print(f"\nour CPU time per file by phase (1 process, {n} files):")
        phases = profile(root, cfg)
        for name, sec in phases:
            print(f"  {name:48s} {sec:6.2f} s {sec / n * 1e6:8.1f} us/file")


if __name__ == "__main__":
    main()
