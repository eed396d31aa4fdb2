"""A small real cohort for the fine-tuning tests: HDF5 studies whose frames encode LVEF.

Each study is a bright disk (blood pool) on a grey background whose area shrinks over the
cardiac cycle by the study's ejection fraction: area(t) = A_ed · (1 − EF · s(t)),
s(t) = (1 − cos 2πt/F)/2. So LVEF is visible in the brightness dynamics of every view and
a tiny video model can learn it. Disease labels follow simple rules of LVEF (``dcm``: LVEF
< 35) or are random (``hcm``), with some unknown (empty) labels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
import yaml

from cinefm.config import DEFAULT_CONFIG, deep_merge, validate_config
from cinefm.train.experiments import expected_name, parse_experiment
from cinefm.train.recipe import FinetuneRecipe, resolve_recipe

FRAMES, STORED = 8, 16  # stored frames per series and stored frame size
SIDES = {"train": 28, "val": 10, "test": 10}  # downstream patients per split (one study each)
N_PRETRAIN = 2  # pre-training patients (never used here, but a real splits table has them)

TEST_CONFIG = {
    "labels": {"diseases": ["hcm", "dcm"]},
    "data": {"min_frames": 2, "max_open_files": 8},
    "models": {
        "video": {"name": "mvit_small", "weights": None, "frames": 4, "size": 16, "stochastic_depth": 0.0,
                  "mvit_small": {"dims": [8, 16], "heads": [1, 1], "depths": [1, 2], "kv_stride": 2}},
        "projection_dim": 16,
    },
    "finetune": {
        "mil_hidden": 8, "batch_size": 8, "num_workers": 0, "allow_random_baseline": False,
        "lvef": {"lr": 3.0e-3, "weight_decay": 0.01, "max_steps": 60, "val_every_steps": 10, "huber_delta": 1.0,
                 "sax_fraction": 0.5, "precision": 32},
        "disease": {"lr": 3.0e-3, "weight_decay": 5.0e-4, "epochs": 2, "precision": 32},
    },
}


def toy_config(**overrides) -> dict:
    """The default config with the tiny model and short runs above (validated)."""
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg = deep_merge(deep_merge(cfg, TEST_CONFIG), overrides)
    validate_config(cfg)
    return cfg


def beating_disk(ef: float, frames: int = FRAMES, size: int = STORED, r_ed: float = 6.0) -> np.ndarray:
    """``(frames, size, size)`` uint8: a disk whose area falls by ``ef`` (0..1) at end-systole."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    dist = np.hypot(yy, xx)
    out = np.empty((frames, size, size), np.uint8)
    for t in range(frames):
        s = (1 - np.cos(2 * np.pi * t / frames)) / 2
        radius = r_ed * np.sqrt(1 - ef * s)
        out[t] = np.where(dist <= radius, 220, 60)
    return out


def study_views(ef: float, i: int) -> dict[str, np.ndarray]:
    """4CH, 3CH, 2CH and 2 SAX slices; every 3rd study lacks 2CH, every 4th lacks 3CH."""
    clip = beating_disk(ef)
    views = {"4CH": clip[None], "3CH": clip[None], "2CH": clip[None], "SAX": np.stack([clip, clip])}
    if i % 3 == 0:
        del views["2CH"]
    if i % 4 == 0:
        del views["3CH"]
    return views


def write_study(path: Path, patient: str, study: str, views: dict[str, np.ndarray]) -> None:
    """One study in the ingestion layout (a dataset per view, chunked per slice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh.attrs.update(patient_id=patient, study_id=study, schema_version=1)
        for view, arr in views.items():
            fh.create_dataset(view, data=arr, chunks=(1, *arr.shape[1:]))


@dataclass(frozen=True)
class Cohort:
    root: Path
    studies_csv: Path
    splits_csv: Path
    labels_csv: Path
    splits: pd.DataFrame
    labels: pd.DataFrame


def build_cohort(root: Path, seed: int = 3) -> Cohort:
    """Write HDF5 studies, ``studies.csv``, ``splits.csv`` and ``labels.csv`` under ``root``."""
    rng = np.random.default_rng(seed)
    rows, splits, labels = [], [], []
    sides = [("pretrain", "train")] * N_PRETRAIN + [("downstream", s) for s, n in SIDES.items() for _ in range(n)]
    for i, (stage, split) in enumerate(sides):
        patient, study = f"P{i:03d}", f"S{i:03d}"
        lvef = float(rng.uniform(15, 75))
        path = root / "h5" / patient / f"{study}.h5"
        write_study(path, patient, study, study_views(lvef / 100, i))
        rows.append((patient, study, str(path)))
        splits.append((patient, study, "toy", stage, split))
        hcm = "" if i % 7 == 0 else str(int(rng.random() < 0.4))
        labels.append((study, patient, hcm, str(int(lvef < 35)), f"{lvef:.1f}"))
    paths = Cohort(root, root / "studies.csv", root / "splits.csv", root / "labels.csv",
                   pd.DataFrame(splits, columns=["patient_id", "study_id", "cohort", "stage", "split"]),
                   pd.DataFrame(labels, columns=["study_id", "patient_id", "hcm", "dcm", "lvef"]))
    pd.DataFrame(rows, columns=["patient_id", "study_id", "h5"]).to_csv(paths.studies_csv, index=False)
    paths.splits.to_csv(paths.splits_csv, index=False)
    paths.labels.to_csv(paths.labels_csv, index=False)
    return paths


def recipe_for(config: dict, task: str, *, init: str = "random", mode: str = "transfer", **changes) -> FinetuneRecipe:
    """The recipe of a canonically named experiment file (fraction 1, seed 0) under ``config``,
    with ``changes`` to its fields (``dataclasses.replace``)."""
    keys = {"task": task, "init": init, "mode": mode, "fraction": 1.0, "seed": 0}
    name = expected_name(task, init, mode, 1.0)
    exp = parse_experiment(keys, name, f"{name}.yaml", config["labels"]["diseases"])
    return dataclasses.replace(resolve_recipe(exp, config), **changes)


def write_experiment(directory: Path, name: str, **keys) -> Path:
    """Write ``<directory>/<name>.yaml`` holding ``keys``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(keys))
    return path


def write_clip_checkpoint(path: Path, config: dict, seed: int = 5) -> dict[str, torch.Tensor]:
    """A checkpoint shaped like the pre-training module's (``model.video.*``, ``model.video_proj.*``,
    a text tower that fine-tuning must ignore, the run's config fingerprint); returns its state dict."""
    from cinefm.models.video import build_video_encoder
    from cinefm.train.runs import config_fingerprint

    torch.manual_seed(seed)
    video = build_video_encoder(**config["models"]["video"])
    proj = torch.nn.Linear(video.out_dim, config["models"]["projection_dim"])
    state = {f"model.video.{k}": v.clone() for k, v in video.state_dict().items()}
    state.update({f"model.video_proj.{k}": v.clone() for k, v in proj.state_dict().items()})
    state["model.text_proj.weight"] = torch.randn(4, 4)
    torch.save({"state_dict": state, "epoch": 3,
                "hyper_parameters": {"fingerprint": config_fingerprint(config)}}, path)
    return state
