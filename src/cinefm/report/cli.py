"""``cinefm report``: a results folder -> one self-contained static HTML page."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``report`` sub-command."""
    p = subparsers.add_parser(
        "report",
        help="build the static HTML report (flow, labels, UMAP, ROC, DeLong, Bland–Altman) of a results folder",
        description="Renders every section whose inputs exist under RESULTS (figures embedded as base64, "
        "no network access needed to view it) and names the missing inputs of the others.",
    )
    p.add_argument("--results", required=True, help="results folder of a run (config.results)")
    p.add_argument("--out", required=True, help="HTML file to write (e.g. results/report/index.html)")
    p.add_argument("--config", default=None, help="config YAML (default config/config.yaml)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.report.html import build_report

    print(build_report(args.results, args.out, load_config(args.config or DEFAULT_CONFIG)))
    return 0
