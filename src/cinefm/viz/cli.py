"""``cinefm attention``: heat-map videos of a fine-tuned MViT's attention, as the attention_videos rule makes them."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``attention`` sub-command."""
    p = subparsers.add_parser(
        "attention",
        help="heat-map videos (MP4/GIF/PNG) of a fine-tuned MViT's class-token attention on test studies",
        description="Runs the video trunk of CKPT (results/finetune/<experiment>/best.ckpt) on the test studies "
        "chosen by the config's attention section and writes OUT/videos/<study>_<view>.mp4/.gif/.png and "
        "OUT/videos.csv, as the attention_videos rule does (OUT plays the role of results/attention/<experiment>).",
    )
    p.add_argument("--checkpoint", required=True, help="fine-tuning checkpoint (best.ckpt)")
    p.add_argument("--splits", required=True, help="splits.csv (the downstream test studies are drawn from)")
    p.add_argument("--studies", required=True, help="study manifest (results/ingest/studies.csv)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--config", default=None, help="config YAML (attention: and data: sections; default "
                   "config/config.yaml)")
    p.add_argument("--studies-n", type=int, default=None, help="override attention.studies (0 = every test study)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cinefm.config import DEFAULT_CONFIG, load_config
    from cinefm.viz.videos import render_attention_videos

    cfg = load_config(args.config or DEFAULT_CONFIG)
    if args.studies_n is not None:
        cfg["attention"]["studies"] = args.studies_n or None
    print(render_attention_videos(args.checkpoint, args.splits, args.studies, args.out, cfg, device=args.device))
    return 0
