"""A tiny real pre-training cohort in the pipeline's results layout (HDF5, splits, reports, tokenizer).

results/
  ingest/studies.csv   patient_id, study_id, h5_relpath, status (as ingestion writes it)
  h5/<patient>/<study>.h5   4CH (1 slice) + SAX (2 slices), 6 frames of 16x16 uint8
  splits/splits.csv    8 patients pretrain/train, 4 pretrain/val (one study each)
  text/reports.json(.idx)   indexed report JSON: 4 tokenised sentences per study
  text/tokenizer/vocab.txt  a BERT WordPiece vocabulary of the report words
  labels/labels.csv    study_id, patient_id, hcm, dcm

The pairing is learnable: studies of class 1 ("hcm") show a bright disk and their
reports say "thick wall"; class 0 studies a dark one and "normal wall".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import yaml

from cinefm.config import DEFAULT_CONFIG, deep_merge, validate_config
from cinefm.text.indexed_json import write_indexed_json

FRAMES, STORED = 6, 16
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "wall", "is", "thick", "normal", "heart", "size", "rhythm", "regular", "study",
         "lvef", "good", "reduced", "no", "effusion"] + [f"id{i}" for i in range(12)]
VOCAB = SPECIALS + WORDS
TOKEN = {w: i for i, w in enumerate(VOCAB)}
N_TRAIN, N_VAL = 8, 4

TINY_MODELS = {
    "video": {"name": "mvit_small", "weights": None, "frames": 4, "size": 16, "stochastic_depth": 0.0,
              "mvit_small": {"dims": [8, 16], "heads": [1, 2], "depths": [1, 2], "kv_stride": 2}},
    "text": {"path": None, "layers": 2, "hidden": 16, "heads": 2, "freeze_layers": 1, "pooling": "mean"},
    "projection_dim": 8,
}
TINY_PRETRAIN = {
    "run": "toy", "batch_size": 4, "epochs": 2, "lr": 1.0e-3, "checkpoint_every": 1, "num_workers": 0,
    "seed": 0, "devices_per_node": 0, "threads": 1, "progress_bar": "none", "log_every_steps": 1, "recall_ks": [1, 2, 5],
    "umap_neighbors": 15, "flood_level": 0.05,
}


@dataclass(frozen=True)
class Cohort:
    results: Path
    splits_csv: Path
    studies_csv: Path
    reports: Path
    tokenizer: Path
    labels_csv: Path
    val_studies: tuple[str, ...]
    val_clips: int


def toy_config(**pretrain) -> dict:
    """The default config with the tiny models and a short pre-training (validated)."""
    base = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg = deep_merge(base, {"models": TINY_MODELS, "pretrain": {**TINY_PRETRAIN, **pretrain},
                            "data": {"max_open_files": 4, "text_max_tokens": 24}})
    validate_config(cfg)
    return copy.deepcopy(cfg)


def _frames(cls: int, i: int) -> np.ndarray:
    """``(FRAMES, STORED, STORED)`` uint8: a disk (bright for class 1, dark for class 0) that beats."""
    yy, xx = np.mgrid[:STORED, :STORED] - (STORED - 1) / 2
    out = []
    for t in range(FRAMES):
        radius = 4 + 2 * np.cos(2 * np.pi * t / FRAMES) + (i % 3) * 0.3
        disk = (yy**2 + xx**2) <= radius**2
        out.append(np.where(disk, 230 if cls else 40, 120))
    return np.asarray(out, dtype=np.uint8)


def _sentences(cls: int, i: int) -> list[list[str]]:
    return [["the", "wall", "is", "thick" if cls else "normal"], ["heart", "size", "normal" if not cls else "reduced"],
            ["rhythm", "is", "regular"], ["study", f"id{i}"]]


def build_cohort(root: Path) -> Cohort:
    """Write the cohort under ``root/results`` (module docstring)."""
    res = root / "results"
    studies, splits, labels, reports = [], [], [], {}
    for i in range(N_TRAIN + N_VAL):
        cls, patient, study = i % 2, f"P{i:02d}", f"S{i:02d}"
        rel = Path(patient) / f"{study}.h5"
        path = res / "h5" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        clip = _frames(cls, i)
        with h5py.File(path, "w") as fh:
            fh.attrs.update(patient_id=patient, study_id=study, schema_version=1)
            fh.create_dataset("4CH", data=clip[None], chunks=(1, FRAMES, STORED, STORED))
            fh.create_dataset("SAX", data=np.stack([clip, clip[::-1]]), chunks=(1, FRAMES, STORED, STORED))
        studies.append((patient, study, str(rel), "written", "4CH;SAX"))
        splits.append((patient, study, "toy", "pretrain", "train" if i < N_TRAIN else "val"))
        labels.append((study, patient, cls, 0))
        words = _sentences(cls, i)
        reports[study] = {"sentences": [" ".join(s) for s in words],
                          "input_ids": [[TOKEN["[CLS]"], *[TOKEN[w] for w in s], TOKEN["[SEP]"]] for s in words]}
    (res / "ingest").mkdir(parents=True)
    (res / "splits").mkdir()
    (res / "labels").mkdir()
    tok = res / "text" / "tokenizer"
    tok.mkdir(parents=True)
    (tok / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    paths = {"studies": res / "ingest" / "studies.csv", "splits": res / "splits" / "splits.csv",
             "labels": res / "labels" / "labels.csv"}
    pd.DataFrame(studies, columns=["patient_id", "study_id", "h5_relpath", "status", "views"]).to_csv(
        paths["studies"], index=False)
    pd.DataFrame(splits, columns=["patient_id", "study_id", "cohort", "stage", "split"]).to_csv(
        paths["splits"], index=False)
    pd.DataFrame(labels, columns=["study_id", "patient_id", "hcm", "dcm"]).to_csv(paths["labels"], index=False)
    write_indexed_json(reports, res / "text" / "reports.json")
    val = tuple(f"S{i:02d}" for i in range(N_TRAIN, N_TRAIN + N_VAL))
    return Cohort(res, paths["splits"], paths["studies"], res / "text" / "reports.json", tok, paths["labels"],
                  val, 3 * N_VAL)


def write_config(cfg: dict, path: Path) -> Path:
    """Dump a config dict as YAML (for the CLI)."""
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
