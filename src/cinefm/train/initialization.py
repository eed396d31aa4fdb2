"""Where a fine-tuning run's video trunk starts: plan (and check) the init, then load it.

``clip``: the contrastive pre-training ``last.ckpt`` (trunk and projection), checked to have
been pre-trained on clips laid out as this run's; ``kinetics``: the Kinetics-400 weights at
the recipe's ``video.weights`` (or, where the config allows it for a demo, a random
stand-in, recorded as init_effective ``random``); ``random``: nothing to load.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from cinefm.config import ConfigError
from cinefm.models.heads import load_pretrained_video
from cinefm.models.video import build_video_encoder
from cinefm.train.experiments import ExperimentError
from cinefm.train.recipe import FinetuneRecipe

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


@dataclass(frozen=True)
class InitPlan:
    """Where the video trunk's starting weights come from (``effective`` differs from the
    experiment's init only for the demo's random stand-in of missing Kinetics weights)."""

    effective: str                 # clip | kinetics | random
    checkpoint: Path | None = None  # clip: the pre-training last.ckpt
    note: str = ""


def plan_init(recipe: FinetuneRecipe, pretrain_ckpt: PathLike | None) -> InitPlan:
    """Decide (without training anything) where the trunk's weights come from; fail early if they can't."""
    source = recipe.experiment_file or recipe.experiment
    if recipe.init == "clip":
        if pretrain_ckpt is None or not Path(pretrain_ckpt).is_file():
            raise ExperimentError(f"{source}: init 'clip' needs the pre-training checkpoint, but "
                                  f"{pretrain_ckpt} does not exist — run the pretrain rule first")
        d = recipe.data
        layout = ({"mean": d.mean, "std": d.std, "motion_gain": d.motion_gain, "motion_crop": d.motion_crop}
                  if recipe.cohort == "cmr" else {})
        check_clip_input(pretrain_ckpt, layout)
        return InitPlan("clip", Path(pretrain_ckpt))
    if recipe.init == "kinetics" and recipe.video.get("weights") is None:
        if not recipe.allow_random_baseline:
            raise ConfigError(
                f"{source}: init 'kinetics' needs Kinetics-400 weights but config models.video.weights is "
                "null — place torchvision's .pth there (see shared recipes / cinefm.models.weights), or, for "
                "a demo without weights, set finetune.allow_random_baseline: true")
        note = ("models.video.weights is null: the kinetics baseline was initialised at random "
                "(finetune.allow_random_baseline: true; demo only, not the method's baseline)")
        log.warning("%s: %s", recipe.experiment, note)
        return InitPlan("random", note=note)
    return InitPlan(recipe.init)


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


def init_weights(module: L.LightningModule, plan: InitPlan, video_cfg: Mapping[str, Any]) -> None:
    """Load the planned starting weights into the module's trunk (and projection for ``clip``)."""
    if plan.effective == "clip":
        load_pretrained_video(module.model, plan.checkpoint)
    elif plan.effective == "kinetics":
        trunk = build_video_encoder(**video_cfg)  # resolves and loads models.video.weights
        module.model.video.load_state_dict(trunk.state_dict())
        log.info("video trunk initialised from %s", video_cfg.get("weights"))
    else:
        log.info("video trunk initialised at random")


__all__ = ["CLIP_INPUT_KEYS", "InitPlan", "check_clip_input", "init_weights", "plan_init"]
