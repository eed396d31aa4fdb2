"""``cinefm export`` (a fine-tuning run -> a model folder) and ``cinefm predict`` (a model folder +
DICOM studies -> scores, calls, exclusions)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` and ``predict`` sub-commands."""
    p = sub.add_parser(
        "export",
        help="write a fine-tuning run as a model folder (weights, preprocessing, thresholds, model card)",
        description="Reads RESULTS/finetune/NAME (best.ckpt, hparams.yaml, predictions.csv, metrics.csv) and the "
        "config's ingest/labels/stats sections; writes OUT/model.json, weights.safetensors, recipe.yaml, "
        "preprocessing.yaml, views.yaml, thresholds.csv (operating points chosen on validation), labels.yaml "
        "and MODEL_CARD.md.",
    )
    p.add_argument("--experiment", required=True, help="the fine-tuning run's name (results/finetune/NAME)")
    p.add_argument("--out", required=True, help="model folder to write (replaced if it exists)")
    p.add_argument("--config", default=None, help="config YAML of the run (default config/config.yaml)")
    p.add_argument("--results", default=None, help="results folder of the run (default: the config's results)")
    p.set_defaults(func=_export)

    p = sub.add_parser(
        "predict",
        help="score a folder of DICOM studies with an exported model folder",
        description="Ingests DICOM-ROOT with the model's own ingestion settings and view rules (quarantine, "
        "views, pseudonyms, HDF5), builds clips as the model was trained, scores every task. Writes "
        "OUT/predictions.csv, studies.csv, files.csv, flow.csv, summary.html and run.json. A rerun scores only "
        "studies not yet scored by this model (or whose files changed). Real data needs a pseudonymization key "
        "($CINEFM_PSEUDONYM_KEY or --key-file); use the key of the site's other runs to get the same pseudonyms.",
    )
    p.add_argument("--model", required=True, help="model folder written by `cinefm export`")
    p.add_argument("--dicom-root", required=True, help="folder of DICOM studies")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for ingestion, CPU threads for scoring")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to score (default: "
                   "cuda when available)")
    p.add_argument("--batch-size", type=int, default=None, help="studies per batch (default: the model's)")
    p.add_argument("--key-file", default=None, help="file holding the pseudonymization key")
    p.add_argument("--phantom", action="store_true", help="synthetic studies: allow the public demo key")
    p.set_defaults(func=_predict)


def _export(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.inference.export import export_from_cli

    config = load_config(args.config or DEFAULT_CONFIG)
    print(export_from_cli(args.experiment, config, args.results, args.out))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from cinefm.inference.predict import run_predict

    result = run_predict(args.model, args.dicom_root, args.out, jobs=args.jobs, device=args.device,
                         batch_size=args.batch_size, phantom=args.phantom, key_file=args.key_file)
    counts = result.studies["status"].value_counts()
    summary = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no study found"
    print(f"{len(result.studies)} studies: {summary}\t{result.out / 'predictions.csv'}")
    return 0
