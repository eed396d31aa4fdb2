"""A results folder as a finished run leaves it (real CSV/PNG files), built once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinefm.atomic import save_figure
from cinefm.stats import write_stats
from cinefm.stats.experiments import CohortTables, parse_experiment_name

CONFIG = {
    "cohort": {"name": "phantom"},
    "pretrain": {"run": "phantom"},
    "stats": {"ci_level": 0.95, "bootstrap": 40, "bootstrap_seed": 1, "sensitivity_target": 0.9,
              "specificity_target": 0.9},
    "labels": {"heart_failure_lvef": 40, "diseases": ["hcm", "dcm"]},
}


def _png(path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot([0, 1, 2], [1, 0, 2])
    ax.set_title(title)
    save_figure(fig, path, dpi=60)


N_TEST = 60


def _cohort(root: Path) -> CohortTables:
    """labels.csv, splits.csv and train_fractions.csv for the 60 test studies and 40 training studies."""
    test = [f"S{i:012x}" for i in range(N_TEST)]
    train = [f"T{i:012x}" for i in range(40)]
    ids = test + train
    idx = np.arange(len(ids))
    labels = pd.DataFrame({"study_id": ids, "patient_id": [f"P{s}" for s in ids],
                           "hcm": (idx % 4 == 1).astype(float), "dcm": (idx % 3 == 0).astype(float),
                           "lvef": 55.0 - 25 * (idx % 3 == 0)})
    labels.loc[(idx % 4 == 1) & (idx % 3 == 0) & (idx >= N_TEST), "hcm"] = 0.0  # hcm+dcm: never in training
    splits = pd.DataFrame({"patient_id": labels["patient_id"], "study_id": ids, "cohort": "phantom",
                           "stage": "downstream", "split": ["test"] * N_TEST + ["train"] * 40})
    fractions = pd.DataFrame({"patient_id": labels["patient_id"][N_TEST:], "study_id": train,
                              "train_fraction": [0.1, 0.25, 0.5, 1.0] * 10, "fraction_seed": 17})
    (root / "labels").mkdir(exist_ok=True)
    (root / "splits").mkdir(exist_ok=True)
    tables = CohortTables(root / "labels" / "labels.csv", root / "splits" / "splits.csv",
                          root / "splits" / "train_fractions.csv")
    labels.to_csv(tables.labels_csv, index=False)
    splits.to_csv(tables.splits_csv, index=False)
    fractions.to_csv(tables.fractions_csv, index=False)
    return tables


def _finetune(root: Path, rng) -> list[Path]:
    n = N_TEST
    ids = [f"S{i:012x}" for i in range(n)]
    y = (np.arange(n) % 3 == 0).astype(float)
    lvef = rng.uniform(20, 70, n)
    specs = {
        "dcm_clip_transfer_100": ("dcm", y, rng.normal(size=n) + 1.4 * y),
        "dcm_kinetics_transfer_100": ("dcm", y, rng.normal(size=n) + 0.6 * y),
        "lvef_clip_transfer_100": ("lvef", lvef, lvef + rng.normal(0, 5, n)),
    }
    paths = []
    for name, (task, target, score) in specs.items():
        d = root / "finetune" / name
        d.mkdir(parents=True)
        shares = rng.dirichlet([1.0, 1.0, 1.0, 6.0], n)  # 4CH, 3CH, 2CH, SAX: the SAX stack holds most clips
        attn = pd.DataFrame(shares, columns=["attn_4CH", "attn_3CH", "attn_2CH", "attn_SAX"])
        attn.loc[::5, "attn_3CH"] = np.nan  # a study without a 3CH view
        _, init, mode, percent = parse_experiment_name(name)
        identity = {"experiment": name, "cohort": "cmr", "init": init, "mode": mode, "fraction": int(percent) / 100}
        pd.concat([pd.DataFrame({**identity, "study_id": ids, "split": "test", "task": task, "target": target,
                                 "score": score}), attn], axis=1).to_csv(d / "predictions.csv", index=False)
        paths.append(d / "predictions.csv")
    return paths


@pytest.fixture(scope="session")
def report_config() -> dict:
    """The config sections the stats and the report read."""
    return CONFIG


@pytest.fixture(scope="session")
def full_results(tmp_path_factory) -> Path:
    """results/ with ingest flow, label agreement, pre-training outputs and stats (from write_stats)."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("results")
    (root / "ingest").mkdir()
    pd.DataFrame({"level": ["files", "series", "studies", "patients"], "stage": "included",
                  "count": [900, 120, 30, 24]}).to_csv(root / "ingest" / "flow.csv", index=False)
    _png(root / "ingest" / "flow.png", "flow")
    (root / "labels").mkdir()
    pd.DataFrame({"disease": ["hcm", "dcm"], "kappa": [0.81, 0.77], "f1": [0.9, 0.85]}).to_csv(
        root / "labels" / "agreement.csv", index=False)
    _png(root / "labels" / "agreement.png", "agreement")
    (root / "pretrain" / "phantom").mkdir(parents=True)
    _png(root / "pretrain" / "phantom" / "umap.png", "umap")
    pd.DataFrame({"direction": ["video→text"], "recall@1": [0.2], "recall@5": [0.6]}).to_csv(
        root / "pretrain" / "phantom" / "retrieval.csv", index=False)
    pd.DataFrame({"embedding": ["video", "text"], "target": "dcm", "n_studies": 20, "positives": 6, "k": 5,
                  "auroc": [0.71, 0.52], "null_mean": 0.4, "null_sd": 0.15, "p_value": [0.02, 0.3],
                  "permutations": 200}).to_csv(root / "pretrain" / "phantom" / "structure.csv", index=False)
    write_stats(_finetune(root, rng), root / "stats", CONFIG, cohort_tables=_cohort(root))
    return root


def write_attention_videos(results: Path, experiment: str, studies: list[str]) -> Path:
    """attention/<experiment>/ as cinefm.viz.videos writes it: real MP4/GIF/PNG files of a moving blob
    overlaid on a grey clip (4CH of each study; SAX of the first only, the others lack it)."""
    from cinefm.viz.videos import COLUMNS, overlay, write_gif, write_mp4, write_png

    out = results / "attention" / experiment
    t, y, x = np.mgrid[:8, :32, :32]
    rows = []
    for i, study in enumerate(studies):
        for view in ("4CH", "SAX"):
            base = {"experiment": experiment, "study_id": study, "view": view, "blocks": "-1"}
            if view == "SAX" and i > 0:
                rows.append({**base, "status": "absent", "reason": "study has no SAX series"})
                continue
            heat = np.exp(-((y - 10 - t) ** 2 + (x - 20 + i) ** 2) / 20.0)
            frames = overlay(np.full((8, 32, 32), 90 + 10 * i, np.uint8), heat, 0.7, upscale=2)
            stem = f"videos/{study}_{view}"
            write_mp4(frames, out / f"{stem}.mp4", fps=8)
            write_gif(frames[:, ::2, ::2], out / f"{stem}.gif", fps=8)
            write_png(frames[0], out / f"{stem}.png")
            rows.append({**base, "slice": 0, "status": "ok", "reason": "", "mp4": f"{stem}.mp4",
                         "gif": f"{stem}.gif", "poster": f"{stem}.png", "frames": 8, "height": 64, "width": 64,
                         "token_grid": "4x8x8", "peak_frame": 0, "peak_row": 10, "peak_col": 20})
    pd.DataFrame(rows).reindex(columns=COLUMNS).to_csv(out / "videos.csv", index=False)
    return out / "videos.csv"


@pytest.fixture(scope="session")
def results_with_videos(full_results, tmp_path_factory) -> Path:
    """full_results plus heat-map videos of two experiments (two test studies each)."""
    import shutil

    root = tmp_path_factory.mktemp("with_videos") / "results"
    shutil.copytree(full_results, root)
    for exp in ("dcm_clip_transfer_100", "lvef_clip_transfer_100"):
        write_attention_videos(root, exp, [f"S{i:012x}" for i in (3, 7)])
    return root
