"""Downstream fine-tuning: LVEF regression and disease classification on multi-view studies.

One experiment (:mod:`cinefm.train.experiments`) = one run of :func:`run_finetune`:

1. checks before any training — the experiment file (schema, names), the initialisation
   (``clip``: the pre-training ``last.ckpt`` exists; ``kinetics``: ``models.video.weights``
   is set, or the config allows a random stand-in), and the targets (every task has at
   least one known label among the training studies);
2. builds :class:`~cinefm.models.heads.StudyModel` (video trunk → ``video_proj`` → gated
   attention MIL → head; LayerNorm on the view embeddings for classification), loads the
   init, applies the mode (``finetune``: trunk frozen; ``transfer``: all trainable);
3. trains with AdamW under Lightning (``finetune.lvef``: a step budget, validation every
   ``val_every_steps``; ``finetune.disease``: epochs, validation every epoch) and keeps the
   checkpoint with the best validation metric (MAE for LVEF; mean AUROC over the diseases
   whose validation labels hold both classes, else validation loss);
4. reloads that checkpoint once and writes ``predictions.csv`` for the validation and test
   studies, ``metrics.csv`` and ``best.ckpt``. The test split is never seen before.

Resume: while training, the output folder holds ``state/`` (not a declared output, so
Snakemake keeps it when a job is killed): ``state/last.ckpt``, written (atomically) after
every validation, and ``state/best.ckpt``, the best so far. A rerun of a killed job
continues from ``state/last.ckpt`` — same step budget or epoch count, the same batches in
the same order (:class:`ResumeDataOrder`), the best-so-far score and file carried over —
unless the checkpoint was written for another experiment, configuration or input files
(:func:`run_fingerprint`); then the old state is moved aside (``state.superseded.<n>``)
and training starts over. A finished run removes ``state/``.

Losses (pure functions below): LVEF — Huber loss on the z-scored target
``(y − μ_train) / σ_train`` (the head predicts z, scores are de-normalised to percent);
diseases — binary cross-entropy with ``pos_weight = n_neg / n_pos`` of the training split,
per disease, unknown labels (NaN) masked out; with ``finetune.disease.view_loss_weight`` > 0
(off in the method) every real view's own logits (:meth:`StudyModel.view_logits`) also get
their study's labels, a per-view BCE added with that weight. Metrics are torchmetrics': MAE, MSE and
heart-failure AUROC (reference LVEF < ``labels.heart_failure_lvef``, score = −predicted
LVEF) for LVEF; AUROC per disease.

``predictions.csv`` (one row per study and task; the statistics stage's input):
``study_id, patient_id, split (val|test), task, target (empty = unknown), score``
(predicted LVEF in percent, or the disease probability) and ``attn_<view>`` — the share of
the MIL attention that the study's clips of that view received (their attention summed;
the columns of a row sum to 1 over the views present, empty for absent views). With
``finetune.disease.attention: per_disease`` every disease has its own gated attention over
the same view embeddings (the method's attention maps differ per disease), so the shares
differ between the rows of one study; ``shared`` gives every disease the same attention.

``metrics.csv`` (long): ``experiment, task, init, init_effective, mode, fraction,
fraction_seed, seed, stage, split, step, epoch, metric, value, note`` with stage ``data``
(study counts, exclusions, pos_weight), ``history`` (every validation during training) and
``best`` (the selected checkpoint re-evaluated on val and test).
"""

from __future__ import annotations

import dataclasses
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
import torch.nn.functional as F
import yaml
from lightning.pytorch.callbacks import Callback
from torchmetrics.aggregation import CatMetric, MeanMetric
from torchmetrics.functional import mean_absolute_error, mean_squared_error
from torchmetrics.functional.classification import binary_auroc

from cinefm.atomic import write_csv
from cinefm.config import ConfigError
from cinefm.data.h5 import VIEWS
from cinefm.models.heads import (
    StudyModel,
    build_study_model,
    load_pretrained_video,
    set_mode,
    trainable_parameters,
)
from cinefm.models.video import build_video_encoder
from cinefm.train import recipes
from cinefm.train.callbacks import AtomicCheckpointIO
from cinefm.train.experiments import Experiment, ExperimentError, load_experiment
from cinefm.train.optim import SchedulerSpec, build_optimization
from cinefm.train.runs import RunPaths, config_fingerprint, find_resume_checkpoint, plain_data

log = logging.getLogger(__name__)

HEART_FAILURE = "heart_failure"
PREDICTION_COLUMNS = ["study_id", "patient_id", "split", "task", "target", "score"]
METRIC_COLUMNS = ["experiment", "task", "init", "init_effective", "mode", "fraction", "fraction_seed", "seed",
                  "stage", "split", "step", "epoch", "metric", "value", "note"]
PathLike = str | os.PathLike


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TaskSettings:
    """Training settings of one task family (config ``finetune.lvef`` or ``finetune.disease``)."""

    kind: str                 # regression | classification
    lr: float
    weight_decay: float
    precision: int | str
    max_steps: int = -1       # LVEF: step budget (-1 = by epochs)
    epochs: int = -1          # diseases: epochs (-1 = by steps)
    val_every_steps: int | None = None  # LVEF: validate every this many steps (None = every epoch)
    huber_delta: float = 1.0  # LVEF: Huber transition, in units of the training SD of LVEF
    scheduler: SchedulerSpec = SchedulerSpec()  # config schedule: none (constant, the method) | cosine
    attention: str = "shared"  # diseases: MIL attention shared by every disease | per_output (config per_disease)
    view_loss_weight: float = 0.0  # diseases: weight of the per-view BCE added to the study loss (0 = the method)

    @classmethod
    def from_config(cls, finetune: Mapping[str, Any], kind: str) -> TaskSettings:
        """Read ``finetune.lvef`` (regression) or ``finetune.disease`` (classification)."""
        if kind == "regression":
            s = finetune["lvef"]
            return cls(kind, float(s["lr"]), float(s["weight_decay"]), s["precision"],
                       max_steps=int(s["max_steps"]), val_every_steps=int(s["val_every_steps"]),
                       huber_delta=float(s["huber_delta"]), **_schedule(s))
        s = finetune["disease"]
        attention = {"per_disease": "per_output", "shared": "shared"}[str(s.get("attention", "shared"))]
        return cls(kind, float(s["lr"]), float(s["weight_decay"]), s["precision"], epochs=int(s["epochs"]),
                   attention=attention, view_loss_weight=float(s.get("view_loss_weight", 0.0)), **_schedule(s))


def _schedule(section: Mapping[str, Any]) -> dict[str, Any]:
    """Config ``schedule: constant | cosine`` (+ ``warmup_fraction``) as a scheduler spec."""
    name = str(section.get("schedule", "constant"))
    return {"scheduler": SchedulerSpec("none" if name == "constant" else name,
                                       warmup_fraction=float(section.get("warmup_fraction", 0.0)))}


@dataclass(frozen=True)
class InitPlan:
    """Where the video trunk's starting weights come from (``effective`` differs from the
    experiment's init only for the demo's random stand-in of missing Kinetics weights)."""

    effective: str                 # clip | kinetics | random
    checkpoint: Path | None = None  # clip: the pre-training last.ckpt
    note: str = ""


@dataclass
class RunInfo:
    """What a run records besides its predictions (goes to metrics.csv and best.ckpt)."""

    experiment: Experiment
    tasks: list[str]
    init: InitPlan
    fraction_seed: int
    rows: list[dict] = field(default_factory=list)

    def meta(self) -> dict:
        e = self.experiment
        return {"experiment": e.name, "task": e.task, "init": e.init, "init_effective": self.init.effective,
                "mode": e.mode, "fraction": e.fraction, "fraction_seed": self.fraction_seed, "seed": e.seed}

    def add(self, stage: str, split: str, metrics: Mapping[str, float], step: int | None = None,
            epoch: int | None = None, note: str = "") -> None:
        for name, value in metrics.items():
            self.rows.append({**self.meta(), "stage": stage, "split": split, "step": step, "epoch": epoch,
                              "metric": name, "value": float(value), "note": note})

    def table(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows, columns=METRIC_COLUMNS)
        return table.astype({"step": "Int64", "epoch": "Int64"})


# ----------------------------------------------------------------------------- pure core


def pos_weights(targets_nt: np.ndarray, tasks: Sequence[str]) -> tuple[np.ndarray, dict[str, str]]:
    """``n_neg / n_pos`` per task over the known (non-NaN) training labels.

    The weight of the positive term of BCE (PyTorch ``BCEWithLogitsLoss(pos_weight=...)``),
    which balances the classes as the method's "BCE weighted by the positive/negative
    ratio of the training set". A task without positives or without negatives gets 1.0
    and a note (its loss cannot be balanced).
    """
    weights, notes = np.ones(len(tasks)), {}
    for j, task in enumerate(tasks):
        col = targets_nt[:, j]
        pos, neg = int(np.sum(col == 1)), int(np.sum(col == 0))
        if pos and neg:
            weights[j] = neg / pos
        else:
            notes[task] = f"{task}: {pos} positive and {neg} negative training labels; pos_weight set to 1"
    return weights, notes


def masked_bce_with_logits(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    """Mean over known labels of ``−[w_j·y·log σ(z) + (1 − y)·log(1 − σ(z))]``; NaN targets are left out.

    ``logits``/``target`` are ``(B, n_tasks)``, ``pos_weight`` ``(n_tasks,)``. Returns 0 (with a
    gradient path) when no label of the batch is known.
    """
    known = ~torch.isnan(target)
    if not bool(known.any()):
        return logits.sum() * 0.0
    weight = pos_weight.to(logits.dtype).expand_as(logits)
    loss = F.binary_cross_entropy_with_logits(logits[known], target[known].to(logits.dtype),
                                              pos_weight=weight[known], reduction="mean")
    return loss


def huber_on_z(pred_z: torch.Tensor, target: torch.Tensor, mean: float, std: float, delta: float) -> torch.Tensor:
    """Huber loss (Huber 1964) between predicted ``z`` and ``(target − mean) / std``, known targets only."""
    known = ~torch.isnan(target)
    if not bool(known.any()):
        return pred_z.sum() * 0.0
    z = (target[known] - mean) / std
    return F.huber_loss(pred_z[known], z.to(pred_z.dtype), delta=delta)


def target_scaling(values: np.ndarray) -> tuple[float, float]:
    """Mean and SD (ddof 0; 1.0 when undefined or 0) of the known training targets."""
    known = values[~np.isnan(values)]
    if known.size == 0:
        raise ValueError("no known target to scale by")
    std = float(known.std())
    return float(known.mean()), std if std > 0 and math.isfinite(std) else 1.0


def task_metrics(scores_nt: torch.Tensor, targets_nt: torch.Tensor, tasks: Sequence[str], kind: str,
                 heart_failure_lvef: float) -> dict[str, float]:
    """Evaluation metrics of final scores (LVEF in percent, or probabilities) against targets.

    Regression: ``mae``, ``mse`` and ``auroc_heart_failure`` (label = target < cut-off,
    score = −prediction). Classification: ``auroc_<task>`` per task and their mean
    ``auroc`` over the tasks with both classes. An AUROC without both classes is NaN.
    """
    out: dict[str, float] = {}
    if kind == "regression":
        y, p = targets_nt[:, 0], scores_nt[:, 0]
        known = ~torch.isnan(y)
        y, p = y[known].double(), p[known].double()
        out["mae"] = float(mean_absolute_error(p, y)) if len(y) else math.nan
        out["mse"] = float(mean_squared_error(p, y)) if len(y) else math.nan
        out[f"auroc_{HEART_FAILURE}"] = _auroc(-p, (y < heart_failure_lvef).long())
        return out
    aucs = []
    for j, task in enumerate(tasks):
        y, p = targets_nt[:, j], scores_nt[:, j]
        known = ~torch.isnan(y)
        out[f"auroc_{task}"] = _auroc(p[known].double(), y[known].long())
        if not math.isnan(out[f"auroc_{task}"]):
            aucs.append(out[f"auroc_{task}"])
    out["auroc"] = float(np.mean(aucs)) if aucs else math.nan
    return out


def _auroc(score: torch.Tensor, label: torch.Tensor) -> float:
    if label.numel() == 0 or bool((label == 1).all()) or bool((label == 0).all()):
        return math.nan
    return float(binary_auroc(score, label))


def view_attention(attention_bk: torch.Tensor, views: Sequence[Sequence[str]]) -> list[dict[str, float]]:
    """Per study, the attention summed over its clips of each view: ``{view: share}`` (padding ``""`` left out)."""
    out = []
    for att_k, names in zip(attention_bk.detach().cpu().double().numpy(), views, strict=True):
        share: dict[str, float] = {}
        for a, view in zip(att_k, names, strict=True):
            if view:
                share[view] = share.get(view, 0.0) + float(a)
        out.append(share)
    return out


def selection_metric(kind: str, val_targets_nt: np.ndarray) -> tuple[str, str]:
    """``(monitor, mode)`` for choosing the best checkpoint on the validation split.

    LVEF: ``val/mae`` (min). Diseases: ``val/auroc`` (max) when at least one disease has
    both classes among the validation labels, else ``val/loss`` (min).
    """
    if kind == "regression":
        return "val/mae", "min"
    both = [bool(np.any(col == 1) and np.any(col == 0)) for col in val_targets_nt.T]
    if any(both):
        return "val/auroc", "max"
    log.warning("no disease has both classes among the validation labels: selecting the checkpoint "
                "by validation loss instead of AUROC")
    return "val/loss", "min"


def check_known_targets(targets_nt: np.ndarray, tasks: Sequence[str], *, experiment: str,
                        labels: str, n_train: int) -> None:
    """Every task needs a known label among the training studies; else fail before training."""
    for j, task in enumerate(tasks):
        if targets_nt.size == 0 or not np.any(~np.isnan(targets_nt[:, j])):
            raise ExperimentError(
                f"experiment {experiment}: task {task!r} has no known label among the {n_train} training "
                f"studies (column {task!r} of {labels} is empty for all of them) — fix the labels, or "
                "train on other tasks")


# ----------------------------------------------------------------------------- Lightning


class FinetuneModule(L.LightningModule):
    """A :class:`StudyModel` trained for LVEF regression or multi-label disease classification.

    Hyper-parameters are plain data (saved in the checkpoint); the video config is stored
    with ``weights: None`` because the trunk's initial weights come in through the state
    dict (:func:`init_weights`), not through a file path.
    """

    def __init__(self, *, video: Mapping[str, Any], projection_dim: int, mil_hidden: int, tasks: Sequence[str],
                 kind: str, mode: str, lr: float, weight_decay: float, pos_weight: Sequence[float] | None = None,
                 target_mean: float = 0.0, target_std: float = 1.0, huber_delta: float = 1.0,
                 heart_failure_lvef: float = 40.0, fingerprint: Mapping[str, Any] | None = None,
                 optimizer: Mapping[str, Any] | None = None, scheduler: Mapping[str, Any] | None = None,
                 attention: str = "shared", view_loss_weight: float = 0.0) -> None:
        super().__init__()
        if kind not in ("regression", "classification"):
            raise ValueError(f"kind must be 'regression' or 'classification', got {kind!r}")
        if view_loss_weight < 0 or (view_loss_weight > 0 and kind != "classification"):
            raise ValueError(f"view_loss_weight {view_loss_weight}: a per-view BCE needs kind 'classification' "
                             "and a weight >= 0")
        video = dict(video, weights=None)
        self.save_hyperparameters({"video": video, "projection_dim": projection_dim, "mil_hidden": mil_hidden,
                                   "tasks": list(tasks), "kind": kind, "mode": mode, "lr": lr,
                                   "weight_decay": weight_decay, "pos_weight": pos_weight,
                                   "target_mean": target_mean, "target_std": target_std,
                                   "huber_delta": huber_delta, "heart_failure_lvef": heart_failure_lvef,
                                   "fingerprint": fingerprint, "optimizer": optimizer, "scheduler": scheduler,
                                   "attention": attention, "view_loss_weight": view_loss_weight})
        self.model: StudyModel = build_study_model(video, projection_dim=projection_dim, n_outputs=len(tasks),
                                                   mil_hidden=mil_hidden, layer_norm=kind == "classification",
                                                   attention=attention)
        set_mode(self.model, mode)
        self.register_buffer("pos_weight", torch.tensor(pos_weight if pos_weight is not None
                                                        else [1.0] * len(tasks), dtype=torch.float32))
        self.val_scores = CatMetric(nan_strategy="disable")
        self.val_targets = CatMetric(nan_strategy="disable")
        self.val_loss = MeanMetric()
        self.history: list[dict] = []
        self.run_info: dict | None = None  # copied into every checkpoint (experiment, init, data)

    # scores in the units written to predictions.csv
    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """LVEF in percent (de-normalised z) or disease probabilities."""
        if self.hparams.kind == "regression":
            return logits * self.hparams.target_std + self.hparams.target_mean
        return torch.sigmoid(logits)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.hparams.kind == "regression":
            return huber_on_z(logits, target, self.hparams.target_mean, self.hparams.target_std,
                              self.hparams.huber_delta)
        return masked_bce_with_logits(logits, target, self.pos_weight)

    def forward(self, video: torch.Tensor, mask: torch.Tensor):
        return self.model(video, mask)

    def view_loss(self, views_bkp: torch.Tensor, mask_bk: torch.Tensor, target_bj: torch.Tensor) -> torch.Tensor:
        """BCE of every real view's own logits (:meth:`StudyModel.view_logits`) against its study's labels.

        Each view clip is one more weakly labelled instance: ``B·K`` labels per step instead of
        ``B``. Off in the method (``finetune.disease.view_loss_weight: 0``).
        """
        real_bk = mask_bk.bool()
        view_logits_nj = self.model.view_logits(views_bkp)[real_bk]
        view_target_nj = target_bj.unsqueeze(1).expand(-1, real_bk.shape[1], -1)[real_bk]
        return masked_bce_with_logits(view_logits_nj, view_target_nj, self.pos_weight)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.model(batch["video"], batch["mask"])
        loss = self.loss(out.logits, batch["target"])
        n = len(batch["study_id"])
        weight = self.hparams.view_loss_weight
        if weight > 0:
            view_loss = self.view_loss(out.views, batch["mask"], batch["target"])
            self.log("train/view_loss", view_loss, batch_size=n, on_step=True, on_epoch=False)
            loss = loss + weight * view_loss
        self.log("train/loss", loss, batch_size=n, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.model(batch["video"], batch["mask"])
        self.val_loss.update(self.loss(out.logits, batch["target"]).detach(), weight=len(batch["study_id"]))
        self.val_scores.update(self.scores(out.logits).detach().float())
        self.val_targets.update(batch["target"].float())

    def on_validation_epoch_end(self) -> None:
        scores, targets, loss = self.val_scores.compute(), self.val_targets.compute(), self.val_loss.compute()
        for metric in (self.val_scores, self.val_targets, self.val_loss):
            metric.reset()
        n_tasks = len(self.hparams.tasks)
        metrics = task_metrics(scores.reshape(-1, n_tasks), targets.reshape(-1, n_tasks), self.hparams.tasks,
                               self.hparams.kind, self.hparams.heart_failure_lvef)
        row = {"loss": float(loss), **metrics}
        for name, value in row.items():
            self.log(f"val/{name}", value)
        if self.trainer.sanity_checking:
            return
        self.history.append({"step": int(self.global_step), "epoch": int(self.current_epoch), **row})
        log.info("validation at step %d: %s", self.global_step,
                 ", ".join(f"{k}={v:.4g}" for k, v in row.items()))

    def configure_optimizers(self):
        # the experiment's own recipe (cinefm.train.optim), else AdamW with the config task's lr/wd
        optimizer = self.hparams.get("optimizer") or {"name": "adamw", "lr": self.hparams.lr,
                                                      "weight_decay": self.hparams.weight_decay}
        return build_optimization(trainable_parameters(self.model), optimizer, self.hparams.get("scheduler"),
                                  total_steps=int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["cinefm"] = {"run": self.run_info, "history": self.history}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resumed job carries on the validation history of the attempts before it."""
        self.history = list((checkpoint.get("cinefm") or {}).get("history") or [])


class ResumeDataOrder(Callback):
    """Let a restarted job train on exactly the batches the killed one had not reached.

    Every checkpoint records the epoch and how many of its batches were done; on resume the
    datamodule's training sampler continues that epoch's seeded order from there
    (:meth:`cinefm.data.datamodules.StudyDataModule.resume_train_at`), instead of
    Lightning's default of replaying the epoch from its first batch.
    """

    KEY = "cinefm_data_order"

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)
        checkpoint[self.KEY] = {"epoch": int(trainer.current_epoch), "batches": done,
                                "n_batches": int(trainer.num_training_batches)}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get(self.KEY)
        datamodule = trainer.datamodule
        if not state or not hasattr(datamodule, "resume_train_at"):
            return
        epoch, done = state["epoch"], state["batches"]
        if done >= state["n_batches"]:  # saved at the end of an epoch: the next one starts afresh
            epoch, done = epoch + 1, 0
        datamodule.resume_train_at(epoch, done)
        log.info("resuming the training data at epoch %d after %d batches", epoch, done)


# ----------------------------------------------------------------------------- resume


def run_fingerprint(exp: Experiment, config: Mapping[str, Any], fraction_seed: int,
                    inputs: Mapping[str, PathLike | None]) -> dict[str, Any]:
    """What a checkpoint must agree with to be resumed: the experiment file's keys, the
    configuration the job trains under (:func:`cinefm.train.runs.config_fingerprint` of the
    ``finetune`` section, plus ``labels``) and the size and modification time of every input
    file (a new pre-training checkpoint or new labels make Snakemake rerun the job: it must
    start over, not continue a model trained on the old ones)."""
    finetune = {k: v for k, v in config["finetune"].items() if k not in ("select", "experiments")}
    fingerprint = config_fingerprint({**config, "finetune": finetune}, section="finetune")
    experiment = yaml.safe_load(Path(exp.path).read_text()) or {}
    fingerprint["experiment"] = {**{str(k): v for k, v in experiment.items()}, "fraction_seed": fraction_seed}
    # the recipe as trained: the file's keys after the config's overrides (echo demo settings)
    fingerprint["recipe"] = plain_data({k: v for k, v in dataclasses.asdict(exp).items() if k != "path"})
    fingerprint["labels"] = {"diseases": list(config["labels"]["diseases"]),
                             "heart_failure_lvef": config["labels"]["heart_failure_lvef"]}
    files = {}
    for name, path in sorted(inputs.items()):
        stat = Path(path).stat() if path is not None and Path(path).is_file() else None
        files[name] = [stat.st_size, stat.st_mtime_ns] if stat else None
    fingerprint["inputs"] = files
    return fingerprint


# ----------------------------------------------------------------------------- init


def plan_init(exp: Experiment, config: Mapping[str, Any], pretrain_ckpt: PathLike | None) -> InitPlan:
    """Decide (without training anything) where the trunk's weights come from; fail early if they can't."""
    if exp.init == "clip":
        if pretrain_ckpt is None or not Path(pretrain_ckpt).is_file():
            raise ExperimentError(f"{exp.path}: init 'clip' needs the pre-training checkpoint, but "
                                  f"{pretrain_ckpt} does not exist — run the pretrain rule first")
        check_clip_input(pretrain_ckpt, config["data"] if exp.cohort == "cmr" else {})
        return InitPlan("clip", Path(pretrain_ckpt))
    if exp.init == "kinetics" and config["models"]["video"].get("weights") is None:
        if not config["finetune"]["allow_random_baseline"]:
            raise ConfigError(
                f"{exp.path}: init 'kinetics' needs Kinetics-400 weights but config models.video.weights is "
                "null — place torchvision's .pth there (see shared recipes / cinefm.models.weights), or, for "
                "a demo without weights, set finetune.allow_random_baseline: true")
        note = ("models.video.weights is null: the kinetics baseline was initialised at random "
                "(finetune.allow_random_baseline: true; demo only, not the method's baseline)")
        log.warning("%s: %s", exp.name, note)
        return InitPlan("random", note=note)
    return InitPlan(exp.init)


# data keys that shape the clip a pre-trained encoder saw -> the value when a checkpoint does not record it
CLIP_INPUT_KEYS = {"mean": 0.45, "std": 0.225, "motion_gain": 0.0, "motion_crop": 1.0}


def check_clip_input(pretrain_ckpt: PathLike, data_cfg: Mapping[str, Any]) -> None:
    """Fail if the checkpoint was pre-trained on clips normalised or laid out differently.

    The pre-training run records its ``data`` section in the checkpoint's hyper-parameters
    (``fingerprint``); ``mean``, ``std``, ``motion_gain`` and ``motion_crop`` must equal ``data_cfg``'s (an
    absent key counts as the method's value). A plain state dict records nothing and passes.
    """
    try:
        # mmap: only the hyper-parameters are read here; the weights are loaded once, by init_weights
        ckpt = torch.load(pretrain_ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - unreadable files fail with their own message at load time
        log.warning("%s: could not read its hyper-parameters (%s); input layout not checked", pretrain_ckpt, err)
        return
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, Mapping) else None
    recorded = ((hparams or {}).get("fingerprint") or {}).get("data")
    if recorded is None:
        log.info("%s records no data section; clip input layout not checked", pretrain_ckpt)
        return
    differ = {k: (recorded.get(k, d), data_cfg.get(k, d)) for k, d in CLIP_INPUT_KEYS.items()
              if float(recorded.get(k, d)) != float(data_cfg.get(k, d))}
    if differ:
        detail = ", ".join(f"data.{k}: checkpoint {a}, now {b}" for k, (a, b) in differ.items())
        raise ConfigError(f"{pretrain_ckpt} was pre-trained on clips laid out differently ({detail}); "
                          "fine-tune with the pre-training run's data settings or pre-train again")


def init_weights(module: FinetuneModule, plan: InitPlan, video_cfg: Mapping[str, Any]) -> None:
    """Load the planned starting weights into the module's trunk (and projection for ``clip``)."""
    if plan.effective == "clip":
        load_pretrained_video(module.model, plan.checkpoint)
    elif plan.effective == "kinetics":
        trunk = build_video_encoder(**video_cfg)  # resolves and loads models.video.weights
        module.model.video.load_state_dict(trunk.state_dict())
        log.info("video trunk initialised from %s", video_cfg.get("weights"))
    else:
        log.info("video trunk initialised at random")


# ----------------------------------------------------------------------------- predictions


@torch.inference_mode()
def predict(module: FinetuneModule, loader, split: str) -> pd.DataFrame:
    """One row per study and task: ids, split, task, target, score and ``attn_<view>`` shares."""
    module.eval()
    device = module.device
    tasks = list(module.hparams.tasks)
    rows = []
    for batch in loader:
        out = module.model(batch["video"].to(device), batch["mask"].to(device))
        scores = module.scores(out.logits).float().cpu().numpy()
        targets = batch["target"].float().cpu().numpy()
        if out.attention.dim() == 3:  # per-disease attention (B, tasks, K)
            shares = [view_attention(out.attention[:, j], batch["views"]) for j in range(len(tasks))]
        else:                         # one attention (B, K) for every task
            shares = [view_attention(out.attention, batch["views"])] * len(tasks)
        for i, study in enumerate(batch["study_id"]):
            for j, task in enumerate(tasks):
                attn = {f"attn_{v}": s for v, s in shares[j][i].items()}
                rows.append({"study_id": study, "patient_id": batch["patient_id"][i], "split": split,
                             "task": task, "target": targets[i, j], "score": scores[i, j], **attn})
    table = pd.DataFrame(rows)
    views = list(VIEWS) + sorted({c[5:] for c in table.columns if c.startswith("attn_")} - set(VIEWS))
    return table.reindex(columns=PREDICTION_COLUMNS + [f"attn_{v}" for v in views])


def _scores_targets(pred: pd.DataFrame, tasks: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    wide_s = pred.pivot(index="study_id", columns="task", values="score").reindex(columns=tasks)
    wide_t = pred.pivot(index="study_id", columns="task", values="target").reindex(columns=tasks)
    return (torch.tensor(wide_s.to_numpy(dtype=float)), torch.tensor(wide_t.to_numpy(dtype=float)))


# ----------------------------------------------------------------------------- run


def _datamodule(exp: Experiment, config: Mapping[str, Any], tasks: list[str], fraction_seed: int,
                splits_csv: PathLike, studies_csv: PathLike, labels_csv: PathLike):
    if exp.cohort != "cmr":  # external cohort: its release split, one view (cinefm.data.echo)
        from cinefm.data.echo import EchoDataModule

        return EchoDataModule.from_experiment(exp, config, tasks, studies_csv=studies_csv, labels_csv=labels_csv,
                                              num_workers=int(config["finetune"]["num_workers"]))
    from cinefm.data.datamodules import StudyDataModule

    return StudyDataModule.from_config(
        config, tasks, splits_csv=splits_csv, studies_csv=studies_csv, labels_csv=labels_csv,
        train_fraction=exp.fraction, fraction_seed=fraction_seed,
        num_workers=int(config["finetune"]["num_workers"]))


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


def _trainer_kwargs(settings: TaskSettings, n_train_batches: int, gpus: int | None) -> dict:
    from cinefm.cluster import lightning_devices
    from cinefm.train.runs import resolve_precision

    devices = lightning_devices(requested=gpus)
    kwargs: dict[str, Any] = dict(devices, precision=resolve_precision(settings.precision, devices["accelerator"]),
                                  logger=False, enable_progress_bar=False, enable_model_summary=False,
                                  num_sanity_val_steps=0, log_every_n_steps=max(1, min(50, n_train_batches)))
    if settings.max_steps > 0:  # LVEF step budget; epochs for diseases and recipe experiments
        every = max(1, min(settings.val_every_steps or n_train_batches, settings.max_steps))
        kwargs.update(max_steps=settings.max_steps, max_epochs=-1, val_check_interval=every,
                      check_val_every_n_epoch=None)
    else:
        kwargs.update(max_epochs=settings.epochs, check_val_every_n_epoch=1)
    return kwargs


@dataclass
class Prepared:
    """Everything checked and built before training starts."""

    info: RunInfo
    settings: TaskSettings
    datamodule: Any
    module: FinetuneModule
    monitor: str
    direction: str


def prepare(experiment_yaml: PathLike, config: Mapping[str, Any], *, splits_csv: PathLike,
            studies_csv: PathLike, labels_csv: PathLike, pretrain_ckpt: PathLike | None) -> Prepared:
    """Validate the experiment, plan the init, load the data and targets, build the module.

    Every check that can fail without training fails here: experiment file, init source,
    a known label per task among the training studies, a non-empty validation split.
    """
    diseases = list(config["labels"]["diseases"])
    exp = load_experiment(experiment_yaml, diseases)
    exp, config = recipes.apply_recipe(exp, config)  # the experiment's own encoder/clip/batch, if any
    tasks = exp.tasks(diseases)
    plan = plan_init(exp, config, pretrain_ckpt)
    fraction_seed = exp.fraction_seed if exp.fraction_seed is not None else int(config["splits"]["fraction_seed"])
    info = RunInfo(exp, tasks, plan, fraction_seed)
    settings = recipes.recipe_settings(TaskSettings.from_config(config["finetune"], exp.kind), exp)
    log.info("experiment %s: task %s (%s), init %s (effective %s), mode %s, fraction %g (seed %d), seed %d",
             exp.name, exp.task, ", ".join(tasks), exp.init, plan.effective, exp.mode, exp.fraction,
             fraction_seed, exp.seed)

    dm = _datamodule(exp, config, tasks, fraction_seed, splits_csv, studies_csv, labels_csv)
    dm.setup("fit")
    train_targets = dm.datasets["train"].targets
    check_known_targets(train_targets, tasks, experiment=exp.name, labels=str(labels_csv),
                        n_train=len(dm.datasets["train"]))
    if len(dm.datasets["val"]) == 0:
        raise ExperimentError(f"experiment {exp.name}: no validation study with a known target — model "
                              "selection needs the downstream val split (more patients or splits.downstream.val)")
    if len(dm.datasets["test"]) == 0:
        log.warning("experiment %s: the test split holds no study with a known target; predictions.csv "
                    "will hold validation rows only", exp.name)

    pos_weight, mean, std = None, 0.0, 1.0
    if exp.kind == "classification":
        pos_weight, notes = pos_weights(train_targets, tasks)
        for note in notes.values():
            log.warning("experiment %s: %s", exp.name, note)
    else:
        mean, std = target_scaling(train_targets[:, 0])
    _data_rows(info, dm, train_targets, pos_weight)

    fingerprint = run_fingerprint(exp, config, fraction_seed, {
        "splits": splits_csv, "studies": studies_csv, "labels": labels_csv, "pretrain": pretrain_ckpt})
    L.seed_everything(exp.seed, workers=True, verbose=False)
    module = FinetuneModule(
        video=config["models"]["video"], projection_dim=int(config["models"]["projection_dim"]),
        mil_hidden=int(config["finetune"]["mil_hidden"]), tasks=tasks, kind=exp.kind, mode=exp.mode,
        lr=settings.lr, weight_decay=settings.weight_decay,
        pos_weight=None if pos_weight is None else pos_weight.tolist(), target_mean=mean, target_std=std,
        huber_delta=settings.huber_delta, heart_failure_lvef=float(config["labels"]["heart_failure_lvef"]),
        fingerprint=fingerprint, attention=settings.attention, view_loss_weight=settings.view_loss_weight,
        **recipes.optimization_hparams(exp, settings.scheduler))
    init_weights(module, plan, config["models"]["video"])
    module.run_info = {**info.meta(), "tasks": tasks, "init_note": plan.note, "experiment_file": str(exp.path)}
    monitor, direction = selection_metric(exp.kind, dm.datasets["val"].targets)
    return Prepared(info, settings, dm, module, monitor, direction)


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
    kwargs = _trainer_kwargs(prep.settings, n_batches, gpus)
    kwargs["plugins"] = [*kwargs.get("plugins", []), AtomicCheckpointIO()]  # a kill never truncates a file
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


def evaluate_best(prep: Prepared, checkpoint_path: str | os.PathLike) -> pd.DataFrame:
    """Reload the selected checkpoint, predict the val and test studies, record their metrics."""
    module, info, dm = prep.module, prep.info, prep.datamodule
    best = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    module.load_state_dict(best["state_dict"])
    step, epoch = int(best["global_step"]), int(best["epoch"])
    log.info("best checkpoint (by %s): step %d, epoch %d", prep.monitor, step, epoch)
    for h in module.history:
        info.add("history", "val", {k: v for k, v in h.items() if k not in ("step", "epoch")},
                 step=h["step"], epoch=h["epoch"])
    predictions = pd.concat([predict(module, dm.dataloader(split), split) for split in ("val", "test")
                             if len(dm.datasets[split])], ignore_index=True)
    for split, part in predictions.groupby("split", sort=False):
        scores, targets = _scores_targets(part, info.tasks)
        metrics = task_metrics(scores, targets, info.tasks, module.hparams.kind, module.hparams.heart_failure_lvef)
        if module.hparams.kind == "regression":  # the reference the method's MAE is judged against
            known = targets[:, 0][~torch.isnan(targets[:, 0])]
            metrics["mae_train_mean"] = float((known - module.hparams.target_mean).abs().mean())
        info.add("best", split, metrics, step=step, epoch=epoch, note=f"selected by {prep.monitor}")
    return predictions


def close_readers(datamodule) -> None:
    """Close the HDF5 handles the datamodule's datasets opened in this process."""
    for dataset in getattr(datamodule, "datasets", {}).values():
        reader = getattr(dataset, "reader", None)
        if hasattr(reader, "close"):
            reader.close()


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
    gpus: int | None = None,
    threads: int | None = None,
    callbacks: Sequence[Callback] = (),
) -> pd.DataFrame:
    """Train one experiment, select on validation, write best.ckpt, predictions.csv, metrics.csv.

    A killed run's rerun resumes from ``<folder of out_ckpt>/state/last.ckpt`` (module
    docstring); ``callbacks`` are added to the Trainer's (e.g. a time or step limit).

    ``config`` is the validated pipeline configuration (sections labels, splits, data,
    models, finetune); ``gpus`` the rule's ``resources.gpu`` (see
    :func:`cinefm.cluster.lightning_devices`); ``threads`` caps torch's CPU threads during
    the run. Returns the predictions table (empty on DDP ranks other than 0).
    """
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    out_ckpt = Path(out_ckpt)
    try:
        prep = prepare(experiment_yaml, config, splits_csv=splits_csv, studies_csv=studies_csv,
                       labels_csv=labels_csv, pretrain_ckpt=pretrain_ckpt)
        paths = RunPaths(out_ckpt.parent)
        paths.state.mkdir(parents=True, exist_ok=True)
        resume = find_resume_checkpoint(paths, prep.module.hparams.fingerprint)
        try:
            trainer, checkpoint = fit(prep, paths.state, gpus, resume=resume, callbacks=callbacks)
            if not trainer.is_global_zero:
                return pd.DataFrame()
            if (trainer.global_step < prep.settings.max_steps if prep.settings.kind == "regression"
                    else trainer.current_epoch < prep.settings.epochs):
                raise RuntimeError(f"experiment {prep.info.experiment.name}: training stopped at step "
                                   f"{trainer.global_step} before its budget; rerun to resume from "
                                   f"{paths.resume}")
            if not checkpoint.best_model_path:
                raise RuntimeError(f"experiment {prep.info.experiment.name}: no checkpoint was selected "
                                   f"(no validation with a finite {prep.monitor})")
            predictions = evaluate_best(prep, checkpoint.best_model_path)
            write_csv(predictions, out_predictions)
            write_csv(prep.info.table(), out_metrics)
            os.replace(checkpoint.best_model_path, out_ckpt)  # same file system: atomic
            shutil.rmtree(paths.state, ignore_errors=True)  # finished: a rerun starts over
        finally:
            close_readers(prep.datamodule)
    finally:
        torch.set_num_threads(previous_threads)
    log.info("experiment %s: wrote %s, %s, %s", prep.info.experiment.name, out_predictions, out_metrics, out_ckpt)
    return predictions


__all__ = [
    "FinetuneModule", "InitPlan", "Prepared", "ResumeDataOrder", "TaskSettings", "close_readers", "evaluate_best",
    "fit", "run_fingerprint",
    "prepare", "check_known_targets", "huber_on_z", "init_weights",
    "masked_bce_with_logits", "plan_init", "pos_weights", "predict", "run_finetune", "selection_metric",
    "target_scaling", "task_metrics", "view_attention",
]
