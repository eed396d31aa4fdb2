"""A phantom DICOM cohort ingested, two tiny fine-tuning runs on it (LVEF, diseases), both exported.

Built once per session: 12 phantom patients (one study each, the phantom's planted faults
and PHI), ingested with small frames; splits 4 train / 4 val / 4 test patients; labels from
the phantom's truth. The runs use the tiny model of ``tests/train/finetune_cohort.py``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cinefm.config import REPO_ROOT

N_PATIENTS = 12
SPLITS = ["train"] * 4 + ["val"] * 4 + ["test"] * 4
INGEST = {"shards": 1, "frame_size": 16, "min_frames": 4, "intensity_percentiles": [1.0, 99.0],
          "compression": "gzip", "views": str(REPO_ROOT / "config" / "views.yaml")}


@dataclass(frozen=True)
class Trained:
    """The cohort, the results folder of the runs and their exported model folders."""

    phantom: Path
    results: Path
    config: dict
    config_yaml: Path
    models: dict[str, Path]       # experiment -> model folder
    runs: dict[str, Path]         # experiment -> results/finetune/<experiment>
    splits: pd.DataFrame


def _labels_and_splits(phantom: Path, results: Path) -> pd.DataFrame:
    """labels.csv and splits.csv from the phantom's truth and the ingested studies."""
    from cinefm.privacy import PHANTOM_KEY, pseudonymize

    truth = pd.read_csv(phantom / "truth.csv", dtype=str)
    truth["patient"] = [pseudonymize(p, PHANTOM_KEY, "patient") for p in truth["patient_id"]]
    truth["study"] = [pseudonymize(a, PHANTOM_KEY, "study") for a in truth["accession_number"]]
    # interleave heart-failure cases and controls so that val and test hold both
    truth = truth.assign(hf=truth["lvef"].astype(float) < 40).sort_values(["hf", "patient"], ignore_index=True)
    order = [i for pair in zip(range(0, len(truth) // 2), range(len(truth) - 1, len(truth) // 2 - 1, -1),
                               strict=True) for i in pair]
    truth = truth.iloc[order].reset_index(drop=True)
    splits = pd.DataFrame({"patient_id": truth["patient"], "study_id": truth["study"], "cohort": "phantom",
                           "stage": "downstream", "split": SPLITS})
    (results / "splits").mkdir(parents=True)
    splits.to_csv(results / "splits" / "splits.csv", index=False)
    labels = pd.DataFrame({"study_id": truth["study"], "patient_id": truth["patient"], "hcm": truth["hcm"],
                           "dcm": truth["dcm"], "lvef": truth["lvef"]})
    (results / "labels").mkdir(parents=True)
    labels.to_csv(results / "labels" / "labels.csv", index=False)
    return splits


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    from cinefm.cli import main
    from cinefm.dicom.ingest import run_ingest
    from cinefm.phantom import generate_cohort
    from cinefm.train.finetune import run_finetune
    from train.finetune_cohort import toy_config, write_experiment

    root = tmp_path_factory.mktemp("predict_cohort")
    phantom, results = root / "phantom", root / "results"
    generate_cohort(phantom, patients=N_PATIENTS, seed=4, frames=(10, 12), sax_slices=(4, 4),
                    studies_per_patient=(1, 1), enhanced_fraction=0.3, rle_fraction=0.2,
                    prevalence={"hcm": 0.4, "dcm": 0.4})
    config = toy_config(results=str(results), ingest=INGEST,
                        finetune={"lvef": {"max_steps": 8, "val_every_steps": 4},
                                  "disease": {"epochs": 2, "attention": "per_disease"}},
                        stats={"bootstrap": 200})
    run_ingest(phantom / "dicom", results, ingest_cfg=config["ingest"], jobs=1, phantom=True)
    splits = _labels_and_splits(phantom, results)
    config_yaml = root / "config.yaml"
    config_yaml.write_text(yaml.safe_dump(config))
    runs, models = {}, {}
    for name, keys in {"lvef_random_transfer_100": {"task": "lvef"},
                       "disease_random_transfer_100": {"task": "diseases"}}.items():
        exp = write_experiment(root / "experiments", name, init="random", mode="transfer", fraction=1.0, seed=0,
                               **keys)
        run = results / "finetune" / name
        run_finetune(exp, config, splits_csv=results / "splits" / "splits.csv",
                     studies_csv=results / "ingest" / "studies.csv", labels_csv=results / "labels" / "labels.csv",
                     pretrain_ckpt=None, out_ckpt=run / "best.ckpt", out_predictions=run / "predictions.csv",
                     out_metrics=run / "metrics.csv", gpus=0, threads=1)
        runs[name] = run
        models[name] = root / "models" / name
        assert main(["export", "--experiment", name, "--out", str(models[name]), "--config", str(config_yaml)]) == 0
    return Trained(phantom, results, config, config_yaml, models, runs, splits)


def copy_studies(trained: Trained, patients: set[str], dest: Path) -> Path:
    """Copy the DICOM files of ``patients`` (pseudonyms) to ``dest``, keeping their relative paths."""
    files = pd.read_parquet(trained.results / "ingest" / "files.parquet")
    for rel in files.loc[files["patient_id"].isin(patients), "relpath"]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(trained.phantom / "dicom" / rel, dest / rel)
    return dest
