"""``cinefm pretrain``: contrastive pre-training + validation embeddings (same function as the rule)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` sub-command."""
    p = sub.add_parser(
        "pretrain",
        help="contrastive video-report pre-training -> last.ckpt, metrics.csv, embeddings.h5",
        description="Train (or resume from OUT/state/last.ckpt) the video-report model of the config's "
        "models/pretrain sections on the pre-training split, then embed the validation clips and reports. "
        "Writes OUT/last.ckpt, OUT/metrics.csv and OUT/embeddings.h5.",
    )
    p.add_argument("--config", default=None, help="config YAML (default config/config.yaml)")
    p.add_argument("--results", default=None, help="results folder with splits/, ingest/, text/ "
                   "(default: the config's results)")
    p.add_argument("--out", default=None, help="run folder (default RESULTS/pretrain/<pretrain.run>)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs to use (default pretrain.devices_per_node; capped by "
                   "what the job was given)")
    p.add_argument("--cpu-processes", type=int, default=None, metavar="N",
                   help="train on CPU with N DDP processes (gloo); for checks without a GPU")
    p.set_defaults(func=_run)
    _register_finetune(sub)


def _register_finetune(sub: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` sub-command (the same call as the ``finetune`` rule)."""
    p = sub.add_parser(
        "finetune",
        help="fine-tune one experiment (LVEF or diseases) -> best.ckpt, predictions.csv, metrics.csv",
        description="Train one experiment file (config/experiments/NAME.yaml) on the downstream split of a "
        "results folder, select on validation, predict val + test. A killed run's rerun resumes from "
        "OUT/state/last.ckpt.",
    )
    p.add_argument("experiment", help="experiment YAML file")
    p.add_argument("--config", default=None, help="config YAML (default config/config.yaml)")
    p.add_argument("--results", default=None, help="results folder with splits/, labels/, ingest/, pretrain/ "
                   "(default: the config's results)")
    p.add_argument("--pretrain-ckpt", default=None, help="contrastive checkpoint for init 'clip' (default "
                   "RESULTS/pretrain/<pretrain.run>/last.ckpt)")
    p.add_argument("--out", default=None, help="output folder (default RESULTS/finetune/<experiment name>)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all visible, CPU if none)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=_run_finetune)


def _run_finetune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.train.finetune import run_finetune

    config = load_config(args.config or DEFAULT_CONFIG)
    results = Path(args.results or config["results"])
    out = Path(args.out or results / "finetune" / Path(args.experiment).stem)
    run_finetune(args.experiment, config, splits_csv=results / "splits" / "splits.csv",
                 studies_csv=results / "ingest" / "studies.csv", labels_csv=results / "labels" / "labels.csv",
                 pretrain_ckpt=args.pretrain_ckpt or results / "pretrain" / config["pretrain"]["run"] / "last.ckpt",
                 out_ckpt=out / "best.ckpt", out_predictions=out / "predictions.csv", out_metrics=out / "metrics.csv",
                 gpus=args.gpus, threads=args.threads)
    print(f"{out / 'best.ckpt'}\t{out / 'predictions.csv'}\t{out / 'metrics.csv'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.train.pretrain import run_pretraining

    config = load_config(args.config or DEFAULT_CONFIG)
    results = Path(args.results or config["results"])
    pre = config["pretrain"]
    layout = None
    if args.cpu_processes:
        layout = {"accelerator": "cpu", "devices": args.cpu_processes, "num_nodes": 1,
                  "strategy": "ddp" if args.cpu_processes > 1 else "auto"}
    result = run_pretraining(
        config, splits_csv=results / "splits" / "splits.csv", studies_csv=results / "ingest" / "studies.csv",
        reports=results / "text" / "reports.json", tokenizer=results / "text" / "tokenizer",
        out_dir=args.out or results / "pretrain" / pre["run"],
        requested_gpus=pre["devices_per_node"] if args.gpus is None else args.gpus, layout=layout, threads=pre["threads"])
    if result.last_ckpt is not None:
        print(f"{result.epochs} epochs\t{result.last_ckpt}\t{result.metrics_csv}\t{result.embeddings}")
    return 0
