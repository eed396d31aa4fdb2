"""Fine-tuning objectives and metrics: pure functions of arrays and tensors (no Lightning, no I/O).

Losses: LVEF — :func:`regression_loss`: Huber loss (Huber 1964; PyTorch's ``huber_loss``,
default δ = 1) on LVEF in percentage points (``target_scale: percent``, the method: the head's
single linear output is LVEF in percent, its bias initialised to the training mean) or on the
z-scored target ``(y − μ_train) / σ_train`` (``target_scale: zscore``: the head predicts z,
scores are de-normalised to percent; δ is then in training SDs); or MSE (EchoNet-Dynamic's
recipe); diseases — binary
cross-entropy with ``pos_weight = n_neg / n_pos`` of the training split, per disease,
unknown labels (NaN) masked out. Metrics: MAE, MSE and heart-failure AUROC (reference
LVEF < ``labels.heart_failure_lvef``, score = −predicted LVEF) for LVEF; AUROC per
disease and their mean. Every AUROC is :func:`cinefm.stats.roc.auroc`, the one the
statistics tables report (it matches R pROC).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cinefm.stats.roc import auroc
from cinefm.train.experiments import ExperimentError

log = logging.getLogger(__name__)

HEART_FAILURE = "heart_failure"


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


REGRESSION_LOSSES = ("huber", "mse")
TARGET_SCALES = ("percent", "zscore")


def regression_loss(pred: torch.Tensor, target: torch.Tensor, *, loss: str, scale: str, mean: float, std: float,
                    delta: float = 1.0) -> torch.Tensor:
    """The LVEF loss over known targets (module docstring).

    ``pred`` is the head's output: LVEF in percent (``scale='percent'``) or z (``'zscore'``);
    ``target`` is LVEF in percent (NaN = unknown). ``loss``: ``huber`` (transition ``delta``, in
    the units of ``scale``) or ``mse``.
    """
    if loss not in REGRESSION_LOSSES or scale not in TARGET_SCALES:
        raise ValueError(f"regression loss {loss!r} / target scale {scale!r}: expected one of "
                         f"{REGRESSION_LOSSES} / {TARGET_SCALES}")
    if scale == "zscore" and loss == "huber":
        return huber_on_z(pred, target, mean, std, delta)
    known = ~torch.isnan(target)
    if not bool(known.any()):
        return pred.sum() * 0.0
    y = target[known] if scale == "percent" else (target[known] - mean) / std
    y = y.to(pred.dtype)
    if loss == "mse":
        return F.mse_loss(pred[known], y)
    return F.huber_loss(pred[known], y, delta=delta)


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
        out["mae"] = float((p - y).abs().mean()) if len(y) else math.nan
        out["mse"] = float(((p - y) ** 2).mean()) if len(y) else math.nan
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
    """:func:`cinefm.stats.roc.auroc`, NaN without both classes (a validation split may lack one)."""
    if label.numel() == 0 or bool((label == 1).all()) or bool((label == 0).all()):
        return math.nan
    return auroc(label.cpu().numpy(), score.cpu().numpy())


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


def selection_metric(kind: str, val_targets_nt: np.ndarray, select_by: str = "metric") -> tuple[str, str]:
    """``(monitor, mode)`` for choosing the best checkpoint on the validation split.

    ``select_by: loss``: ``val/loss`` (min), as EchoNet-Dynamic keeps its best validation loss.
    LVEF: ``val/mae`` (min). Diseases: ``val/auroc`` (max) when at least one disease has
    both classes among the validation labels, else ``val/loss`` (min).
    """
    if select_by == "loss":
        return "val/loss", "min"
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


__all__ = ["HEART_FAILURE", "REGRESSION_LOSSES", "TARGET_SCALES", "check_known_targets", "huber_on_z",
           "regression_loss", "masked_bce_with_logits", "pos_weights",
           "selection_metric", "target_scaling", "task_metrics", "view_attention"]
