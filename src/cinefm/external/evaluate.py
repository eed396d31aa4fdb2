"""External tests: a fine-tuned model, as selected on its own validation split, predicts an external
cohort's test units — no retraining, no model selection, no threshold fitted on them.

Inputs: the run's ``best.ckpt`` (:class:`cinefm.train.finetune_module.FinetuneModule`, its recipe in
the checkpoint's hyper-parameters), ``results/splits/splits.csv`` (the cohort's units are there as
stage ``external``, split ``test``, cohort ``<name>``: :mod:`cinefm.splits` checks them for leakage
against every training unit), and the adapter's ``results/external/<name>/studies.csv`` (``h5/``
beside it) and ``labels.csv`` (:mod:`cinefm.external.release`). The clips are built exactly as for
the internal test split (:class:`cinefm.data.datamodules.StudyDataModule`: same clip spec, SAX share
and evaluation transform), and predicted with :func:`cinefm.train.finetune_module.predict`.

Reference values per cohort (what each release lets us judge, :data:`COHORT_TASKS`):

- ACDC (``acdc``): the disease groups it has — DCM → ``dcm``, HCM → ``hcm``, MINF → ``prior_mi``,
  RV → ``rv_dilation``, each against NOR and the other groups — and LVEF from the expert masks;
- Kaggle Data Science Bowl (``kaggle``): LVEF from the expert end-diastolic/systolic volumes;
- a second DICOM site (``site_<name>``, ``results/sites/<name>/``: the main cohort's ingestion, reports and
  labels rules, config ``external.sites``): every task of the internal test split its reports give.

A model's task that the cohort has no reference for is left out of the predictions (logged).
Output ``predictions.csv``: the columns of the internal ``predictions.csv`` (identity of the trained
model, ``study_id, patient_id, split`` = ``test``, ``task, target, score, attn_<view>``) plus
``test_cohort`` (:func:`cohort_label`: ``acdc``, ``kaggle_dsb``, ``site:<name>``).

The workflow's ``external_test`` rule and ``cinefm evaluate-external`` (:func:`evaluate_folder`) run the same
:func:`evaluate_external`; the predictions come from :func:`cinefm.train.finetune_module.predict`, the entry
the fine-tuning run's own val/test predictions use.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cinefm.atomic import write_csv
from cinefm.data.datamodules import StudyDataModule, close_readers, read_manifest
from cinefm.data.h5 import DataError
from cinefm.data.targets import target_table
from cinefm.external.cohorts import cohort_label, cohort_of_folder, cohort_tasks
from cinefm.splits import read_splits

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
def external_targets(labels_csv: PathLike, tasks: list[str], heart_failure_lvef: float) -> pd.DataFrame:
    """Targets of ``tasks`` from the cohort's labels.csv; a task the cohort lacks is an all-NaN column."""
    path = Path(labels_csv)
    if not path.is_file():
        raise DataError(f"{path}: labels table of the external cohort not found; run its adapter rule")
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    present = [t for t in tasks if ("lvef" if t == "heart_failure" else t) in labels.columns]
    table = target_table(labels, present, heart_failure_lvef, source=str(path)) if present else \
        pd.DataFrame(index=pd.Index(labels["study_id"].astype(str), name="study_id"))
    return table.reindex(columns=tasks)


def load_model(ckpt: PathLike):
    """The fine-tuned :class:`FinetuneModule` of ``best.ckpt`` (its recipe from the checkpoint), in eval mode."""
    from cinefm.train.finetune_module import FinetuneModule

    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fine-tuned checkpoint not found; run its finetune job first")
    module = FinetuneModule.load_from_checkpoint(str(path), map_location="cpu", weights_only=False)
    return module.eval()


def external_datamodule(module, cohort: str, *, splits_csv: PathLike, studies_csv: PathLike,
                        labels_csv: PathLike) -> StudyDataModule:
    """A datamodule whose ``test`` dataset holds the cohort's test units, clipped as the run's test split."""
    recipe = module.recipe
    dm = StudyDataModule.from_recipe(recipe, splits_csv=splits_csv, studies_csv=studies_csv, labels_csv=labels_csv,
                                     augmix=None, test_stage="external", test_cohorts=[cohort])
    splits = read_splits(splits_csv)
    rows = splits[(splits["stage"] == "external") & (splits["split"] == "test") & (splits["cohort"] == cohort)]
    if rows.empty:
        raise DataError(f"{splits_csv}: no test unit of external cohort {cohort!r}; the splits rule lists it "
                        "when external.<cohort>.enabled and external.evaluate (or splits.external) say so")
    targets = external_targets(labels_csv, list(recipe.tasks), recipe.heart_failure_lvef)
    dm.add_split("test", rows, read_manifest(studies_csv), targets)
    return dm


def evaluate_external(ckpt: PathLike, cohort: str, *, splits_csv: PathLike, studies_csv: PathLike,
                      labels_csv: PathLike, out_predictions: PathLike, gpus: int | None = None,
                      threads: int | None = None) -> pd.DataFrame:
    """Predict the cohort's test units with the run's selected model; write ``predictions.csv`` (module docstring)."""
    from cinefm.train.finetune_module import predict

    if threads:
        torch.set_num_threads(int(threads))
    module = load_model(ckpt)
    recipe = module.recipe
    wanted = cohort_tasks(cohort)
    dm = external_datamodule(module, cohort, splits_csv=splits_csv, studies_csv=studies_csv, labels_csv=labels_csv)
    try:
        ds = dm.datasets["test"]
        log.info("%s on %s: %d test units (%s)", recipe.experiment, cohort, len(ds),
                 ", ".join(f"{k} {v}" for k, v in sorted(dm.exclusions.items()) if v) or "none left out")
        if len(ds) == 0:
            raise DataError(f"external cohort {cohort}: no test unit with images and a reference for "
                            f"{list(recipe.tasks)} (see {studies_csv}, {labels_csv})")
        pred = predict(module, dm.dataloader("test"), "test", gpus=gpus)
    finally:
        close_readers(dm)
    known = pred.groupby("task")["target"].apply(lambda t: bool(np.isfinite(t.astype(float)).any()))
    keep = [t for t in recipe.tasks if (wanted is None or t in wanted) and known.get(t, False)]
    dropped = sorted(set(recipe.tasks) - set(keep))
    if dropped:
        log.info("%s on %s: tasks without a reference in this cohort left out: %s", recipe.experiment, cohort,
                 ", ".join(dropped))
    pred = pred[pred["task"].isin(keep)].reset_index(drop=True)
    pred.insert(5, "test_cohort", cohort_label(cohort))
    write_csv(pred, out_predictions)
    return pred


def folder_tables(folder: PathLike) -> dict[str, Path]:
    """Study manifest and labels table of a cohort folder: an adapter's ``studies.csv`` + ``labels.csv``, or a
    DICOM site's ``ingest/studies.csv`` + ``labels/labels.csv`` (the layouts :func:`cohort_tables` names)."""
    root = Path(folder)
    for studies, labels in (("studies.csv", "labels.csv"), ("ingest/studies.csv", "labels/labels.csv")):
        if (root / studies).is_file():
            if not (root / labels).is_file():
                raise DataError(f"{root / labels}: labels table of the cohort not found (beside {root / studies})")
            return {"studies": root / studies, "labels": root / labels}
    raise DataError(f"{root}: not a cohort folder — expected studies.csv + labels.csv (results/external/<name>) or "
                    "ingest/studies.csv + labels/labels.csv (results/sites/<name>)")


def all_units_splits(studies_csv: PathLike, cohort: str, out: PathLike) -> Path:
    """A splits table holding every study of the manifest as the cohort's external test unit."""
    manifest = read_manifest(studies_csv)
    table = manifest[["patient_id", "study_id"]].drop_duplicates().assign(cohort=cohort, stage="external",
                                                                           split="test")
    write_csv(table, out)
    return Path(out)


def evaluate_folder(run: PathLike, folder: PathLike, out_predictions: PathLike, *, name: str | None = None,
                    splits_csv: PathLike | None = None, gpus: int | None = None,
                    threads: int | None = None) -> pd.DataFrame:
    """``cinefm evaluate-external``: :func:`evaluate_external` of a run (its folder or ``best.ckpt``) on a cohort
    folder; test units from ``splits_csv`` (stage external) or, without one, every study of the folder."""
    import tempfile

    ckpt = Path(run) / "best.ckpt" if Path(run).is_dir() else Path(run)
    tables = folder_tables(folder)
    cohort = name or cohort_of_folder(folder)
    if splits_csv is not None:
        return evaluate_external(ckpt, cohort, splits_csv=splits_csv, studies_csv=tables["studies"],
                                 labels_csv=tables["labels"], out_predictions=out_predictions, gpus=gpus,
                                 threads=threads)
    log.warning("%s: no splits table given: every study of the folder is a test unit of %s, and no check that "
                "none of its patients trained the model (pass the workflow's results/splits/splits.csv)", folder,
                cohort)
    with tempfile.TemporaryDirectory(prefix="cinefm-external-") as tmp:
        splits = all_units_splits(tables["studies"], cohort, Path(tmp) / "splits.csv")
        return evaluate_external(ckpt, cohort, splits_csv=splits, studies_csv=tables["studies"],
                                 labels_csv=tables["labels"], out_predictions=out_predictions, gpus=gpus,
                                 threads=threads)


__all__ = ["all_units_splits", "evaluate_external", "evaluate_folder", "external_datamodule", "external_targets",
           "folder_tables", "load_model"]
