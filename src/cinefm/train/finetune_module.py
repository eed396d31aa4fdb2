"""The fine-tuning LightningModule (:class:`FinetuneModule`), its resume callback, and predictions.

:class:`FinetuneModule` trains a :class:`~cinefm.models.heads.StudyModel` (video trunk →
``video_proj`` → gated-attention MIL → head; LayerNorm on the view embeddings for
classification) for LVEF regression or multi-label disease classification, as its
:class:`~cinefm.train.recipe.FinetuneRecipe` says (losses and metrics:
:mod:`cinefm.train.objectives`). ``predict_step`` returns one row per study and task;
:func:`predict_batch` runs it on one batch (the run's val/test predictions, the external tests and
``cinefm predict`` all go through it) and :func:`predict` over a loader into the ``predictions.csv`` table:

``experiment, cohort, init, mode, fraction`` (the experiment's identity),
``study_id, patient_id, split (val|test), task, target (empty = unknown), score``
(predicted LVEF in percent, or the disease probability) and ``attn_<view>`` — the share of
the MIL attention that the study's clips of that view received (their attention summed;
the columns of a row sum to 1 over the views present, empty for absent views). With
``attention: per_output`` every task has its own gated attention over the same view
embeddings, so the shares differ between the rows of one study.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from torchmetrics.aggregation import CatMetric, MeanMetric

from cinefm.data.h5 import VIEWS
from cinefm.models.heads import StudyModel, build_study_model, set_mode, trainable_parameters
from cinefm.train.objectives import (
    masked_bce_with_logits,
    regression_loss,
    task_metrics,
    view_attention,
)
from cinefm.train.optim import build_optimization
from cinefm.train.recipe import FinetuneRecipe

log = logging.getLogger(__name__)

IDENTITY_COLUMNS = ["experiment", "cohort", "init", "mode", "fraction"]
PREDICTION_COLUMNS = [*IDENTITY_COLUMNS, "study_id", "patient_id", "split", "task", "target", "score"]


class FinetuneModule(L.LightningModule):
    """A :class:`StudyModel` trained as ``recipe`` says (module docstring).

    Hyper-parameters (saved in the checkpoint) are the recipe's fields, with
    ``video.weights`` set to None — the trunk's starting weights come in through the state
    dict (:func:`cinefm.train.initialization.init_weights`), not through a file path — plus
    what the training data fixed: ``pos_weight`` (classification), ``target_mean`` and
    ``target_std`` (regression) and the resume ``fingerprint``. ``load_from_checkpoint``
    passes them back as keywords; :attr:`recipe` rebuilds the recipe from them.
    """

    def __init__(self, recipe: FinetuneRecipe | None = None, *, pos_weight: Sequence[float] | None = None,
                 target_mean: float = 0.0, target_std: float = 1.0,
                 fingerprint: Mapping[str, Any] | None = None, **recipe_fields: Any) -> None:
        super().__init__()
        if recipe is None:  # load_from_checkpoint: the saved fields
            recipe = FinetuneRecipe.from_dict(recipe_fields)
        elif recipe_fields:
            raise TypeError(f"FinetuneModule: pass a recipe or its fields, not both ({sorted(recipe_fields)})")
        if recipe.kind not in ("regression", "classification"):
            raise ValueError(f"kind must be 'regression' or 'classification', got {recipe.kind!r}")
        if recipe.view_loss_weight < 0 or (recipe.view_loss_weight > 0 and recipe.kind != "classification"):
            raise ValueError(f"view_loss_weight {recipe.view_loss_weight}: a per-view BCE needs kind "
                             "'classification' and a weight >= 0")
        fields = recipe.to_dict()
        fields["video"] = {**fields["video"], "weights": None}
        self.save_hyperparameters({**fields, "pos_weight": None if pos_weight is None else list(pos_weight),
                                   "target_mean": float(target_mean), "target_std": float(target_std),
                                   "fingerprint": fingerprint})
        self.model: StudyModel = build_study_model(
            fields["video"], projection_dim=recipe.projection_dim, n_outputs=len(recipe.tasks),
            mil_hidden=recipe.mil_hidden, layer_norm=recipe.kind == "classification", attention=recipe.attention,
            trunk_chunk=recipe.trunk_chunk, trunk_checkpoint=recipe.trunk_checkpoint)
        if recipe.kind == "regression" and recipe.target_scale == "percent":
            # one linear output in percent, its bias the training mean (EchoNet-Dynamic: video.py)
            with torch.no_grad():
                self.model.head.bias.fill_(float(target_mean))
        set_mode(self.model, recipe.mode)
        self.register_buffer("pos_weight", torch.tensor(pos_weight if pos_weight is not None
                                                        else [1.0] * len(recipe.tasks), dtype=torch.float32))
        self.val_scores = CatMetric(nan_strategy="disable")
        self.val_targets = CatMetric(nan_strategy="disable")
        self.val_loss = MeanMetric()
        self.history: list[dict] = []
        self.run_info: dict | None = None  # copied into every checkpoint (experiment, init, data)
        self.predict_split = "test"  # the split label of predict_step's rows (set by predict)

    @property
    def recipe(self) -> FinetuneRecipe:
        """The recipe this module was built from (``video.weights`` as saved: None)."""
        names = set(FinetuneRecipe.__dataclass_fields__)
        return FinetuneRecipe.from_dict({k: v for k, v in self.hparams.items() if k in names})

    # scores in the units written to predictions.csv
    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """LVEF in percent (the output itself, or de-normalised z) or disease probabilities."""
        if self.hparams.kind == "regression":
            if self.hparams.get("target_scale", "zscore") == "percent":
                return logits
            return logits * self.hparams.target_std + self.hparams.target_mean
        return torch.sigmoid(logits)

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.hparams.kind == "regression":
            return regression_loss(logits, target, loss=self.hparams.get("regression_loss", "huber"),
                                   scale=self.hparams.get("target_scale", "zscore"),
                                   mean=self.hparams.target_mean, std=self.hparams.target_std,
                                   delta=self.hparams.huber_delta)
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
        # one line per validation, in the job's log and on the terminal: which run, how far, how good
        name = (self.run_info or {}).get("experiment", "fine-tuning")
        budget = self.trainer.max_steps if self.trainer.max_steps > 0 else self.trainer.estimated_stepping_batches
        log.info("%s: validation at step %d/%d (epoch %d): %s", name, self.global_step, budget,
                 self.current_epoch + 1, ", ".join(f"{k}={v:.4g}" for k, v in row.items()))

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> list[dict]:
        """One row per study and task of the batch (the columns of ``predictions.csv``).

        With the recipe's ``test_clips: all`` (EchoNet-Dynamic) the ``K`` clips of a study are clips
        of one video, not views: the output is the mean of each clip's own output (the head is
        affine, so this is the mean of the per-clip predictions) and the video's one view gets
        attention share 1.
        """
        if (self.hparams.data or {}).get("test_clips", "one") == "all":
            out = self._clip_average(batch["video"], batch["mask"])
        else:
            out = self.model(batch["video"], batch["mask"])
        scores = self.scores(out.logits).float().cpu().numpy()
        targets = batch["target"].float().cpu().numpy()
        tasks = list(self.hparams.tasks)
        if out.attention.dim() == 3:  # per-task attention (B, tasks, K)
            shares = [view_attention(out.attention[:, j], batch["views"]) for j in range(len(tasks))]
        else:                         # one attention (B, K) for every task
            shares = [view_attention(out.attention, batch["views"])] * len(tasks)
        identity = {k: self.hparams[k] for k in IDENTITY_COLUMNS}
        return [{**identity, "study_id": study, "patient_id": batch["patient_id"][i], "split": self.predict_split,
                 "task": task, "target": targets[i, j], "score": scores[i, j],
                 **{f"attn_{v}": s for v, s in shares[j][i].items()}}
                for i, study in enumerate(batch["study_id"]) for j, task in enumerate(tasks)]

    def _clip_average(self, video: torch.Tensor, mask: torch.Tensor):
        from cinefm.models.heads import StudyOutput

        real = mask.bool()
        views = self.model.embed_views(video, real)
        per_clip = self.model.view_logits(views)                        # (B, K, n_outputs)
        weight = real.to(per_clip.dtype) / real.sum(1, keepdim=True)    # (B, K): 1 / n_clips on real clips
        logits = torch.einsum("bkj,bk->bj", per_clip, weight)
        # the clips are one view's: its attention share is 1 (held by the first slot, exactly)
        attention = torch.zeros_like(weight)
        attention[:, 0] = 1.0
        return StudyOutput(logits, attention, views)

    def configure_optimizers(self):
        return build_optimization(trainable_parameters(self.model), self.hparams.optimizer, self.hparams.scheduler,
                                  total_steps=int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["cinefm"] = {"run": self.run_info, "history": self.history}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resumed job carries on the validation history of the attempts before it."""
        self.history = list((checkpoint.get("cinefm") or {}).get("history") or [])


def prediction_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``predictions.csv`` columns (module docstring) from ``predict_step`` rows, views in canonical order."""
    table = pd.DataFrame(list(rows))
    views = list(VIEWS) + sorted({c[5:] for c in table.columns if c.startswith("attn_")} - set(VIEWS))
    return table.reindex(columns=PREDICTION_COLUMNS + [f"attn_{v}" for v in views])


def predict_device(gpus: int | None = None) -> torch.device:
    """Where a selected model predicts (the fine-tuning run's val/test, the external tests): one GPU unless
    ``gpus`` is 0 or none is visible, else the CPU; full precision either way."""
    return torch.device("cuda" if (gpus is None or gpus > 0) and torch.cuda.is_available() else "cpu")


def predict_batch(module: FinetuneModule, batch: Mapping[str, Any], batch_idx: int = 0) -> list[dict]:
    """The rows of one collated batch (:meth:`FinetuneModule.predict_step`), on the module's device, without
    autograd: the one place a selected model scores studies — :func:`predict` (the run, the external tests)
    and ``cinefm predict`` (:func:`cinefm.inference.predict.score_studies`) both call it."""
    device = next(module.parameters()).device
    moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with torch.inference_mode():
        return module.predict_step(moved, batch_idx)


def predict(module: FinetuneModule, loader, split: str, *, gpus: int | None = None) -> pd.DataFrame:
    """Predict every study of ``loader`` in eval mode on :func:`predict_device` of ``gpus`` (batch by batch,
    :func:`predict_batch`); rows labelled ``split``, the columns of ``predictions.csv``. The module's
    training mode is restored afterwards."""
    training = module.training
    module.to(predict_device(gpus)).eval()
    module.predict_split = split
    rows: list[dict] = []
    try:
        for i, batch in enumerate(loader):
            rows += predict_batch(module, batch, i)
    finally:
        module.train(training)
    return prediction_table(rows)


class ResumeDataOrder(Callback):
    """Let a restarted job train on exactly the batches the killed one had not reached.

    Every checkpoint records the epoch and how many of its batches were done; on resume the
    datamodule's training sampler continues that epoch's seeded order from there
    (:meth:`cinefm.data.datamodules.StudyLoaders.resume_train_at`), instead of
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


__all__ = ["IDENTITY_COLUMNS", "PREDICTION_COLUMNS", "FinetuneModule", "ResumeDataOrder", "predict", "predict_batch",
           "predict_device",
           "prediction_table"]
