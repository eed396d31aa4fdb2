"""``cinefm reports``: report CSV -> scrubbed table, tokenizer and indexed JSON."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reports`` sub-command."""
    p = sub.add_parser(
        "reports",
        help="scrub PHI, split sentences, tokenize reports -> reports.json (+ .idx), tokenizer/, reports.csv",
        description="Pseudonymize ids and scrub PHI from a hospital report CSV (columns patient_id, "
        "accession_number, report_text[, patient_name, exam_date]), then write OUT/reports.csv, "
        "OUT/reports.json(.idx), OUT/tokenizer/ and OUT/rejected.csv.",
    )
    p.add_argument("--reports", required=True, help="hospital report CSV")
    p.add_argument("--out", required=True, help="output folder (the pipeline uses results/text)")
    p.add_argument("--config", default=None, help="config YAML for the text: section (default config/config.yaml)")
    p.add_argument("--key-file", default=None, help="pseudonymization key file (else $CINEFM_PSEUDONYM_KEY)")
    p.add_argument("--phantom", action="store_true", help="synthetic data: allow the public demo key")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.privacy import load_key
    from cinefm.text.reports import build_reports

    text = load_config(args.config or DEFAULT_CONFIG)["text"]
    key = load_key(args.key_file, phantom=args.phantom)
    summary = build_reports(
        args.reports, args.out, key, stanza_dir=text.get("stanza_dir"), tokenizer_dir=text.get("tokenizer_dir"),
        vocab_size=text["vocab_size"], min_frequency=text["min_frequency"], max_tokens=text["max_tokens"],
    )
    print(f"{summary.studies} studies -> {args.out}; rejected: {summary.rejected or 'none'}")
    return 0
