"""Where the demo's time goes: per-job benchmark tables, and the clip size's cost in a training step.

``--before DIR --after DIR``: two ``logs/benchmarks`` folders written by Snakemake's
``benchmark:`` directive (one TSV per job: ``s`` wall seconds, ``cpu_time`` CPU seconds).
Prints the jobs of either run, largest first, with both runs' wall and CPU seconds and the
CPU ratio before / after, then the totals. CPU seconds are the figure to compare on a
shared machine: wall seconds grow with whatever else runs, CPU seconds much less.

``--sizes 64 48 32``: one fine-tuning training step (forward, loss, backward, AdamW) of the
demo's video encoder (``config/config.yaml`` ``models.video``; MViT-small) on a demo-shaped
batch (``--studies`` studies of ``--views`` clips of 8 frames), at each clip size, same run;
the ratio is against the first size (the reference). Needs no results folder.

    .venv/bin/python benchmarks/demo.py --before old/logs/benchmarks --after logs/benchmarks
    .venv/bin/python benchmarks/demo.py --sizes 64 48 32 --threads 1
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import pandas as pd


def read_benchmarks(root: str | Path) -> pd.DataFrame:
    """``job, s, cpu_time`` of every ``<rule>/<name>.tsv`` (or ``<rule>.tsv``) under ``root``."""
    root = Path(root)
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if not {"s", "cpu_time"} <= set(table.columns) or table.empty:
            raise ValueError(f"{path}: not a Snakemake benchmark file (columns s and cpu_time)")
        rows.append({"job": str(path.relative_to(root).with_suffix("")), "s": float(table["s"].iloc[-1]),
                     "cpu_time": float(table["cpu_time"].iloc[-1])})
    if not rows:
        raise ValueError(f"{root}: no benchmark files (*.tsv)")
    return pd.DataFrame(rows)


def compare(before: pd.DataFrame, after: pd.DataFrame, top: int) -> str:
    """Markdown table of the ``top`` costliest jobs (by the larger CPU time of the two runs) and the totals."""
    both = before.merge(after, on="job", how="outer", suffixes=("_before", "_after"))
    both["key"] = both[["cpu_time_before", "cpu_time_after"]].max(axis=1)
    both = both.sort_values("key", ascending=False)
    lines = ["| job | wall s before | CPU s before | wall s after | CPU s after | CPU before / after |",
             "|---|---:|---:|---:|---:|---:|"]

    def cell(x: float) -> str:
        return "—" if pd.isna(x) else f"{x:.0f}"

    for r in both.head(top).itertuples():
        ratio = (f"{r.cpu_time_before / r.cpu_time_after:.1f}"
                 if not (pd.isna(r.cpu_time_before) or pd.isna(r.cpu_time_after) or r.cpu_time_after == 0) else "—")
        lines.append(f"| {r.job} | {cell(r.s_before)} | {cell(r.cpu_time_before)} | {cell(r.s_after)} | "
                     f"{cell(r.cpu_time_after)} | {ratio} |")
    rest = both.iloc[top:]
    if len(rest):
        lines.append(f"| {len(rest)} other jobs | {cell(rest['s_before'].sum())} | {cell(rest['cpu_time_before'].sum())}"
                     f" | {cell(rest['s_after'].sum())} | {cell(rest['cpu_time_after'].sum())} | |")
    tb, ta = both["cpu_time_before"].sum(), both["cpu_time_after"].sum()
    lines.append(f"| **all {len(before)} / {len(after)} jobs** | {cell(both['s_before'].sum())} | {cell(tb)} | "
                 f"{cell(both['s_after'].sum())} | {cell(ta)} | {tb / ta:.1f} |")
    return "\n".join(lines)


def step_seconds(size: int, studies: int, views: int, steps: int, warmup: int) -> float:
    """Mean seconds of one training step of the demo encoder + a linear head at clip ``size``."""
    import torch
    import yaml

    from cinefm.models.video import build_video_encoder

    video = yaml.safe_load(Path("config/config.yaml").read_text())["models"]["video"]
    options = {k: v for k, v in video.items() if k not in ("name", "weights", "size")}  # random init
    encoder = build_video_encoder(video["name"], **options, size=size)
    head = torch.nn.LazyLinear(6)
    x = torch.randn(studies * views, 3, video["frames"], size, size)
    y = torch.rand(studies, 6).round()
    head(encoder(x[:1]))
    opt = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-4)

    def step() -> None:
        logits = head(encoder(x).reshape(studies, views, -1).mean(dim=1))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="logs/benchmarks of the reference run")
    ap.add_argument("--after", help="logs/benchmarks of the run to compare")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--sizes", type=int, nargs="+", help="clip sizes to time (the first is the reference)")
    ap.add_argument("--studies", type=int, default=2, help="studies per step (finetune.batch_size)")
    ap.add_argument("--views", type=int, default=12, help="clips per study (3 LAX + ~9 SAX in the demo)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not (args.sizes or (args.before and args.after)):
        ap.error("give --before and --after, or --sizes")
    if args.before and args.after:
        print(compare(read_benchmarks(args.before), read_benchmarks(args.after), args.top))
    if args.sizes:
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        seconds = {size: step_seconds(size, args.studies, args.views, args.steps, args.warmup) for size in args.sizes}
        ref = args.sizes[0]
        print(f"\none training step, {args.studies} studies x {args.views} clips, {args.threads} thread(s), "
              f"{platform.processor() or platform.machine()}")
        print("| clip size | s / step | reference / this |\n|---:|---:|---:|")
        for size, s in seconds.items():
            print(f"| {size} | {s:.3f} | {seconds[ref] / s:.2f} |")


if __name__ == "__main__":
    main()
