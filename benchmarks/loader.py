"""Pre-training loader throughput: clips/s from HDF5 files vs. from memory, for 0..N workers.

Ours: :class:`cinefm.data.datasets.ClipDataset` reading study HDF5 files (the ingestion
layout: one file per study, datasets ``(slices, frames, H, W)`` uint8, gzip, one chunk per
slice) through the full clip pipeline (temporal sampling, resize, AugMix, normalisation,
k sentences) and the pre-training DataLoader (seeded sampler, collate, worker seeding).

References, measured in the same run and interleaved with ours:
  memory  the same dataset and pipeline serving the same arrays from RAM
          (:class:`cinefm.data.h5.MemoryReader`): ratio h5/memory is the cost of HDF5 I/O
          (target >= 0.95 at the worker count that feeds the GPU);
  tensor  a dataset returning one pre-made clip and token row (no decoding, no transforms):
          the ceiling of the loader machinery itself.

Usage:
  .venv/bin/python benchmarks/loader.py                       # config/config.yaml sizes
  .venv/bin/python benchmarks/loader.py --config config/paper.yaml --workers 0,1,2
  .venv/bin/python benchmarks/loader.py --studies-csv results/ingest/studies.csv \
      --reports results/text/reports.json
  ... --gpu-clips-per-s 90   # clips/s one GPU consumes (from the pre-training benchmark)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cinefm.config import load_config
from cinefm.data.augment import TemporalAugMix
from cinefm.data.collate import ClipCollate
from cinefm.data.datamodules import read_manifest
from cinefm.data.datasets import ClipDataset
from cinefm.data.h5 import H5Reader, MemoryReader, scan_series
from cinefm.data.seeding import SeededSampler, seed_worker
from cinefm.data.text import ReportSource, SpecialTokens
from cinefm.data.transforms import ClipSpec, ClipTransform, clip_kwargs

SPECIAL = SpecialTokens(cls=2, sep=3, pad=0)


def synthetic_cohort(root: Path, studies: int, frames: int, size: int, sax: int, seed: int = 0,
                     chunking: str = "slice", compression: str = "gzip"):
    """Write ``studies`` HDF5 files like ingestion does; return (manifest, reports).

    ``chunking``: ``slice`` (ingestion's layout, one chunk per slice) or ``frame``;
    ``compression``: ``gzip`` (level 4, as ingestion), ``lzf`` or ``none``.
    """
    import h5py
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows, reports = [], {}
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = np.linspace(0, 2 * np.pi, frames, endpoint=False)[:, None, None]
    # a beating bright disc on smooth background + noise: compresses like cine MR, not like noise
    radius = 0.18 + 0.05 * np.cos(phase)
    disc = ((yy - 0.5) ** 2 + (xx - 0.5) ** 2 < radius ** 2) * 120.0
    smooth = 50 + 30 * np.sin(3 * xx + 2 * yy)
    base = np.clip(disc + smooth + rng.normal(0, 6, (frames, size, size)), 0, 255).astype(np.uint8)
    for i in range(studies):
        pid, sid = f"P{i:04d}", f"S{i:04d}"
        path = root / "h5" / pid / f"{sid}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as fh:
            fh.attrs.update(patient_id=pid, study_id=sid, schema_version="1")
            for view, n in (("4CH", 1), ("3CH", 1), ("2CH", 1), ("SAX", sax)):
                arr = np.stack([np.roll(base, shift=(s * 3 + i) % size, axis=-1) for s in range(n)])
                chunks = (1, *arr.shape[1:]) if chunking == "slice" else (1, 1, *arr.shape[2:])
                comp = {"gzip": {"compression": "gzip", "compression_opts": 4},
                        "lzf": {"compression": "lzf"}, "none": {}}[compression]
                fh.create_dataset(view, data=arr, chunks=chunks, **comp)
        rows.append((pid, sid, str(path)))
        reports[sid] = {"input_ids": [[SPECIAL.cls, *rng.integers(5, 2000, 18).tolist(), SPECIAL.sep]
                                      for _ in range(8)]}
    return pd.DataFrame(rows, columns=["patient_id", "study_id", "h5"]), reports


class TensorClips(Dataset):
    """One pre-made clip and token row, returned ``n`` times (loader-machinery ceiling)."""

    def __init__(self, n: int, spec: ClipSpec, tokens: int) -> None:
        self.n = n
        self.video = torch.randn(spec.channels, spec.frames, spec.size, spec.size)
        self.ids = torch.arange(tokens, dtype=torch.long)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        return {"video": self.video.clone(), "input_ids": self.ids, "study_id": "S", "view": "4CH",
                "slice": 0}


class TimedReader:
    """Wrap a series reader and add up the CPU time spent in ``read``."""

    def __init__(self, reader) -> None:
        self.reader, self.seconds = reader, 0.0

    def read(self, *args):
        start = time.thread_time()
        out = self.reader.read(*args)
        self.seconds += time.thread_time() - start
        return out


def item_ms(datasets: dict, n: int, seed: int) -> dict[str, tuple[float, float]]:
    """CPU ms per item, ``(total, of which reading)``, with one torch thread (as in a worker).

    CPU time (``time.thread_time``), not wall time, so other processes on a shared machine
    barely move it; the sources fetch the same items with the same seeds, interleaved item
    by item in alternating order (the second fetch reuses memory the first one freed).
    This per-clip cost bounds a loader whose workers saturate their cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    first = next(iter(datasets.values()))
    order = np.random.default_rng(seed).permutation(len(first))[:n]
    total = dict.fromkeys(datasets, 0.0)
    names = list(datasets)
    for ds in datasets.values():
        ds.reader.seconds = 0.0
    for k, i in enumerate(order):
        for name in names if k % 2 == 0 else names[::-1]:
            start = time.thread_time()
            datasets[name][(int(i), seed + int(i))]
            total[name] += time.thread_time() - start
    torch.set_num_threads(threads)
    return {name: (1e3 * total[name] / len(order), 1e3 * datasets[name].reader.seconds / len(order))
            for name in names}


def clips_per_s(dataset, batch_size: int, workers: int, clips: int, seed: int) -> float:
    """Clips/s over ``clips`` clips, timed after the start-up and the prefetched backlog.

    Workers fill ``prefetch_factor`` (2) batches each before the first one is consumed; those
    are drained first so that only steady-state production is timed.
    """
    needed, sampler, keys = (2 + 2 * workers) * batch_size + clips, SeededSampler(len(dataset), seed), []
    while len(keys) < needed:  # as many epochs of the seeded sampler as the timing needs
        keys.extend(sampler)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=keys,
                        num_workers=workers, collate_fn=ClipCollate(SPECIAL.pad),
                        worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(seed),
                        persistent_workers=False, drop_last=True)
    n, it = 0, iter(loader)
    for _ in range(1 + 2 * workers):
        next(it)
    start = time.perf_counter()
    for batch in it:
        n += batch["video"].shape[0]
        if n >= clips:
            break
    elapsed = time.perf_counter() - start
    del it, loader
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="config/config.yaml", help="T, size, k, augmix, batch size from here")
    ap.add_argument("--studies-csv", default=None, help="use real ingestion output instead of synthetic files")
    ap.add_argument("--reports", default=None, help="reports.json matching --studies-csv")
    ap.add_argument("--studies", type=int, default=24, help="synthetic studies")
    ap.add_argument("--stored-frames", type=int, default=30, help="synthetic frames per series")
    ap.add_argument("--stored-size", type=int, default=None, help="synthetic frame size (default ingest.frame_size)")
    ap.add_argument("--chunking", choices=["slice", "frame"], default="slice",
                    help="synthetic files: one chunk per slice (as ingestion) or per frame")
    ap.add_argument("--compression", choices=["gzip", "lzf", "none"], default="gzip",
                    help="synthetic files: gzip level 4 (as ingestion), lzf or none")
    ap.add_argument("--workers", default=None, help="comma list (default 1..cpu count; 0 = main process; none = skip the loader table)")
    ap.add_argument("--clips", type=int, default=None, help="clips timed per loader measurement (default 16 batches)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median is reported")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--gpu-clips-per-s", type=float, default=None,
                    help="clips/s one GPU consumes in pre-training (benchmarks/pretrain.py)")
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    data, pre = cfg["data"], cfg["pretrain"]
    spec = ClipSpec(**clip_kwargs(cfg))
    batch = pre["batch_size"]
    clips = args.clips or 16 * batch
    if args.workers == "none":  # in-process figures only
        workers = []
    else:
        workers = ([int(w) for w in args.workers.split(",")] if args.workers
                   else list(range(1, (os.cpu_count() or 1) + 1)))
    augment = None if args.no_augment else TemporalAugMix(**{k: data["augmix"][k] for k in
                                                             ("severity", "width", "depth", "alpha", "ops")})
    with tempfile.TemporaryDirectory() as tmp:
        if args.studies_csv:
            if not args.reports:
                ap.error("--studies-csv needs --reports (the indexed reports.json of the same cohort)")
            manifest, reports = read_manifest(args.studies_csv), ReportSource(path=args.reports)
        else:
            manifest, plain = synthetic_cohort(Path(tmp), args.studies, args.stored_frames,
                                               args.stored_size or cfg["ingest"]["frame_size"], sax=8,
                                               chunking=args.chunking, compression=args.compression)
            reports = ReportSource(reports=plain)
        series = scan_series(manifest)
        memory = MemoryReader.from_h5(list(manifest["h5"]))

        def dataset(reader):
            return ClipDataset(series, reports, ClipTransform(spec, True, augment),
                               sentences=pre["sentences_per_step"], special=SPECIAL,
                               text_max_tokens=data["text_max_tokens"], seed=data["seed"], reader=reader)

        sources = {"h5": dataset(H5Reader(data["max_open_files"])), "memory": dataset(memory),
                   "tensor": TensorClips(len(series), spec, tokens=min(100, data["text_max_tokens"]))}
        print(f"# clips {spec.channels}x{spec.frames}x{spec.size}x{spec.size} from "
              f"{args.stored_frames}x{args.stored_size or cfg['ingest']['frame_size']}^2 series, batch {batch}, "
              f"augment {'on' if augment else 'off'}, {len(series)} series, "
              f"{'given files' if args.studies_csv else f'{args.chunking} chunks, {args.compression}'}, "
              f"{os.cpu_count()} CPUs, "
              f"torch {torch.__version__}")
        timed = {"h5": dataset(TimedReader(H5Reader(data["max_open_files"]))),
                 "memory": dataset(TimedReader(memory))}
        ms = item_ms(timed, min(len(series), 32 * args.repeats), data["seed"])
        (h5_all, h5_read), (mem_all, mem_read) = ms["h5"], ms["memory"]
        rest = (h5_all - h5_read + mem_all - mem_read) / 2  # identical work; pooled
        print(f"# CPU ms per clip (1 thread): read h5 {h5_read:.2f}, read memory {mem_read:.2f}, "
              f"rest of the pipeline {rest:.2f}; clips/s ratio h5/memory {mem_all / h5_all:.3f} "
              f"measured, {(rest + mem_read) / (rest + h5_read):.3f} from the read times")
        header = f"{'workers':>7} {'h5 clips/s':>11} {'memory':>9} {'h5/memory':>10} {'tensor':>9} {'h5/tensor':>10}"
        if args.gpu_clips_per_s:
            header += f" {'feeds GPU':>9}"
        print(header)
        for w in workers:
            runs = {k: [] for k in sources}
            for _ in range(args.repeats):
                for name, ds in sources.items():
                    runs[name].append(clips_per_s(ds, batch, w, clips, data["seed"]))
            med = {k: statistics.median(v) for k, v in runs.items()}
            line = (f"{w:>7} {med['h5']:>11.1f} {med['memory']:>9.1f} {med['h5'] / med['memory']:>10.3f} "
                    f"{med['tensor']:>9.1f} {med['h5'] / med['tensor']:>10.3f}")
            if args.gpu_clips_per_s:
                line += f" {'yes' if med['h5'] >= args.gpu_clips_per_s else 'no':>9}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
