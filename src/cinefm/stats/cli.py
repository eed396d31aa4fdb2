"""``cinefm stats``: fine-tuning predictions -> AUROC/DeLong/threshold/regression tables and figures."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``stats`` sub-command."""
    p = subparsers.add_parser(
        "stats",
        help="AUROC with DeLong CIs, paired DeLong tests, operating points, regression and Bland–Altman",
        description="Reads finetune/{experiment}/predictions.csv files (experiment = folder name, "
        "<task>_<init>_<mode>_<fraction>) and writes auroc.csv, delong.csv, thresholds.csv, "
        "regression.csv, view_attention.csv (and lvef_subgroups.csv with --labels and --splits) to OUT and "
        "roc_*.png, bland_altman_*.png, view_attention.png to OUT/figures, as the Snakemake rule does. "
        "The numbers match R pROC (ci.auc, roc.test, coords).",
    )
    p.add_argument("--predictions", nargs="+", required=True, help="predictions.csv files, one per experiment")
    p.add_argument("--out", required=True, help="output folder (plays the role of results/stats)")
    p.add_argument("--config", default=None, help="config YAML (stats: and labels: sections; default config/config.yaml)")
    p.add_argument("--labels", default=None, help="labels.csv: with --splits, LVEF error by disease subgroup")
    p.add_argument("--splits", default=None, help="splits.csv (downstream training studies per subgroup)")
    p.add_argument("--fractions", default=None, help="train_fractions.csv (training fractions below 100 %%)")
    p.add_argument("--baseline-init", default="kinetics", help="init every other init is compared with (default kinetics)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.stats.experiments import CohortTables, write_stats

    cfg = load_config(args.config or DEFAULT_CONFIG)
    if (args.labels is None) != (args.splits is None):
        raise SystemExit("cinefm stats: --labels and --splits go together (LVEF error by disease subgroup)")
    cohort = (CohortTables(Path(args.labels), Path(args.splits), Path(args.fractions) if args.fractions else None)
              if args.labels else None)
    for path in write_stats(args.predictions, args.out, cfg, baseline_init=args.baseline_init,
                            figures_dir=Path(args.out) / "figures", cohort_tables=cohort):
        print(path)
    return 0
