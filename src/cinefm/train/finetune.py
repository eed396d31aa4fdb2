"""Downstream fine-tuning runs: LVEF regression and disease classification on multi-view studies.

One experiment (:mod:`cinefm.train.experiments`) = one run of :func:`run_finetune`:

1. resolves the run's :class:`~cinefm.train.recipe.FinetuneRecipe` (config task section →
   experiment file → cohort overrides) and checks before any training: the experiment
   file, the initialisation (:func:`cinefm.train.initialization.plan_init`), and the
   targets (every task has at least one known label among the training studies);
2. builds the datamodule and :class:`~cinefm.train.finetune_module.FinetuneModule` from
   the recipe, loads the init, applies the mode (``finetune``: trunk frozen; ``transfer``:
   all trainable);
3. trains under Lightning (a step budget with validation every ``val_every_steps``, or
   epochs with validation every epoch) and keeps the checkpoint with the best validation
   metric (MAE for LVEF; mean AUROC over the diseases whose validation labels hold both
   classes, else validation loss);
4. reloads that checkpoint once, predicts the validation and test studies with
   :func:`~cinefm.train.finetune_module.predict` (one device) and writes ``predictions.csv``, ``metrics.csv``, ``best.ckpt`` and
   ``hparams.yaml`` (the recipe, :meth:`FinetuneRecipe.to_yaml`). The test split is never
   seen before.

Resume: while training, the output folder holds ``state/`` (not a declared output, so
Snakemake keeps it when a job is killed): ``state/last.ckpt``, written (atomically) after
every validation, and ``state/best.ckpt``, the best so far. A rerun of a killed job
continues from ``state/last.ckpt`` — same budget, the same batches in the same order
(:class:`~cinefm.train.finetune_module.ResumeDataOrder`), the best-so-far score and file
carried over — unless the checkpoint was written for another recipe or input files
(:func:`run_fingerprint`); then the old state is moved aside (``state.superseded.<n>``)
and training starts over. A finished run removes ``state/``.

``predictions.csv``: see :mod:`cinefm.train.finetune_module`. ``metrics.csv`` (long):
``experiment, task, cohort, init, init_effective, mode, fraction, fraction_seed, seed,
stage, split, step, epoch, metric, value, note`` with stage ``data`` (study counts,
exclusions, pos_weight), ``history`` (every validation during training) and ``best`` (the
selected checkpoint re-evaluated on val and test).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from cinefm.atomic import write_csv
from cinefm.data.datamodules import close_readers
from cinefm.train.callbacks import AtomicCheckpointIO
from cinefm.train.experiments import ExperimentError
from cinefm.train.finetune_module import FinetuneModule, ResumeDataOrder, predict
from cinefm.train.initialization import InitPlan, init_weights, plan_init
from cinefm.train.objectives import (
    check_known_targets,
    pos_weights,
    selection_metric,
    target_scaling,
    task_metrics,
)
from cinefm.train.recipe import FinetuneRecipe, resolve_recipe
from cinefm.train.runs import RunPaths, find_resume_checkpoint

log = logging.getLogger(__name__)

METRIC_COLUMNS = ["experiment", "task", "cohort", "init", "init_effective", "mode", "fraction", "fraction_seed",
                  "seed", "stage", "split", "step", "epoch", "metric", "value", "note"]
PathLike = str | os.PathLike
HPARAMS = "hparams.yaml"  # the run's recipe, beside best.ckpt
# recipe fields that may change between attempts of one run (loading, file locations, book-keeping)
RESUMABLE_FIELDS = ("experiment_file", "description")
RESUMABLE_DATA = ("num_workers", "max_open_files")


@dataclass
class RunInfo:
    """What a run records besides its predictions (goes to metrics.csv and best.ckpt)."""

    recipe: FinetuneRecipe
    init: InitPlan
    rows: list[dict] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return list(self.recipe.tasks)

    def meta(self) -> dict:
        r = self.recipe
        return {"experiment": r.experiment, "task": r.task, "cohort": r.cohort, "init": r.init,
                "init_effective": self.init.effective, "mode": r.mode, "fraction": r.fraction,
                "fraction_seed": r.fraction_seed, "seed": r.seed}

    def add(self, stage: str, split: str, metrics: Mapping[str, float], step: int | None = None,
            epoch: int | None = None, note: str = "") -> None:
        for name, value in metrics.items():
            self.rows.append({**self.meta(), "stage": stage, "split": split, "step": step, "epoch": epoch,
                              "metric": name, "value": float(value), "note": note})

    def table(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows, columns=METRIC_COLUMNS)
        return table.astype({"step": "Int64", "epoch": "Int64"})


def run_fingerprint(recipe: FinetuneRecipe, inputs: Mapping[str, PathLike | None]) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed: the recipe (less how data is loaded
    and where files lie) and the size and modification time of every input file (a new
    pre-training checkpoint or new labels make Snakemake rerun the job: it must start over,
    not continue a model trained on the old ones)."""
    doc = recipe.to_dict()
    for key in RESUMABLE_FIELDS:
        doc.pop(key, None)
    for key in RESUMABLE_DATA:
        doc["data"].pop(key, None)
    doc["video"].pop("weights", None)
    files = {}
    for name, path in sorted(inputs.items()):
        stat = Path(path).stat() if path is not None and Path(path).is_file() else None
        files[name] = [stat.st_size, stat.st_mtime_ns] if stat else None
    return {"recipe": doc, "inputs": files}


# ----------------------------------------------------------------------------- preparation


def _datamodule(recipe: FinetuneRecipe, splits_csv: PathLike, studies_csv: PathLike, labels_csv: PathLike):
    if recipe.cohort != "cmr":  # external cohort: its release split, one view (cinefm.data.echo)
        from cinefm.data.echo import EchoDataModule

        return EchoDataModule.from_recipe(recipe, studies_csv=studies_csv, labels_csv=labels_csv)
    from cinefm.data.datamodules import StudyDataModule

    return StudyDataModule.from_recipe(recipe, splits_csv=splits_csv, studies_csv=studies_csv,
                                       labels_csv=labels_csv)


def _data_rows(info: RunInfo, dm, train_targets: np.ndarray, pos_weight: np.ndarray | None) -> None:
    frac = dm.fraction
    counts = {"n_train_studies": len(dm.datasets["train"]), "n_val_studies": len(dm.datasets["val"]),
              "n_test_studies": len(dm.datasets["test"]),
              "n_train_patients": frac.n_patients if frac else math.nan,
              "n_train_patients_available": frac.n_available if frac else math.nan}
    for j, task in enumerate(info.tasks):
        counts[f"n_known_{task}"] = int(np.sum(~np.isnan(train_targets[:, j])))
        if pos_weight is not None:
            counts[f"pos_weight_{task}"] = float(pos_weight[j])
    counts.update({f"excluded/{k}": v for k, v in sorted(dm.exclusions.items())})
    info.add("data", "train", counts, note=info.init.note)


@dataclass
class Prepared:
    """Everything checked and built before training starts."""

    info: RunInfo
    recipe: FinetuneRecipe
    datamodule: Any
    module: FinetuneModule
    monitor: str
    direction: str


def prepare(experiment_yaml: PathLike, config: Mapping[str, Any], *, splits_csv: PathLike,
            studies_csv: PathLike, labels_csv: PathLike, pretrain_ckpt: PathLike | None,
            disease: str | None = None) -> Prepared:
    """Resolve the recipe (of one ``disease`` of a ``task: diseases`` file when given), plan the init,
    load the data and targets, build the module.

    Every check that can fail without training fails here: experiment file, init source,
    a known label per task among the training studies, a non-empty validation split.
    """
    recipe = resolve_recipe(experiment_yaml, config, disease=disease)
    tasks = list(recipe.tasks)
    plan = plan_init(recipe, pretrain_ckpt)
    info = RunInfo(recipe, plan)
    log.info("experiment %s: task %s (%s), init %s (effective %s), mode %s, fraction %g (seed %d), seed %d",
             recipe.experiment, recipe.task, ", ".join(tasks), recipe.init, plan.effective, recipe.mode,
             recipe.fraction, recipe.fraction_seed, recipe.seed)

    dm = _datamodule(recipe, splits_csv, studies_csv, labels_csv)
    dm.setup("fit")
    train_targets = dm.datasets["train"].targets
    check_known_targets(train_targets, tasks, experiment=recipe.experiment, labels=str(labels_csv),
                        n_train=len(dm.datasets["train"]))
    if len(dm.datasets["val"]) == 0:
        raise ExperimentError(f"experiment {recipe.experiment}: no validation study with a known target — "
                              "model selection needs the downstream val split (more patients or "
                              "splits.downstream.val)")
    if len(dm.datasets["test"]) == 0:
        log.warning("experiment %s: the test split holds no study with a known target; predictions.csv "
                    "will hold validation rows only", recipe.experiment)

    pos_weight, mean, std = None, 0.0, 1.0
    if recipe.kind == "classification":
        pos_weight, notes = pos_weights(train_targets, tasks)
        for note in notes.values():
            log.warning("experiment %s: %s", recipe.experiment, note)
    else:
        mean, std = target_scaling(train_targets[:, 0])
    _data_rows(info, dm, train_targets, pos_weight)

    fingerprint = run_fingerprint(recipe, {"splits": splits_csv, "studies": studies_csv, "labels": labels_csv,
                                           "pretrain": pretrain_ckpt})
    L.seed_everything(recipe.seed, workers=True, verbose=False)
    module = FinetuneModule(recipe, pos_weight=None if pos_weight is None else pos_weight.tolist(),
                            target_mean=mean, target_std=std, fingerprint=fingerprint)
    init_weights(module, plan, recipe.video)
    module.run_info = {**info.meta(), "tasks": tasks, "init_note": plan.note,
                       "experiment_file": recipe.experiment_file}
    monitor, direction = selection_metric(recipe.kind, dm.datasets["val"].targets, recipe.select_by)
    return Prepared(info, recipe, dm, module, monitor, direction)


# ----------------------------------------------------------------------------- training


def _trainer_kwargs(recipe: FinetuneRecipe, n_train_batches: int, gpus: int | None) -> dict:
    from cinefm.cluster import lightning_devices
    from cinefm.train.runs import resolve_precision

    devices = lightning_devices(requested=gpus)
    kwargs: dict[str, Any] = dict(devices, precision=resolve_precision(recipe.precision, devices["accelerator"]),
                                  logger=False, enable_progress_bar=False, enable_model_summary=False,
                                  num_sanity_val_steps=0, log_every_n_steps=max(1, min(50, n_train_batches)),
                                  deterministic="warn")  # deterministic algorithms; a warning where an op has none
    budget = recipe.budget
    if budget.by_steps:  # LVEF step budget; epochs for diseases and recipe experiments
        every = max(1, min(budget.val_every_steps or n_train_batches, budget.max_steps))
        kwargs.update(max_steps=budget.max_steps, max_epochs=-1, val_check_interval=every,
                      check_val_every_n_epoch=None)
    else:
        kwargs.update(max_epochs=budget.epochs, check_val_every_n_epoch=1)
    return kwargs


def fit(prep: Prepared, state_dir: Path, gpus: int | None, resume: PathLike | None = None,
        callbacks: Sequence[Callback] = ()):
    """Train under Lightning (from ``resume``, a ``last.ckpt`` of this run, when given).

    ``state_dir`` receives ``best.ckpt`` (best validation so far) and ``last.ckpt`` (after
    every validation: the resume point). Returns the trainer and the best-checkpoint callback.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    # both save when a validation ends, `best` first: last.ckpt then holds the new best score and path
    best = ModelCheckpoint(dirpath=state_dir, filename="best", monitor=prep.monitor, mode=prep.direction,
                           save_top_k=1, save_on_train_epoch_end=False, auto_insert_metric_name=False,
                           enable_version_counter=False)
    last = ModelCheckpoint(dirpath=state_dir, filename="last", monitor=None, save_top_k=1,
                           save_on_train_epoch_end=False, auto_insert_metric_name=False,
                           enable_version_counter=False)
    n_batches = max(1, math.ceil(len(prep.datamodule.datasets["train"]) / prep.datamodule.batch_size))
    kwargs = _trainer_kwargs(prep.recipe, n_batches, gpus)
    kwargs["plugins"] = [*kwargs["plugins"], AtomicCheckpointIO()]  # a kill never truncates a file
    trainer = L.Trainer(callbacks=[best, last, ResumeDataOrder(), *callbacks], default_root_dir=state_dir,
                        **kwargs)
    with warnings.catch_warnings():
        # finetune mode keeps the frozen trunk in eval mode on purpose
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
        # ResumeDataOrder makes a mid-epoch resume exact; the state folder is ours to overwrite
        warnings.filterwarnings("ignore", message=r".*your dataloader is not resumable.*")
        warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
        trainer.fit(prep.module, datamodule=prep.datamodule, ckpt_path=None if resume is None else str(resume))
    return trainer, best


def _scores_targets(pred: pd.DataFrame, tasks: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    wide_s = pred.pivot(index="study_id", columns="task", values="score").reindex(columns=tasks)
    wide_t = pred.pivot(index="study_id", columns="task", values="target").reindex(columns=tasks)
    return (torch.tensor(wide_s.to_numpy(dtype=float)), torch.tensor(wide_t.to_numpy(dtype=float)))


def evaluate_best(prep: Prepared, checkpoint_path: str | os.PathLike, gpus: int | None = None) -> pd.DataFrame:
    """Reload the selected checkpoint, predict the val and test studies, record their metrics."""
    module, info, dm = prep.module, prep.info, prep.datamodule
    best = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    module.load_state_dict(best["state_dict"])
    step, epoch = int(best["global_step"]), int(best["epoch"])
    log.info("best checkpoint (by %s): step %d, epoch %d", prep.monitor, step, epoch)
    for h in module.history:
        info.add("history", "val", {k: v for k, v in h.items() if k not in ("step", "epoch")},
                 step=h["step"], epoch=h["epoch"])
    loader = getattr(dm, "predict_dataloader_of", dm.dataloader)  # echo: every clip of a video (test_clips)
    predictions = pd.concat([predict(module, loader(split), split, gpus=gpus)
                             for split in ("val", "test") if len(dm.datasets[split])], ignore_index=True)
    for split, part in predictions.groupby("split", sort=False):
        scores, targets = _scores_targets(part, info.tasks)
        metrics = task_metrics(scores, targets, info.tasks, prep.recipe.kind, prep.recipe.heart_failure_lvef)
        if prep.recipe.kind == "regression":  # the reference the method's MAE is judged against
            known = targets[:, 0][~torch.isnan(targets[:, 0])]
            metrics["mae_train_mean"] = float((known - module.hparams.target_mean).abs().mean())
        info.add("best", split, metrics, step=step, epoch=epoch, note=f"selected by {prep.monitor}")
    return predictions


def _budget_reached(trainer: L.Trainer, recipe: FinetuneRecipe) -> bool:
    budget = recipe.budget
    return trainer.global_step >= budget.max_steps if budget.by_steps else trainer.current_epoch >= budget.epochs


def run_finetune(
    experiment_yaml: PathLike,
    config: Mapping[str, Any],
    *,
    splits_csv: PathLike,
    studies_csv: PathLike,
    labels_csv: PathLike,
    pretrain_ckpt: PathLike | None,
    out_ckpt: PathLike,
    out_predictions: PathLike,
    out_metrics: PathLike,
    out_hparams: PathLike | None = None,
    gpus: int | None = None,
    threads: int | None = None,
    callbacks: Sequence[Callback] = (),
    disease: str | None = None,
) -> pd.DataFrame:
    """Train one experiment (or, with ``disease``, that disease's run of a ``task: diseases`` file), select on validation, write best.ckpt, predictions.csv, metrics.csv, hparams.yaml.

    A killed run's rerun resumes from ``<folder of out_ckpt>/state/last.ckpt`` (module
    docstring); ``callbacks`` are added to the Trainer's (e.g. a time or step limit).

    ``config`` is the validated pipeline configuration (sections labels, splits, data,
    models, pretrain, finetune and, for an external cohort, external); ``out_hparams``
    (default ``hparams.yaml`` beside ``out_ckpt``) receives the resolved recipe; ``gpus``
    the rule's ``resources.gpu`` (see :func:`cinefm.cluster.lightning_devices`); ``threads``
    caps torch's CPU threads during the run. Returns the predictions table (empty on DDP
    ranks other than 0).
    """
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    out_ckpt = Path(out_ckpt)
    out_hparams = Path(out_hparams) if out_hparams is not None else out_ckpt.parent / HPARAMS
    try:
        prep = prepare(experiment_yaml, config, splits_csv=splits_csv, studies_csv=studies_csv,
                       labels_csv=labels_csv, pretrain_ckpt=pretrain_ckpt, disease=disease)
        name = prep.recipe.experiment
        paths = RunPaths(out_ckpt.parent)
        paths.state.mkdir(parents=True, exist_ok=True)
        resume = find_resume_checkpoint(paths, prep.module.hparams.fingerprint)
        try:
            trainer, checkpoint = fit(prep, paths.state, gpus, resume=resume, callbacks=callbacks)
            if not trainer.is_global_zero:
                return pd.DataFrame()
            if not _budget_reached(trainer, prep.recipe):
                raise RuntimeError(f"experiment {name}: training stopped at step {trainer.global_step} before "
                                   f"its budget; rerun to resume from {paths.resume}")
            if not checkpoint.best_model_path:
                raise RuntimeError(f"experiment {name}: no checkpoint was selected "
                                   f"(no validation with a finite {prep.monitor})")
            predictions = evaluate_best(prep, checkpoint.best_model_path, gpus)
            write_csv(predictions, out_predictions)
            write_csv(prep.info.table(), out_metrics)
            prep.recipe.to_yaml(out_hparams)
            os.replace(checkpoint.best_model_path, out_ckpt)  # same file system: atomic
            shutil.rmtree(paths.state, ignore_errors=True)  # finished: a rerun starts over
        finally:
            close_readers(prep.datamodule)
    finally:
        torch.set_num_threads(previous_threads)
    log.info("experiment %s: wrote %s, %s, %s, %s", name, out_predictions, out_metrics, out_hparams, out_ckpt)
    return predictions


__all__ = ["HPARAMS", "METRIC_COLUMNS", "Prepared", "RunInfo", "evaluate_best", "fit", "prepare", "run_fingerprint",
           "run_finetune"]
