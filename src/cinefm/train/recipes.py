"""Experiments that bring their own recipe: encoder, clip, optimizer, schedule, epochs, cohort.

An experiment file may name (optional keys, :mod:`cinefm.train.experiments`) its video
``encoder``, ``clip`` (frames, period, size), ``optimizer``, ``scheduler``, ``batch_size`` and
``epochs`` — the EchoNet-Dynamic experiments carry EchoNet's published recipe that way
(``config/experiments/echonet/``). :func:`apply_recipe` turns such an experiment and the
pipeline config into the effective pair the training code reads:

- ``models.video``: ``name`` = the experiment's encoder, ``frames``/``size`` = its clip, and
  for an encoder other than the config's, ``weights`` from the cohort's
  ``external.<cohort>.finetune.weights.<encoder>`` (else null: random init, or the
  ``allow_random_baseline`` stand-in for ``init: kinetics``);
- ``finetune.batch_size`` = the experiment's ``batch_size``.

For an external cohort the config's ``external.<cohort>.finetune.overrides`` (demo-sized
``epochs``, ``batch_size``, ``clip``, ``optimizer``, ``scheduler``; empty in paper.yaml) replace
the file's values first, so the experiment files keep the paper's numbers.
:func:`recipe_settings` then replaces the config's step budget and AdamW settings by the
experiment's epochs and optimizer.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from cinefm.config import ConfigError
from cinefm.train.experiments import ClipSettings, Experiment
from cinefm.train.optim import OptimizerSpec, SchedulerSpec

log = logging.getLogger(__name__)

OVERRIDABLE = ("epochs", "batch_size", "clip", "optimizer", "scheduler")
BY_ENCODER = "by_encoder"  # overrides for one encoder, applied over the common ones


def cohort_finetune(config: Mapping[str, Any], cohort: str) -> Mapping[str, Any]:
    """``external.<cohort>.finetune`` of the config (empty for the MRI cohort or when absent)."""
    if cohort == "cmr":
        return {}
    return ((config.get("external") or {}).get(cohort) or {}).get("finetune") or {}


def encoder_overrides(overrides: Mapping[str, Any] | None, encoder: str | None) -> dict[str, Any]:
    """The common overrides with ``by_encoder.<encoder>`` merged over them (nested mappings key by key)."""
    common = {k: v for k, v in (overrides or {}).items() if k != BY_ENCODER}
    own = ((overrides or {}).get(BY_ENCODER) or {}).get(encoder) or {}
    merged = dict(common)
    for key, value in own.items():
        merged[key] = {**(common.get(key) or {}), **value} if isinstance(value, Mapping) else value
    return merged


def apply_overrides(exp: Experiment, overrides: Mapping[str, Any] | None) -> Experiment:
    """``exp`` with the config's overrides of its recipe keys (nested mappings merge key by key).

    ``overrides.by_encoder.<encoder>`` (e.g. a smaller clip for the 31M-parameter R(2+1)D on CPU)
    applies over the common overrides for the experiments of that encoder.
    """
    overrides = encoder_overrides(overrides, exp.encoder)
    if not overrides:
        return exp
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ConfigError(f"external.{exp.cohort}.finetune.overrides: unknown key(s) {unknown}; "
                          f"known: {list(OVERRIDABLE)}")
    changes: dict[str, Any] = {}
    for key in ("epochs", "batch_size"):
        if overrides.get(key) is not None:
            changes[key] = int(overrides[key])
    for key, cls in (("clip", ClipSettings), ("optimizer", OptimizerSpec), ("scheduler", SchedulerSpec)):
        if overrides.get(key):
            base = getattr(exp, key)
            merged = {**(dataclasses.asdict(base) if base is not None else {}), **overrides[key]}
            changes[key] = cls(**merged)
    log.info("experiment %s: config overrides %s", exp.name, changes)
    return dataclasses.replace(exp, **changes)


def apply_recipe(exp: Experiment, config: Mapping[str, Any]) -> tuple[Experiment, dict[str, Any]]:
    """The effective ``(experiment, config)`` of ``exp`` (module docstring); ``config`` is not modified."""
    section = cohort_finetune(config, exp.cohort)
    exp = apply_overrides(exp, section.get("overrides"))
    out = copy.deepcopy(dict(config))
    video = dict(out["models"]["video"])
    if exp.encoder is not None and exp.encoder != video["name"]:
        video["weights"] = (section.get("weights") or {}).get(exp.encoder)
        video["name"] = exp.encoder
    if exp.clip is not None:
        video["frames"], video["size"] = exp.clip.frames, exp.clip.size
    out["models"] = {**out["models"], "video": video}
    if exp.batch_size is not None:
        out["finetune"] = {**out["finetune"], "batch_size": exp.batch_size}
    return exp, out


def recipe_settings(settings: Any, exp: Experiment) -> Any:
    """``settings`` (a ``TaskSettings``) with the experiment's optimizer lr/weight decay and epochs."""
    changes: dict[str, Any] = {}
    if exp.optimizer is not None:
        changes.update(lr=exp.optimizer.lr, weight_decay=exp.optimizer.weight_decay)
    if exp.epochs is not None:
        changes.update(epochs=exp.epochs, max_steps=-1, val_every_steps=None)
    return dataclasses.replace(settings, **changes) if changes else settings


def optimization_hparams(exp: Experiment, default_scheduler: SchedulerSpec | None = None) -> dict[str, Any]:
    """``optimizer``/``scheduler`` keyword arguments of ``FinetuneModule`` (plain dicts, or None).

    The experiment's scheduler, else ``default_scheduler`` (the config task's ``schedule``) when the
    experiment keeps the config's optimizer too: a file that brings its own optimizer brings its
    whole recipe.
    """
    scheduler = exp.scheduler
    if scheduler is None and exp.optimizer is None:
        scheduler = default_scheduler
    return {"optimizer": None if exp.optimizer is None else exp.optimizer.as_dict(),
            "scheduler": None if scheduler is None else scheduler.as_dict()}


__all__ = ["BY_ENCODER", "OVERRIDABLE", "apply_overrides", "encoder_overrides", "apply_recipe", "cohort_finetune", "optimization_hparams",
           "recipe_settings"]
