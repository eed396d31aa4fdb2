"""The ``cinefm`` console script: one sub-command per pipeline stage.

Each stage package exposes ``register(subparsers)`` in its ``cli`` module; the
sub-command's ``func(args) -> int`` does the work. Heavy imports (torch, pydicom)
happen inside ``func`` so ``cinefm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cinefm import __version__

# Stage modules that contribute sub-commands, in the order of the pipeline.
COMMAND_MODULES = [
    "cinefm.phantom.cli",
    "cinefm.dicom.cli",
    "cinefm.external.cli",
    "cinefm.text.cli",
    "cinefm.labels.cli",
    "cinefm.train.cli",
    "cinefm.inference.cli",
    "cinefm.embed.cli",
    "cinefm.viz.cli",
    "cinefm.stats.cli",
    "cinefm.report.cli",
    "cinefm.checks_cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cinefm",
        description="Vision-language foundation models for cine cardiac MRI: "
        "phantom cohort, ingestion, reports, labels, training and statistics.",
    )
    parser.add_argument("--version", action="version", version=f"cinefm {__version__}")
    parser.add_argument("--log", default=None, help="also write the log to this file")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cinefm.log import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.log)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
