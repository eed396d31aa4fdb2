"""``cinefm report``: a results folder -> one self-contained static HTML page;
``cinefm leaderboard``: the same run's statistics as a local web app (Shiny)."""

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

    lb = subparsers.add_parser(
        "leaderboard",
        help="serve a read-only web app (Shiny) over a run's statistics tables, figures and heat-map videos",
        description="Every table of RESULTS/stats/*.csv (internal test split) and RESULTS/stats/<cohort>/*.csv "
        "(external cohorts): sortable, filterable by cohort, task, init, mode and training fraction, with CIs, the "
        "ROC and Bland–Altman figures of the rows shown and links to the attention heat-map videos. Refuses "
        "to start on a folder without statistics.",
    )
    lb.add_argument("--results", required=True, help="results folder of a finished run (config.results)")
    lb.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    lb.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    lb.set_defaults(func=_leaderboard)


def _leaderboard(args: argparse.Namespace) -> int:
    from cinefm.report.leaderboard import NoStatistics
    from cinefm.report.leaderboard_app import serve

    try:
        serve(args.results, host=args.host, port=args.port)
    except NoStatistics as err:
        raise SystemExit(f"cinefm leaderboard: {err}") from None
    return 0


def _run(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.report.html import build_report

    print(build_report(args.results, args.out, load_config(args.config or DEFAULT_CONFIG)))
    return 0
