"""A model folder that travels: what ``cinefm export`` writes and ``cinefm predict`` reads.

Layout (``FOLDER_SCHEMA`` = 1)::

    model.json            manifest: schema, name, digest, tasks, head scaling, versions, file checksums
    weights.safetensors   the StudyModel's state dict (safetensors: no pickle, no code on load)
    recipe.yaml           the resolved FinetuneRecipe of the run (cinefm.train.recipe)
    preprocessing.yaml    ingestion (frame size, intensity percentiles, min frames, compression,
                          HDF5 schema) and clips (frames, size, period, mean, std, motion gain and crop,
                          min frames, SAX share, evaluation seed)
    views.yaml            the view rules ingestion classified series with
    thresholds.csv        operating points chosen on the validation split, per task
    labels.yaml           what each task means (label definitions, units, heart-failure cut-off)
    MODEL_CARD.md         training data, validation and test metrics with CIs, intended use, limits

:func:`load_model_folder` checks everything :mod:`cinefm.inference.predict` relies on and
refuses a folder it cannot honour with the reason (:class:`ModelFolderError`): an unknown
folder schema, a missing or altered file (SHA-256 in the manifest), a preprocessing key or
HDF5 layout this version does not know, an incompatible cinefm or torch version.
safetensors format: https://huggingface.co/docs/safetensors (header + raw tensors).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cinefm import __version__

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
FOLDER_SCHEMA = 1
FORMAT = "cinefm-model"
MANIFEST = "model.json"
WEIGHTS = "weights.safetensors"
RECIPE = "recipe.yaml"
PREPROCESSING = "preprocessing.yaml"
VIEWS = "views.yaml"
THRESHOLDS = "thresholds.csv"
LABELS = "labels.yaml"
CARD = "MODEL_CARD.md"
CHECKED_FILES = (WEIGHTS, RECIPE, PREPROCESSING, VIEWS, THRESHOLDS, LABELS)
# packages whose versions the folder records; torch and cinefm are checked on load
VERSION_PACKAGES = ("torch", "torchvision", "lightning", "numpy", "pandas", "h5py", "pydicom", "pylibjpeg",
                    "pylibjpeg-rle", "scipy", "safetensors")
INGEST_KEYS = ("frame_size", "intensity_percentiles", "min_frames", "compression", "hdf5_schema")
CLIP_KEYS = ("frames", "size", "period", "mean", "std", "motion_gain", "motion_crop", "min_frames",
             "sax_fraction", "seed", "channels")
THRESHOLD_COLUMNS = ["task", "call_for", "point", "direction", "threshold", "sensitivity", "specificity",
                     "accuracy", "tp", "fp", "tn", "fn"]


class ModelFolderError(ValueError):
    """A model folder that this cinefm cannot use as it was exported; the message says why."""


def sha256_file(path: PathLike) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions_used() -> dict[str, str]:
    """Versions of python, cinefm and the packages that shape the numbers (``VERSION_PACKAGES``)."""
    out = {"python": platform.python_version(), "cinefm": __version__}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _release(version: str) -> tuple[int, ...]:
    """``2.14.1+cu130`` -> (2, 14, 1)."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def compatibility_problem(package: str, exported: str, installed: str) -> str | None:
    """Why ``installed`` cannot stand in for ``exported`` (semantic versioning: the major number,
    and for 0.x releases the minor number, must agree), or None."""
    a, b = _release(exported), _release(installed)
    if not a or not b:
        return f"{package}: cannot compare versions {exported!r} and {installed!r}"
    width = 2 if a[0] == 0 else 1
    if a[:width] != b[:width]:
        return (f"{package} {installed} is installed but the model was exported with {package} {exported} "
                "(incompatible major version): install a matching release, or export the model again")
    return None


@dataclass(frozen=True)
class ModelFolder:
    """A checked model folder (see the module docstring); ``manifest`` is ``model.json``."""

    root: Path
    manifest: dict[str, Any]
    preprocessing: dict[str, Any]
    thresholds: pd.DataFrame

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def digest(self) -> str:
        return str(self.manifest["digest"])

    @property
    def tasks(self) -> list[str]:
        return list(self.manifest["tasks"])

    @property
    def recipe_path(self) -> Path:
        return self.root / RECIPE

    @property
    def weights_path(self) -> Path:
        return self.root / WEIGHTS

    @property
    def views_path(self) -> Path:
        return self.root / VIEWS


def folder_digest(checksums: dict[str, str]) -> str:
    """The model's identity: SHA-256 over the checksums of the files that shape its scores (16 hex)."""
    text = json.dumps({k: checksums[k] for k in sorted(checksums)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ModelFolderError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(doc, dict):
        raise ModelFolderError(f"{path}: expected a mapping")
    return doc


def _check_keys(section: Any, known: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise ModelFolderError(f"{where}: missing or not a mapping")
    unknown = sorted(set(section) - set(known))
    missing = sorted(set(known) - set(section))
    if unknown:
        raise ModelFolderError(f"{where}: unknown setting(s) {unknown}; this cinefm {__version__} cannot "
                               "reproduce that preprocessing (a newer cinefm exported the model)")
    if missing:
        raise ModelFolderError(f"{where}: setting(s) {missing} missing; export the model again")
    return section


def check_preprocessing(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """The ``ingest`` and ``clip`` sections, every key known; the HDF5 layout the one this version writes."""
    from cinefm.dicom.extract import SCHEMA_VERSION

    ingest = _check_keys(doc.get("ingest"), INGEST_KEYS, f"{where}: ingest")
    _check_keys(doc.get("clip"), CLIP_KEYS, f"{where}: clip")
    if str(ingest["hdf5_schema"]) != str(SCHEMA_VERSION):
        raise ModelFolderError(f"{where}: the model was trained on HDF5 layout {ingest['hdf5_schema']} but this "
                               f"cinefm {__version__} writes layout {SCHEMA_VERSION}; use the cinefm the model "
                               "card names")
    return doc


def load_model_folder(root: PathLike) -> ModelFolder:
    """Read and check a model folder; raise :class:`ModelFolderError` with the reason when it cannot be used."""
    root = Path(root)
    if not root.is_dir():
        raise ModelFolderError(f"{root}: model folder not found (write one with `cinefm export`)")
    path = root / MANIFEST
    if not path.is_file():
        raise ModelFolderError(f"{root}: no {MANIFEST}; not a model folder written by `cinefm export`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelFolderError(f"{path}: not valid JSON ({err})") from err
    if manifest.get("format") != FORMAT:
        raise ModelFolderError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    schema = manifest.get("schema_version")
    if schema != FOLDER_SCHEMA:
        raise ModelFolderError(f"{path}: model folder schema version {schema!r} is unknown to cinefm "
                               f"{__version__} (it reads version {FOLDER_SCHEMA})")
    for key in ("name", "digest", "tasks", "kind", "head", "versions", "files"):
        if key not in manifest:
            raise ModelFolderError(f"{path}: key {key!r} missing; export the model again")
    for name in CHECKED_FILES:
        file = root / name
        if not file.is_file():
            raise ModelFolderError(f"{root}: file {name} missing from the model folder")
        want = manifest["files"].get(name)
        if want is None or sha256_file(file) != want:
            raise ModelFolderError(f"{file}: its SHA-256 differs from the one in {MANIFEST}: the file was "
                                   "changed or damaged after export")
    if folder_digest(manifest["files"]) != manifest["digest"]:
        raise ModelFolderError(f"{path}: digest does not match the file checksums")
    installed = versions_used()
    for package in ("cinefm", "torch"):
        problem = compatibility_problem(package, str(manifest["versions"].get(package, "")), installed[package])
        if problem:
            raise ModelFolderError(f"{root}: {problem}")
    other = {k: (v, installed[k]) for k, v in manifest["versions"].items()
             if k in installed and installed[k] != v and k != "python"}
    if other:
        log.warning("model %s was exported with %s; scores may differ in the last digits", manifest["name"],
                    ", ".join(f"{k} {a} (installed {b})" for k, (a, b) in sorted(other.items())))
    pre = check_preprocessing(_read_yaml(root / PREPROCESSING), str(root / PREPROCESSING))
    thresholds = pd.read_csv(root / THRESHOLDS, dtype={"task": str, "call_for": str, "point": str,
                                                       "direction": str})
    missing = [c for c in THRESHOLD_COLUMNS if c not in thresholds.columns]
    if missing:
        raise ModelFolderError(f"{root / THRESHOLDS}: column(s) {missing} missing")
    return ModelFolder(root=root, manifest=manifest, preprocessing=pre, thresholds=thresholds)


__all__ = ["CARD", "CHECKED_FILES", "FOLDER_SCHEMA", "FORMAT", "LABELS", "MANIFEST", "PREPROCESSING", "RECIPE",
           "THRESHOLDS", "THRESHOLD_COLUMNS", "VIEWS", "WEIGHTS", "ModelFolder", "ModelFolderError",
           "check_preprocessing", "compatibility_problem", "folder_digest", "load_model_folder", "sha256_file",
           "versions_used"]
