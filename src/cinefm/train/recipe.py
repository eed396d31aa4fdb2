"""One fine-tuning run's settings, resolved once: :class:`FinetuneRecipe` and :func:`resolve_recipe`.

A run's settings come from three layers, later ones winning, and are merged here and
nowhere else:

1. **the config** (validated, schema defaults filled in by :func:`cinefm.config.validate_config`):
   the task family's section (``finetune.lvef`` for LVEF, ``finetune.disease`` for
   diseases: lr, weight decay, budget, precision, schedule, attention, per-view loss,
   SAX share, AugMix), the fine-tuning-wide keys (``finetune.mil_hidden``, ``batch_size``,
   ``num_workers``, ``augment``, ``allow_random_baseline``), ``models.video`` and
   ``models.projection_dim``, ``data`` (clip normalisation, AugMix parameters, loader
   seed), ``labels`` (diseases, heart-failure cut-off), ``splits.fraction_seed`` and
   ``pretrain.run``;
2. **the experiment file** (:mod:`cinefm.train.experiments`): identity (task, init,
   mode, fraction, seeds, pre-training run) and, for an experiment that brings its own
   recipe (EchoNet-Dynamic's, ``config/experiments/echonet/``), encoder, clip, optimizer,
   scheduler, batch size and epochs. A file with its own ``optimizer`` brings its whole
   recipe: the config's ``schedule`` is then not applied;
3. **the cohort's overrides**: ``external.<cohort>.finetune.overrides`` (demo-sized
   epochs, batch size, pad, clip, optimizer, scheduler; ``by_encoder.<encoder>`` over the
   common ones; empty in ``paper.yaml``) replace the file's values, and
   ``external.<cohort>.finetune.weights.<encoder>`` names the starting weights of an
   encoder other than the config's.

The result, :class:`FinetuneRecipe`, holds everything a run needs: the datamodule
(:meth:`cinefm.data.datamodules.StudyDataModule.from_recipe`,
:meth:`cinefm.data.echo.EchoDataModule.from_recipe`) and the LightningModule
(:class:`cinefm.train.finetune_module.FinetuneModule`) take it as is. It is plain data:
:meth:`FinetuneRecipe.to_dict` / :meth:`FinetuneRecipe.from_dict` round-trip through YAML
(:meth:`~FinetuneRecipe.to_yaml`, :meth:`~FinetuneRecipe.from_yaml`); every run writes its
recipe as ``results/finetune/<experiment>/hparams.yaml``.

Extending: a new setting is one field here (with its group), one line in
:func:`build_recipe` reading it from its layer, and its reader; ``from_dict`` of an older
``hparams.yaml`` that lacks a field fails with the field's name.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cinefm.atomic import write_text
from cinefm.config import ConfigError, validate_config
from cinefm.train.experiments import ClipSettings, Experiment, load_experiment
from cinefm.train.optim import OptimizerSpec, SchedulerSpec
from cinefm.train.runs import plain_data

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
OVERRIDABLE = ("epochs", "batch_size", "pad", "clip", "optimizer", "scheduler")
BY_ENCODER = "by_encoder"  # overrides for one encoder, applied over the common ones
ATTENTION = {"per_disease": "per_output", "shared": "shared"}  # config spelling -> StudyModel's


@dataclass(frozen=True)
class Budget:
    """How long a run trains: a step budget (LVEF: ``max_steps``, validation every
    ``val_every_steps``) or ``epochs`` (diseases, external recipes: validation every epoch);
    the unused one is -1 (``val_every_steps`` None)."""

    max_steps: int = -1
    epochs: int = -1
    val_every_steps: int | None = None

    @property
    def by_steps(self) -> bool:
        return self.max_steps > 0


@dataclass(frozen=True)
class DataRecipe:
    """What the datamodule needs besides the input files: clip layout, views, augmentation, loaders.

    ``augmix`` is config ``data.augmix`` when the task's training clips are augmented, else None;
    ``view`` keeps one view (external cohorts), None = every view; ``sax_fraction`` the share of
    SAX slices drawn per study.
    """

    batch_size: int
    num_workers: int
    seed: int
    mean: float
    std: float
    motion_gain: float
    motion_crop: float
    min_frames: int
    max_open_files: int
    sax_fraction: float = 1.0
    view: str | None = None
    augmix: dict[str, Any] | None = None
    pad: int = 0                   # echo: zero-pad + random crop of training clips (EchoNet: 12)
    normalization: str = "config"  # config (mean/std above) | dataset (the training videos', EchoNet)
    test_clips: str = "one"        # echo final predictions: one clip | all clips averaged (EchoNet)


@dataclass(frozen=True)
class FinetuneRecipe:
    """Everything one fine-tuning run needs (module docstring). Treat the mappings as read-only."""

    # identity (also columns of predictions.csv and metrics.csv)
    experiment: str
    cohort: str                    # cmr | echonet
    task: str                      # lvef | diseases | one disease key
    kind: str                      # regression | classification
    tasks: tuple[str, ...]         # target columns of labels.csv, one model output each
    init: str                      # clip | kinetics | random (as the file says)
    mode: str                      # finetune (trunk frozen) | transfer
    fraction: float
    fraction_seed: int
    seed: int
    split_source: str              # hash (splits.csv) | release (the cohort's own split)
    pretrain_run: str              # init clip: results/pretrain/<run>/last.ckpt
    # model
    video: dict[str, Any]          # build_video_encoder(**video); weights = the kinetics/encoder weights file
    projection_dim: int
    mil_hidden: int
    attention: str                 # shared | per_output (one gated attention per task)
    # objective and evaluation
    huber_delta: float | None      # regression: Huber transition, in the units of target_scale
    view_loss_weight: float        # classification: weight of the per-view BCE (0 = the method)
    heart_failure_lvef: float
    # optimisation
    optimizer: OptimizerSpec
    scheduler: SchedulerSpec
    budget: Budget
    precision: int | str
    # data
    clip: ClipSettings             # frames, size, period (1 = whole-loop sampling of the CMR clips)
    data: DataRecipe
    allow_random_baseline: bool = False
    metrics: tuple[str, ...] = ()  # extra metrics the experiment file asks for
    experiment_file: str = ""
    description: str = ""
    # objective (regression), selection and trunk memory (defaults: what recipes before these fields did)
    regression_loss: str = "huber"  # huber | mse (EchoNet-Dynamic)
    target_scale: str = "zscore"    # percent (head output in percent, bias = training mean) | zscore
    select_by: str = "metric"       # metric (val MAE / AUROC) | loss (val loss)
    trunk_chunk: int = 0            # clips per trunk pass (0 = all at once)
    trunk_checkpoint: bool = False  # activation checkpointing per chunk

    @property
    def identity(self) -> dict[str, Any]:
        """The experiment's identity: the leading columns of predictions.csv and metrics.csv."""
        return {"experiment": self.experiment, "cohort": self.cohort, "init": self.init, "mode": self.mode,
                "fraction": self.fraction}

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready data (tuples as lists)."""
        return plain_data(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FinetuneRecipe:
        """Inverse of :meth:`to_dict`; unknown or missing fields are named."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(doc) - names)
        if unknown:
            raise ConfigError(f"fine-tuning recipe: unknown field(s) {unknown}; known: {sorted(names)}")
        try:
            d = dict(doc)
            d["tasks"] = tuple(d["tasks"])
            d["metrics"] = tuple(d.get("metrics") or ())
            d["video"] = copy.deepcopy(dict(d["video"]))
            d["optimizer"] = OptimizerSpec(**d["optimizer"])
            d["scheduler"] = SchedulerSpec(**d["scheduler"])
            d["budget"] = Budget(**d["budget"])
            d["clip"] = ClipSettings(**d["clip"])
            data = dict(d["data"])
            data["augmix"] = copy.deepcopy(data.get("augmix"))
            d["data"] = DataRecipe(**data)
            return cls(**d)
        except (KeyError, TypeError) as err:
            raise ConfigError(f"fine-tuning recipe: {err} — the recipe was written by another version; "
                              "resolve it again from the config and the experiment file") from err

    def to_yaml(self, path: PathLike) -> None:
        """Write the recipe (atomically) as YAML."""
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: PathLike) -> FinetuneRecipe:
        """Read a recipe written by :meth:`to_yaml` (e.g. a run's ``hparams.yaml``)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: recipe file not found (a fine-tuning run writes it as hparams.yaml)")
        return cls.from_dict(yaml.safe_load(path.read_text()) or {})


# ----------------------------------------------------------------------------- cohort overrides


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
    """``exp`` with the config's overrides of its recipe keys (nested mappings merge key by key)."""
    overrides = encoder_overrides(overrides, exp.encoder)
    if not overrides:
        return exp
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ConfigError(f"external.{exp.cohort}.finetune.overrides: unknown key(s) {unknown}; "
                          f"known: {list(OVERRIDABLE)}")
    changes: dict[str, Any] = {}
    for key in ("epochs", "batch_size", "pad"):
        if overrides.get(key) is not None:
            changes[key] = int(overrides[key])
    for key, cls in (("clip", ClipSettings), ("optimizer", OptimizerSpec), ("scheduler", SchedulerSpec)):
        if overrides.get(key):
            base = getattr(exp, key)
            merged = {**(dataclasses.asdict(base) if base is not None else {}), **overrides[key]}
            changes[key] = cls(**merged)
    log.info("experiment %s: config overrides %s", exp.name, changes)
    return dataclasses.replace(exp, **changes)


# ----------------------------------------------------------------------------- resolution


def resolve_recipe(experiment: PathLike | Experiment, config: Mapping[str, Any],
                   disease: str | None = None) -> FinetuneRecipe:
    """The recipe of one experiment file (or parsed :class:`Experiment`) under ``config``.

    ``disease`` picks the one-disease run of a ``task: diseases`` file
    (:meth:`cinefm.train.experiments.Experiment.for_disease`; ``finetune.disease.models: per_disease``).

    ``config`` is validated on a copy (schema defaults filled in) and not modified; it may hold
    only the sections a run reads (``labels``, ``splits``, ``data``, ``models``, ``pretrain``,
    ``finetune`` and, for an external cohort, ``external``), as the finetune rule passes them.
    """
    config = copy.deepcopy(dict(config))
    validate_config(config, partial=True)
    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment, config["labels"]["diseases"])
    if disease is not None:
        experiment = experiment.for_disease(disease, config["labels"]["diseases"])
    return build_recipe(experiment, config)


def build_recipe(exp: Experiment, config: Mapping[str, Any]) -> FinetuneRecipe:
    """The three layers of the module docstring; ``config`` must be validated (defaults filled)."""
    fin, data = config["finetune"], config["data"]
    regression = exp.kind == "regression"
    section = fin["lvef"] if regression else fin["disease"]
    cohort = cohort_finetune(config, exp.cohort)
    exp = apply_overrides(exp, cohort.get("overrides"))

    video = copy.deepcopy(dict(config["models"]["video"]))
    if exp.encoder is not None and exp.encoder != video["name"]:
        video["weights"] = (cohort.get("weights") or {}).get(exp.encoder)
        video["name"] = exp.encoder
    if exp.clip is not None:
        video["frames"], video["size"] = exp.clip.frames, exp.clip.size
    clip = exp.clip or ClipSettings(int(video["frames"]), int(video["size"]))

    optimizer = exp.optimizer or OptimizerSpec("adamw", float(section["lr"]),
                                               weight_decay=float(section["weight_decay"]))
    config_schedule = SchedulerSpec("none" if section["schedule"] == "constant" else section["schedule"],
                                    warmup_fraction=float(section["warmup_fraction"]))
    scheduler = exp.scheduler or (config_schedule if exp.optimizer is None else SchedulerSpec())
    if exp.epochs is not None:
        budget = Budget(epochs=exp.epochs)
    elif regression:
        budget = Budget(max_steps=int(section["max_steps"]), val_every_steps=int(section["val_every_steps"]))
    else:
        budget = Budget(epochs=int(section["epochs"]))

    cmr = exp.cohort == "cmr"
    # per-task AugMix switch, else the fine-tuning-wide one (schema: finetune.augment, default false)
    augment = cmr and bool(section.get("augment", fin["augment"]))
    data_recipe = DataRecipe(
        batch_size=int(exp.batch_size or fin["batch_size"]), num_workers=int(fin["num_workers"]),
        seed=int(data["seed"]), mean=float(data["mean"]), std=float(data["std"]),
        # motion channel and crop shape CMR clips only: echo keeps EchoNet-Dynamic's input
        motion_gain=float(data["motion_gain"]) if cmr else 0.0,
        motion_crop=float(data["motion_crop"]) if cmr else 1.0,
        min_frames=int(data["min_frames"]), max_open_files=int(data["max_open_files"]),
        sax_fraction=float(section["sax_fraction"]) if cmr else 1.0, view=exp.view,
        augmix=copy.deepcopy(dict(data["augmix"])) if augment else None,
        pad=int(exp.pad), normalization=exp.normalization, test_clips=exp.test_clips)
    return FinetuneRecipe(
        experiment=exp.name, cohort=exp.cohort, task=exp.task, kind=exp.kind,
        tasks=tuple(exp.tasks(config["labels"]["diseases"])), init=exp.init, mode=exp.mode,
        fraction=float(exp.fraction),
        fraction_seed=int(exp.fraction_seed if exp.fraction_seed is not None else config["splits"]["fraction_seed"]),
        seed=int(exp.seed), split_source=exp.split_source,
        pretrain_run=str(exp.pretrain_run or config["pretrain"]["run"]),
        video=video, projection_dim=int(config["models"]["projection_dim"]), mil_hidden=int(fin["mil_hidden"]),
        attention="shared" if regression else ATTENTION[section["attention"]],
        huber_delta=float(section["huber_delta"]) if regression else None,
        view_loss_weight=0.0 if regression else float(section["view_loss_weight"]),
        heart_failure_lvef=float(config["labels"]["heart_failure_lvef"]),
        optimizer=optimizer, scheduler=scheduler, budget=budget, precision=section["precision"],
        clip=clip, data=data_recipe, allow_random_baseline=bool(fin["allow_random_baseline"]),
        metrics=tuple(exp.metrics), experiment_file=str(exp.path), description=exp.description,
        regression_loss=str(exp.loss or "huber"),
        target_scale=str(exp.target_scale or (section["target_scale"] if regression else "zscore")),
        select_by=exp.select_by, trunk_chunk=int(fin["trunk_chunk"]), trunk_checkpoint=bool(fin["trunk_checkpoint"]),
    )


__all__ = ["ATTENTION", "BY_ENCODER", "OVERRIDABLE", "Budget", "DataRecipe", "FinetuneRecipe", "apply_overrides",
           "build_recipe", "cohort_finetune", "encoder_overrides", "resolve_recipe"]
