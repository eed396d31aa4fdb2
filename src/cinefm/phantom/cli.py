"""``cinefm phantom``: write a synthetic cine CMR cohort (same function as the ``phantom`` rule)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``phantom`` sub-command."""
    p = subparsers.add_parser(
        "phantom",
        help="generate a synthetic multi-vendor cine CMR cohort (DICOM + reports + truth)",
        description="Write OUT/dicom, reports.csv, human_labels.csv, truth.csv and faults.csv. "
        "The same seed gives the same bytes, whatever --jobs.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--patients", type=int, required=True, help="number of patients")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--no-faults", action="store_true", help="write a clean export without injected faults")
    p.add_argument("--config", default=None,
                   help="take the other phantom options from this config file's phantom: section")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the cohort with a progress bar; print the output paths."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cinefm.phantom import generate_cohort

    opts: dict = {}
    if args.config:
        from cinefm.config import load_config

        opts = dict(load_config(args.config).get("phantom", {}))
        for key in ("patients", "seed"):
            opts.pop(key, None)
    if args.no_faults:
        opts["faults"] = False
    with Progress(TextColumn("phantom"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("patients", total=args.patients)
        paths = generate_cohort(args.out, patients=args.patients, seed=args.seed, jobs=args.jobs,
                                progress=lambda n: bar.advance(task, n), **opts)
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0
