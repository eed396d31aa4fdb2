"""The smallest config that still takes the whole phantom DAG to results/report/index.html.

Every stage gets real data: 16 one-study phantom patients; split seed 329 puts 4+2
of them in pre-training (train/val) and 4/3/3 downstream (train/val/test), with
report-derived cases and controls of heart failure in each downstream split and of
at least two diseases in val and test (`test_full_run.py` checks this on the run). Models and runs are as small
as the code allows: a 2-stage MViT on 4 frames of 16x16, a 1-layer BERT, one
pre-training epoch, 4 LVEF steps, 1 disease epoch, 20 bootstrap draws. Two
experiments: pre-trained LVEF and baseline diseases, one per init.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cinefm.config import DEFAULT_CONFIG, REPO_ROOT, deep_merge, validate_config

# What a test asks for when it deletes one fine-tuning output (the pre-trained one:
# it also depends on the pre-training checkpoint, which must not rerun).
RERUN_EXPERIMENT = "lvef_clip_transfer_100"
EXPERIMENTS = (RERUN_EXPERIMENT, "disease_kinetics_transfer_100")
# The rules a full run executes (`all` only collects).
FULL_RUN_RULES = {"phantom", "ingest_list", "ingest_scan", "ingest_merge", "ingest_extract", "ingest_flow",
                  "reports", "labels", "agreement", "splits", "pretrain", "pretrain_retrieval",
                  "pretrain_umap", "finetune", "attention_videos", "stats", "report", "run_config", "all"}

TINY = {
    "phantom": {"patients": 16, "studies_per_patient": [1, 1], "frames": [10, 10], "sax_slices": [4, 4]},
    "ingest": {"shards": 1, "frame_size": 16},
    "text": {"vocab_size": 300},
    # the fractions seed 329 was chosen for (pinned: the demo's own fractions may change)
    "splits": {"seed": 329, "pretrain_fraction": 0.5, "pretrain_val_fraction": 0.33,
               "downstream": {"train": 0.5, "val": 0.25, "test": 0.25}},
    "external": {"echonet": {"phantom": {"enabled": False}},  # the echo branch has its own tests,
                 "ukb": {"enabled": False}, "acdc": {"enabled": False}, "kaggle": {"enabled": False}},  # so do these
    "models": {
        "video": {"name": "mvit_small", "weights": None, "frames": 4, "size": 16, "stochastic_depth": 0.0,
                  "mvit_small": {"dims": [8, 16], "heads": [1, 2], "depths": [1, 2], "kv_stride": 2}},
        "text": {"path": None, "layers": 1, "hidden": 16, "heads": 2, "freeze_layers": 0, "pooling": "mean"},
        "projection_dim": 8,
    },
    "pretrain": {"batch_size": 4, "epochs": 1, "threads": 1, "recall_ks": [1, 2], "log_every_steps": 1},
    "finetune": {"select": list(EXPERIMENTS), "mil_hidden": 8, "batch_size": 4,
                 # the main cohort's report-parsed LVEF: the UK Biobank and external-test branches have their own
                 # tests (tests/external, tests/workflow/test_dag.py)
                 "lvef": {"max_steps": 4, "val_every_steps": 2, "cohort": "reports"},
                 "disease": {"epochs": 1, "models": "multi_label"}},
    "stats": {"bootstrap": 20},
    # heat-map videos of the baseline disease model: one test study, a long-axis view and the SAX stack
    "attention": {"experiments": [EXPERIMENTS[1]], "studies": 1, "views": ["4CH", "SAX"], "upscale": 2},
}


def absolute_repo_paths(node):
    """Config values naming files of the repository (config/views.yaml ...) made absolute,
    so that a run may use its own working directory."""
    if isinstance(node, dict):
        return {k: absolute_repo_paths(v) for k, v in node.items()}
    if isinstance(node, list):
        return [absolute_repo_paths(v) for v in node]
    if isinstance(node, str) and "/" in node and (REPO_ROOT / node).exists():
        return str(REPO_ROOT / node)
    return node


def tiny_config(results: Path) -> dict:
    """The default config with TINY merged in and `results` as the results folder (validated)."""
    cfg = deep_merge(absolute_repo_paths(yaml.safe_load(DEFAULT_CONFIG.read_text())), TINY)
    cfg["external"]["sites"] = {}  # the second-site branch has its own tests (tests/external/test_sites.py)
    cfg["results"] = str(results)
    validate_config(cfg)
    return cfg


def write_tiny_config(root: Path) -> Path:
    """`root/config.yaml` with results under `root/results`; returns its path."""
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(root / "results")))
    return path
