"""External tests: a trained model predicts an external cohort's test units as a direct forward pass would."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from cinefm.data.collate import collate_studies
from cinefm.external.cohorts import cohort_label, cohort_tasks
from cinefm.external.evaluate import evaluate_external, external_datamodule, load_model
from cinefm.train.finetune_module import FinetuneModule
from train.finetune_cohort import (  # tests/train: tiny model, disk studies
    recipe_for,
    study_views,
    toy_config,
    write_study,
)

N_UNITS = 6


def write_external_cohort(root: Path, name: str, with_hcm: bool) -> tuple[Path, Path, Path]:
    """An adapter-shaped cohort (``studies.csv`` with ``h5_relpath``, ``h5/`` beside it, ``labels.csv``) and a
    splits table holding it as external test units next to a downstream training patient."""
    out = root / "external" / name
    studies, labels, splits = [], [], [("T000", "ST000", "main", "downstream", "train")]
    rng = np.random.default_rng(4)
    for i in range(N_UNITS):
        patient, study = f"E{i:03d}", f"ES{i:03d}"
        ef = float(rng.uniform(20, 70))
        write_study(out / "h5" / patient / f"{study}.h5", patient, study, study_views(ef / 100, i + 1))
        studies.append((patient, study, f"{patient}/{study}.h5", "ok"))
        labels.append({"study_id": study, "patient_id": patient, "lvef": f"{ef:.1f}", "dcm": str(int(ef < 35)),
                       **({"hcm": str(i % 2)} if with_hcm else {})})
        splits.append((patient, study, name, "external", "test"))
    pd.DataFrame(studies, columns=["patient_id", "study_id", "h5_relpath", "status"]).to_csv(
        out / "studies.csv", index=False)
    pd.DataFrame(labels).to_csv(out / "labels.csv", index=False)
    pd.DataFrame(splits, columns=["patient_id", "study_id", "cohort", "stage", "split"]).to_csv(
        root / "splits.csv", index=False)
    return root / "splits.csv", out / "studies.csv", out / "labels.csv"


def save_model(path: Path, task: str, seed: int = 0) -> FinetuneModule:
    """A fine-tuning module with random weights, saved as Lightning saves best.ckpt."""
    torch.manual_seed(seed)
    module = FinetuneModule(recipe_for(toy_config(), task), target_mean=45.0, target_std=12.0)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": L.__version__, "epoch": 0, "global_step": 0}, path)
    return module


def forward_scores(module: FinetuneModule, dataset) -> pd.DataFrame:
    """Score every unit with one plain forward pass each (no Trainer, no batching)."""
    rows = []
    with torch.no_grad():
        for i in range(len(dataset)):
            batch = collate_studies([dataset[i]])
            scores = module.scores(module.model(batch["video"], batch["mask"]).logits)[0]
            rows += [(batch["study_id"][0], task, float(scores[j])) for j, task in enumerate(module.hparams.tasks)]
    return pd.DataFrame(rows, columns=["study_id", "task", "score"])


@pytest.mark.parametrize("task", ["lvef", "diseases"])
def test_external_predictions_are_the_direct_forward_pass_on_the_cohorts_test_units(tmp_path, task):
    splits, studies, labels = write_external_cohort(tmp_path, "acdc", with_hcm=False)
    save_model(tmp_path / "best.ckpt", task)
    out = tmp_path / "pred.csv"
    pred = evaluate_external(tmp_path / "best.ckpt", "acdc", splits_csv=splits, studies_csv=studies,
                             labels_csv=labels, out_predictions=out, gpus=0)
    written = pd.read_csv(out, dtype={"study_id": str})
    assert list(written.columns) == list(pred.columns) and written["study_id"].tolist() == pred["study_id"].tolist()
    module = load_model(tmp_path / "best.ckpt")
    dm = external_datamodule(module, "acdc", splits_csv=splits, studies_csv=studies, labels_csv=labels)
    direct = forward_scores(module, dm.datasets["test"])
    # the cohort's test units only (never the training patient), every one of them
    assert sorted(pred["study_id"].unique()) == [f"ES{i:03d}" for i in range(N_UNITS)]
    assert set(pred["split"]) == {"test"} and set(pred["test_cohort"]) == {"acdc"}
    # ACDC has no hcm reference here: that output is left out, dcm (and LVEF) are kept
    assert set(pred["task"]) == ({"lvef"} if task == "lvef" else {"dcm"})
    both = pred.merge(direct, on=["study_id", "task"], suffixes=("", "_direct"))
    assert len(both) == len(pred)
    np.testing.assert_allclose(both["score"], both["score_direct"], rtol=1e-5, atol=1e-5)
    truth = pd.read_csv(labels, dtype={"study_id": str}).set_index("study_id")
    column = "lvef" if task == "lvef" else "dcm"
    np.testing.assert_allclose(both["target"], truth.loc[both["study_id"], column].to_numpy(dtype=float), atol=1e-4)
    assert (pred["experiment"] == "lvef_random_transfer_100" if task == "lvef" else
            pred["experiment"] == "disease_random_transfer_100").all()


def test_a_cohort_without_the_units_in_the_splits_fails_naming_the_fix(tmp_path):
    splits, studies, labels = write_external_cohort(tmp_path, "acdc", with_hcm=True)
    save_model(tmp_path / "best.ckpt", "lvef")
    with pytest.raises(ValueError, match="no test unit of external cohort 'kaggle'"):
        evaluate_external(tmp_path / "best.ckpt", "kaggle", splits_csv=splits, studies_csv=studies,
                          labels_csv=labels, out_predictions=tmp_path / "p.csv", gpus=0)


def test_cohort_names_and_reference_tasks():
    assert (cohort_label("acdc"), cohort_label("kaggle"), cohort_label("site_penn")) == ("acdc", "kaggle_dsb",
                                                                                          "site:penn")
    assert cohort_tasks("kaggle") == ("lvef",) and "prior_mi" in cohort_tasks("acdc")
    assert cohort_tasks("site_penn") is None
    with pytest.raises(ValueError, match="no known reference tasks"):
        cohort_tasks("ukb")
