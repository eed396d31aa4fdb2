"""Fine-tuning experiment files: ``config/experiments/<name>.yaml``, one per experimental setup.

A file holds only what distinguishes one setup from another (validated against
``workflow/schemas/experiment.schema.yaml``; unknown keys are errors)::

    task: lvef            # lvef | diseases | one disease key of config labels.diseases
    init: clip            # clip (contrastive checkpoint) | kinetics (Kinetics-400) | random
    mode: transfer        # finetune (trunk frozen) | transfer (all trainable)
    fraction: 1.0         # share of the downstream training patients
    seed: 0               # weight initialisation + Lightning seed
    # optional: fraction_seed (default splits.fraction_seed), pretrain_run (default
    # pretrain.run), description
    # optional, an experiment with its own cohort/recipe (config/experiments/echonet/):
    # cohort (cmr | echonet), split_source (hash | release), view, encoder,
    # clip {frames, period, size}, optimizer {name, lr, momentum, weight_decay},
    # scheduler {name, step_size, gamma}, batch_size, epochs, metrics

``task: diseases`` trains, with config ``finetune.disease.models: per_disease`` (the method:
a model "for each disease label of interest"), one one-output model per disease of
``labels.diseases`` — runs named ``<disease>_<setup>`` (:func:`per_disease_name`), each
selected on its own validation AUROC — and with ``multi_label`` one model with one sigmoid
output per disease; a single disease key trains a one-output model.
Training settings (lr, weight decay, steps/epochs, precision) come from the config's
``finetune.lvef`` / ``finetune.disease`` sections; :func:`cinefm.train.recipe.resolve_recipe`
merges them with the file (and a cohort's overrides) into the run's recipe.

The file name is the experiment's name and the folder of its outputs
(``results/finetune/<name>/``). Runs write the experiment's identity into
``predictions.csv`` and ``metrics.csv``, where the statistics stage reads it; names are
conventionally shaped ``<task>_<init>_<mode>_<percent>`` (``lvef_clip_transfer_100``,
``disease_kinetics_finetune_25``; ``disease`` stands for ``task: diseases``), and a name of
that shape must agree with the file's content, so that a person reading it is not misled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from cinefm.config import REPO_ROOT, ConfigError
from cinefm.train.optim import OptimizerSpec, SchedulerSpec

EXPERIMENT_SCHEMA = REPO_ROOT / "workflow" / "schemas" / "experiment.schema.yaml"
TASK_LVEF = "lvef"
TASK_DISEASES = "diseases"
NAME_DISEASES = "disease"  # how task `diseases` is spelled in experiment names
INITS = ("clip", "kinetics", "random")
EXTERNAL_COHORTS = ("echonet",)  # cohorts with their own release split (results/external/<cohort>/)
MODES = ("finetune", "transfer")

Kind = Literal["regression", "classification"]


class ExperimentError(ConfigError):
    """An experiment file is malformed; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class ClipSettings:
    """``clip:`` of an experiment: T frames taken every ``period``-th frame, ``size`` × ``size`` pixels."""

    frames: int
    size: int
    period: int = 1


@dataclass(frozen=True)
class Experiment:
    """One validated experiment file (see the module docstring for the keys)."""

    name: str
    path: Path
    task: str
    init: str
    mode: str
    fraction: float
    seed: int
    fraction_seed: int | None = None
    pretrain_run: str | None = None
    description: str = ""
    # optional recipe keys (None = the MRI defaults: all views, config models.video / finetune)
    cohort: str = "cmr"
    split_source: str = "hash"
    view: str | None = None
    encoder: str | None = None
    clip: ClipSettings | None = None
    optimizer: OptimizerSpec | None = None
    scheduler: SchedulerSpec | None = None
    batch_size: int | None = None
    epochs: int | None = None
    metrics: tuple[str, ...] = ()
    loss: str | None = None            # LVEF loss (None = the config's Huber)
    target_scale: str | None = None    # None = config finetune.lvef.target_scale
    select_by: str = "metric"          # metric | loss (checkpoint selection on the validation split)
    pad: int = 0                       # external cohorts: pad-and-random-crop of training clips
    normalization: str = "config"      # external cohorts: config | dataset mean/SD
    test_clips: str = "one"            # external cohorts: one | all clips averaged in the final predictions

    @property
    def kind(self) -> Kind:
        """``regression`` for LVEF, ``classification`` for diseases."""
        return "regression" if self.task == TASK_LVEF else "classification"

    def tasks(self, diseases: Sequence[str]) -> list[str]:
        """Target columns of ``labels.csv`` this experiment trains on."""
        if self.task == TASK_DISEASES:
            return list(diseases)
        return [self.task]

    def for_disease(self, disease: str, diseases: Sequence[str]) -> Experiment:
        """The one-disease run of a ``task: diseases`` file (``finetune.disease.models: per_disease``),
        named :func:`per_disease_name`; its checkpoint is selected on that disease's validation AUROC."""
        if self.task != TASK_DISEASES:
            raise ExperimentError(f"{self.path}: task {self.task!r} — only a 'task: diseases' file has one run "
                                  "per disease")
        if disease not in diseases:
            raise ExperimentError(f"{self.path}: disease {disease!r} is not one of config labels.diseases "
                                  f"{list(diseases)}")
        return replace(self, task=disease, name=per_disease_name(self.name, disease))


def fraction_label(fraction: float) -> str:
    """A training fraction as the percent in experiment names: 1.0 → ``100``, 0.25 → ``25``, 0.025 → ``2.5``."""
    return f"{round(float(fraction) * 100, 6):g}"


def expected_name(task: str, init: str, mode: str, fraction: float) -> str:
    """The canonical experiment name ``<task>_<init>_<mode>_<percent>``."""
    task_part = NAME_DISEASES if task == TASK_DISEASES else task
    return f"{task_part}_{init}_{mode}_{fraction_label(fraction)}"


def disease_setup(name: str) -> str:
    """What follows ``disease_`` in a ``task: diseases`` file's name (the whole name when it is not so shaped):
    ``disease_clip_finetune_10`` → ``clip_finetune_10``."""
    prefix = f"{NAME_DISEASES}_"
    return name[len(prefix):] if name.startswith(prefix) else name


def per_disease_name(name: str, disease: str) -> str:
    """The run of one disease of the ``task: diseases`` file ``name``: ``<disease>_<setup>``
    (``disease_clip_finetune_10`` → ``hcm_clip_finetune_10``, the canonical name of that one-disease setup)."""
    return f"{disease}_{disease_setup(name)}"


def _schema() -> dict:
    with open(EXPERIMENT_SCHEMA) as fh:
        return yaml.safe_load(fh)


def validate_experiment(doc: Any, source: str) -> None:
    """Check ``doc`` against the experiment schema; raise ExperimentError naming ``source`` and the key."""
    import jsonschema

    if not isinstance(doc, Mapping):
        raise ExperimentError(f"{source}: an experiment file is a YAML mapping of task, init, mode, fraction, "
                              f"seed; got {type(doc).__name__}")
    schema = _schema()
    allowed = sorted(schema["properties"])
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise ExperimentError(
            f"{source}: unknown key(s) {unknown}; an experiment file may hold only {allowed} — training "
            "settings (lr, weight_decay, max_steps, epochs, precision) belong in the config's finetune: section")
    missing = [k for k in schema["required"] if k not in doc]
    if missing:
        raise ExperimentError(f"{source}: missing key(s) {missing}; required: {schema['required']}")
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(dict(doc)), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(file)"
        raise ExperimentError(f"{source}: key '{key}': {err.message}")


def _recipe(doc: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The optional cohort/recipe keys of a validated ``doc`` as :class:`Experiment` fields.

    Combinations the training code cannot honour fail here: an external cohort trains on its
    release split (``split_source: release``); the MRI cohort has no release split, no single
    ``view`` selection and no clip ``period`` (its clips span the whole cine loop).
    """
    cohort = str(doc.get("cohort", "cmr"))
    split_source = str(doc.get("split_source", "release" if cohort in EXTERNAL_COHORTS else "hash"))
    clip = doc.get("clip")
    if cohort in EXTERNAL_COHORTS and split_source != "release":
        raise ExperimentError(f"{source}: key 'split_source': cohort {cohort!r} trains on its release's own "
                              "split; set split_source: release (the keyed-hash split covers the MRI cohort only)")
    if cohort == "cmr":
        bad = [k for k, v in (("split_source", split_source != "hash"), ("view", "view" in doc),
                              *((k, k in doc) for k in ("pad", "normalization", "test_clips")),
                              ("clip.period", bool(clip) and int(clip.get("period", 1)) != 1)) if v]
        if bad:
            raise ExperimentError(f"{source}: key(s) {bad} apply to external cohorts only (cohort: echonet); "
                                  "MRI experiments use the keyed-hash split, every view and whole-loop clips")
    return {
        "cohort": cohort, "split_source": split_source, "view": doc.get("view"), "encoder": doc.get("encoder"),
        "clip": None if not clip else ClipSettings(int(clip["frames"]), int(clip["size"]), int(clip.get("period", 1))),
        "optimizer": OptimizerSpec.from_mapping(doc["optimizer"]) if doc.get("optimizer") else None,
        "scheduler": SchedulerSpec.from_mapping(doc["scheduler"]) if doc.get("scheduler") else None,
        "batch_size": None if doc.get("batch_size") is None else int(doc["batch_size"]),
        "epochs": None if doc.get("epochs") is None else int(doc["epochs"]),
        "metrics": tuple(doc.get("metrics") or ()),
        "loss": doc.get("loss"), "target_scale": doc.get("target_scale"),
        "select_by": str(doc.get("select_by", "metric")),
        "pad": int(doc.get("pad", 0)), "normalization": str(doc.get("normalization", "config")),
        "test_clips": str(doc.get("test_clips", "one")),
    }


def parse_experiment(doc: Mapping[str, Any], name: str, path: str | os.PathLike,
                     diseases: Sequence[str]) -> Experiment:
    """Validate ``doc`` (the parsed YAML) and return the :class:`Experiment` ``name``.

    ``diseases`` is config ``labels.diseases``: the allowed single-disease tasks.
    """
    source = str(path)
    validate_experiment(doc, source)
    task = doc["task"]
    known = [TASK_LVEF, TASK_DISEASES, *diseases]
    if task not in known:
        raise ExperimentError(f"{source}: key 'task': {task!r} is not one of {known} "
                              "(lvef, diseases, or a disease key of config labels.diseases)")
    exp = Experiment(
        name=name, path=Path(path), task=task, init=doc["init"], mode=doc["mode"],
        fraction=float(doc["fraction"]), seed=int(doc["seed"]),
        fraction_seed=None if doc.get("fraction_seed") is None else int(doc["fraction_seed"]),
        pretrain_run=doc.get("pretrain_run"), description=str(doc.get("description", "")),
        **_recipe(doc, source),
    )
    check_name(exp)
    return exp


def external_name_prefix(exp: Experiment) -> str:
    """External-cohort experiments are named ``<cohort>_...`` (e.g. ``echonet_r2plus1d_18_lvef``)."""
    return f"{exp.cohort}_"


def check_name(exp: Experiment) -> None:
    """A name shaped ``<task>_<init>_<mode>_<percent>`` must say what the file says (stats reads it).

    An external-cohort experiment must start with ``<cohort>_`` (its outputs share
    ``results/finetune/`` with the MRI experiments, and the statistics stage routes it by that
    prefix); the rest is free, conventionally ``<encoder>_<task>``.
    """
    if exp.cohort != "cmr":
        if not exp.name.startswith(external_name_prefix(exp)):
            raise ExperimentError(f"{exp.path}: an experiment on cohort {exp.cohort!r} must be named "
                                  f"{external_name_prefix(exp)}<...> (e.g. {exp.cohort}_{exp.encoder or 'encoder'}_"
                                  f"{exp.task}); rename the file")
        return
    parts = exp.name.rsplit("_", 3)
    canonical = expected_name(exp.task, exp.init, exp.mode, exp.fraction)
    if len(parts) == 4 and parts[1] in INITS and parts[2] in MODES:
        if exp.name != canonical:
            raise ExperimentError(
                f"{exp.path}: the name {exp.name!r} says task/init/mode/percent "
                f"{parts[0]}/{parts[1]}/{parts[2]}/{parts[3]} but the file says "
                f"{exp.task}/{exp.init}/{exp.mode}/{fraction_label(exp.fraction)}; rename the file to "
                f"{canonical}.yaml or fix its keys (the name must say what the file says)")


def load_experiment(path: str | os.PathLike, diseases: Sequence[str]) -> Experiment:
    """Read and validate one experiment file; its stem is the experiment name."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"{path}: experiment file not found; experiments live in config "
                              "finetune.experiments (one <name>.yaml per setup)")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ExperimentError(f"{path}: not valid YAML: {err}") from err
    return parse_experiment(doc, path.stem, path, diseases)


def experiment_paths(directory: str | os.PathLike, select: Sequence[str] | None = None) -> list[Path]:
    """The experiment files to run: every ``*.yaml`` of ``directory``, or only the names in ``select``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ExperimentError(f"config.finetune.experiments: {directory} is not a directory of experiment files")
    found = {p.stem: p for p in sorted(directory.glob("*.yaml"))}
    if select is None:
        return list(found.values())
    missing = [s for s in select if s not in found]
    if missing:
        raise ExperimentError(f"config.finetune.select: no file {missing[0]}.yaml in {directory} "
                              f"(available: {sorted(found)})")
    return [found[s] for s in select]


__all__ = [
    "EXPERIMENT_SCHEMA", "EXTERNAL_COHORTS", "INITS", "MODES", "TASK_DISEASES", "TASK_LVEF", "ClipSettings",
    "Experiment", "ExperimentError", "check_name", "disease_setup", "per_disease_name", "external_name_prefix", "expected_name", "experiment_paths", "fraction_label", "load_experiment",
    "parse_experiment", "validate_experiment",
]
