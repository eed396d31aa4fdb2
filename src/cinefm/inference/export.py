"""``cinefm export``: a finished fine-tuning run -> a model folder (:mod:`cinefm.inference.folder`).

Reads ``results/finetune/<experiment>/`` (``best.ckpt``, ``hparams.yaml``, ``predictions.csv``,
``metrics.csv``), the config's ``ingest``, ``labels`` and ``stats`` sections and one of the
run's HDF5 files (to check that the config still describes the ingestion the model was
trained on). Operating points are chosen on the run's **validation** predictions
(:func:`cinefm.stats.operating_points`, via :func:`cinefm.stats.experiments.threshold_rows`);
the model card reports validation and test AUROC with DeLong CIs (and, for LVEF, MAE etc.
with bootstrap CIs), computed as ``results/stats`` computes them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import pandas as pd
import yaml

from cinefm.atomic import write_csv, write_text
from cinefm.config import REPO_ROOT, ConfigError
from cinefm.inference import folder as mf
from cinefm.inference.card import model_card

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
RUN_FILES = ("best.ckpt", "hparams.yaml", "predictions.csv", "metrics.csv")


class ExportError(ValueError):
    """The run cannot be exported as it stands; the message names the file and the fix."""


def _views_file(ingest: Mapping[str, Any]) -> Path:
    path = Path(ingest["views"])
    if not path.is_file() and not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        raise ExportError(f"config.ingest.views: file not found: {ingest['views']}")
    return path


def ingestion_settings(config: Mapping[str, Any], studies_csv: Path) -> dict[str, Any]:
    """The config's ingestion settings, checked against the HDF5 files the run trained on."""
    from cinefm.data.datamodules import read_manifest
    from cinefm.dicom.extract import SCHEMA_VERSION

    ing = config["ingest"]
    settings = {"frame_size": int(ing["frame_size"]),
                "intensity_percentiles": [float(p) for p in ing["intensity_percentiles"]],
                "min_frames": int(ing["min_frames"]), "compression": str(ing["compression"]),
                "hdf5_schema": str(SCHEMA_VERSION)}
    manifest = read_manifest(studies_csv)
    if manifest.empty:
        raise ExportError(f"{studies_csv}: no ingested study to check the ingestion settings against")
    with h5py.File(manifest["h5"].iloc[0], "r") as fh:
        written = {"frame_size": int(fh.attrs.get("frame_size", -1)),
                   "intensity_percentiles": [float(p) for p in fh.attrs.get("intensity_percentiles", [])],
                   "hdf5_schema": str(fh.attrs.get("schema_version", ""))}
    for key, value in written.items():
        if value != settings[key]:
            raise ExportError(f"{manifest['h5'].iloc[0]}: written with {key} {value}, but the config says "
                              f"{settings[key]}: the config no longer describes the ingestion this model was "
                              "trained on; export with the config of the run (--config)")
    return settings


def clip_settings(recipe) -> dict[str, Any]:
    """How a stored series becomes the model's clip (:class:`cinefm.data.transforms.ClipSpec` and the dataset)."""
    from cinefm.data.transforms import ClipSpec

    d = recipe.data
    return {"frames": recipe.clip.frames, "size": recipe.clip.size, "period": recipe.clip.period, "mean": d.mean,
            "std": d.std, "motion_gain": d.motion_gain, "motion_crop": d.motion_crop, "min_frames": d.min_frames,
            "sax_fraction": d.sax_fraction, "seed": d.seed,
            "channels": ClipSpec(recipe.clip.frames, recipe.clip.size).channels}


def _experiments(predictions_csv: Path, split: str) -> list:
    from cinefm.stats.experiments import read_experiments

    try:
        return read_experiments(predictions_csv, split=split)
    except ValueError as err:
        log.warning("%s", err)
        return []


def split_metrics(predictions_csv: Path, config: Mapping[str, Any]) -> pd.DataFrame:
    """AUROC (DeLong CI) of every task, and regression metrics (bootstrap CI) of LVEF, on val and test."""
    from cinefm.stats.experiments import REGRESSION_TASK, StatsSettings, auroc_row, regression_rows

    s = StatsSettings.from_config(config)
    rows = []
    for split in ("val", "test"):
        for exp in _experiments(predictions_csv, split):
            r = auroc_row(exp, s)
            rows.append({"split": split, "task": r["task"], "metric": "auroc", "value": r["auc"],
                         "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n": r["n"], "note": r["note"]})
            if exp.task == REGRESSION_TASK:
                rows += [{"split": split, "task": exp.task, "metric": m["metric"], "value": m["value"],
                          "ci_low": m["ci_low"], "ci_high": m["ci_high"], "n": m["n"], "note": ""}
                         for m in regression_rows(exp, s)]
    return pd.DataFrame(rows, columns=["split", "task", "metric", "value", "ci_low", "ci_high", "n", "note"])


def validation_thresholds(predictions_csv: Path, config: Mapping[str, Any]) -> pd.DataFrame:
    """Operating points of every task chosen on the validation split (``folder.THRESHOLD_COLUMNS``)."""
    from cinefm.stats.experiments import StatsSettings, binary_view, threshold_rows

    s = StatsSettings.from_config(config)
    rows = []
    for exp in _experiments(predictions_csv, "val"):
        direction = binary_view(exp, s.heart_failure_lvef)[3]
        for r in threshold_rows(exp, s):
            rows.append({**r, "task": exp.task, "call_for": r["task"], "direction": direction})
    return pd.DataFrame(rows).reindex(columns=mf.THRESHOLD_COLUMNS)


def label_definitions(recipe, config: Mapping[str, Any]) -> dict[str, Any]:
    """What each task's score means (label vocabulary of the config; LVEF and heart failure by the method)."""
    from cinefm.labels.vocabulary import load_vocabulary

    path = Path(config["labels"]["vocabulary"])
    if not path.is_file() and not path.is_absolute():
        path = REPO_ROOT / path
    diseases = [t for t in recipe.tasks if t not in ("lvef", "heart_failure")]
    vocab = {d.key: d for d in load_vocabulary(path, diseases).diseases} if diseases else {}
    cut = recipe.heart_failure_lvef
    tasks = {}
    for task in recipe.tasks:
        if task == "lvef":
            tasks[task] = {"name": "left ventricular ejection fraction", "score": "predicted LVEF (percent)",
                           "calls": f"heart failure (LVEF < {cut:g} %): positive when the predicted LVEF is at or "
                                    "below the operating point's threshold"}
        elif task == "heart_failure":
            tasks[task] = {"name": "heart failure", "definition": f"LVEF < {cut:g} % (stated in the report)",
                           "score": "probability"}
        else:
            d = vocab[task]
            tasks[task] = {"name": d.name, "definition": d.definition, "score": "probability",
                           "calls": "positive when the probability is at or above the operating point's threshold"}
    return {"tasks": tasks, "heart_failure_lvef": cut,
            "label_values": "1 present; 0 absent, negated or not mentioned; unknown when the report is hedged"}


def training_counts(metrics_csv: Path) -> dict[str, float]:
    """The ``data`` rows of the run's metrics.csv: studies per split, known labels, positive weights."""
    m = pd.read_csv(metrics_csv)
    data = m[m["stage"].eq("data")]
    return {str(k): float(v) for k, v in zip(data["metric"], data["value"], strict=True)}


def _load_run(run_dir: Path):
    from cinefm.train.finetune_module import FinetuneModule
    from cinefm.train.recipe import FinetuneRecipe

    for name in RUN_FILES:
        if not (run_dir / name).is_file():
            raise ExportError(f"{run_dir / name}: not found; run the finetune job of this experiment first")
    module = FinetuneModule.load_from_checkpoint(run_dir / "best.ckpt", map_location="cpu", weights_only=False)
    recipe = FinetuneRecipe.from_yaml(run_dir / "hparams.yaml")
    portable = dataclasses.replace(recipe, video={**recipe.video, "weights": None},
                                   experiment_file=Path(recipe.experiment_file).name)
    saved = module.recipe
    if dataclasses.replace(saved, experiment_file=portable.experiment_file) != portable:
        raise ExportError(f"{run_dir}: hparams.yaml and best.ckpt describe different recipes; rerun the finetune job")
    if recipe.cohort != "cmr":
        raise ExportError(f"experiment {recipe.experiment}: cohort {recipe.cohort!r}; `cinefm predict` ingests cine "
                          "MRI DICOM, so only MRI (cohort cmr) models are exported")
    return module, portable


def _weights(module) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.model.state_dict().items()}


def _replace_folder(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` at ``out`` (an older export there is replaced)."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / out.name)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_model(experiment: str, config: Mapping[str, Any], results: PathLike, out: PathLike,
                 run_dir: PathLike | None = None) -> Path:
    """Write the model folder of fine-tuning run ``experiment`` (``results/finetune/<experiment>``) to ``out``."""
    from safetensors.torch import save_file

    results, out = Path(results), Path(out)
    run_dir = Path(run_dir) if run_dir is not None else results / "finetune" / experiment
    module, recipe = _load_run(run_dir)
    studies_csv = results / "ingest" / "studies.csv"
    preprocessing = {"ingest": ingestion_settings(config, studies_csv), "clip": clip_settings(recipe)}
    thresholds = validation_thresholds(run_dir / "predictions.csv", config)
    metrics = split_metrics(run_dir / "predictions.csv", config)
    counts = training_counts(run_dir / "metrics.csv")
    labels = label_definitions(recipe, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp.", dir=out.parent))
    try:
        save_file(_weights(module), str(tmp / mf.WEIGHTS), metadata={"format": "pt", "experiment": recipe.experiment})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp / mf.WEIGHTS, 0o666 & ~umask)  # safetensors writes 0600; the folder is meant to travel
        recipe.to_yaml(tmp / mf.RECIPE)
        write_text(tmp / mf.PREPROCESSING, yaml.safe_dump(preprocessing, sort_keys=False))
        shutil.copyfile(_views_file(config["ingest"]), tmp / mf.VIEWS)
        write_csv(thresholds, tmp / mf.THRESHOLDS)
        write_text(tmp / mf.LABELS, yaml.safe_dump(labels, sort_keys=False))
        files = {name: mf.sha256_file(tmp / name) for name in mf.CHECKED_FILES}
        hp = module.hparams
        manifest = {
            "format": mf.FORMAT, "schema_version": mf.FOLDER_SCHEMA, "name": recipe.experiment,
            "digest": mf.folder_digest(files), "kind": recipe.kind, "tasks": list(recipe.tasks),
            "head": {"target_mean": float(hp.target_mean), "target_std": float(hp.target_std)},
            "identity": recipe.identity, "versions": mf.versions_used(), "files": files,
        }
        mf.check_preprocessing(preprocessing, "export")
        write_text(tmp / mf.MANIFEST, json.dumps(manifest, indent=2) + "\n")
        write_text(tmp / mf.CARD, model_card(manifest, recipe, preprocessing, thresholds, metrics, counts, labels))
        os.chmod(tmp, 0o755)
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s (digest %s) to %s", recipe.experiment, manifest["digest"], out)
    return out


def export_from_cli(experiment: str, config: Mapping[str, Any], results: PathLike | None, out: PathLike) -> Path:
    """The CLI's call: ``results`` defaults to the config's ``results`` folder."""
    if not experiment:
        raise ConfigError("--experiment: give the name of a fine-tuning run (results/finetune/<name>)")
    return export_model(experiment, config, results or config["results"], out)


__all__ = ["ExportError", "clip_settings", "export_model", "ingestion_settings", "label_definitions",
           "split_metrics", "training_counts", "validation_thresholds"]
