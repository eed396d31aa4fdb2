"""``cinefm labels`` (report table -> labels.csv) and ``cinefm agreement``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``labels`` and ``agreement`` sub-commands."""
    p = sub.add_parser(
        "labels",
        help="disease labels and stated LVEF per study from report text",
        description="Read a CSV with study_id and report_text; write one row per study: study_id, one "
        "column per disease (1 / 0 / empty = unknown), lvef as stated in the report, backend, model.",
    )
    p.add_argument("--reports", required=True, help="CSV with columns study_id, report_text")
    p.add_argument("--out", required=True, help="labels CSV to write")
    p.add_argument("--backend", choices=["rules", "openai", "hf"], default=None,
                   help="default: labels.backend of the config")
    p.add_argument("--config", default=None, help="config YAML (default config/config.yaml)")
    p.add_argument("--cache", default=None, help="LLM reply cache folder (default: beside --out)")
    p.set_defaults(func=_labels)

    a = sub.add_parser(
        "agreement",
        help="agreement of labels with human annotators (kappa, sensitivity, ... with bootstrap CIs)",
    )
    a.add_argument("--labels", required=True, help="labels CSV of `cinefm labels`")
    a.add_argument("--human", required=True,
                   help="CSV: annotator, study_id or accession_number, one column per disease")
    a.add_argument("--out", required=True, help="agreement CSV to write")
    a.add_argument("--figure", default=None, help="kappa bar chart (PNG) to write")
    a.add_argument("--config", default=None, help="config YAML (default config/config.yaml)")
    a.add_argument("--key-file", default=None, help="pseudonymization key to join accession numbers")
    a.add_argument("--phantom", action="store_true", help="synthetic data: allow the public demo key")
    a.set_defaults(func=_agreement)


def _labels(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.labels.table import label_reports

    cfg = load_config(args.config or DEFAULT_CONFIG)["labels"]
    cache = args.cache or cfg["llm"]["cache_dir"] or Path(args.out).parent / "llm_cache"
    out = label_reports(args.reports, args.out, cfg, backend=args.backend, cache_dir=cache)
    print(f"{len(out)} studies -> {args.out}")
    return 0


def _agreement(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.labels.agreement import run_agreement
    from cinefm.privacy import PrivacyError, load_key

    cfg = load_config(args.config or DEFAULT_CONFIG)
    try:
        key = load_key(args.key_file, phantom=args.phantom)
    except PrivacyError:
        key = None  # fine when the human labels carry study_id; else run_agreement says so
    stats = cfg["stats"]
    df = run_agreement(
        args.labels, args.human, args.out, args.figure, cfg["labels"]["diseases"], key=key,
        n_boot=stats["bootstrap"], seed=stats["bootstrap_seed"], level=stats["ci_level"],
    )
    print(df[["disease", "rater", "reference", "n", "kappa", "agreement"]].to_string(index=False))
    return 0
