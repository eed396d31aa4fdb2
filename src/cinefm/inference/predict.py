"""``cinefm predict``: a model folder + a folder of DICOM studies -> scores, calls and exclusions.

Steps: check the model folder (:func:`cinefm.inference.folder.load_model_folder`); ingest the
DICOM folder with the model's ingestion settings and view rules (:func:`cinefm.dicom.ingest.run_ingest`:
quarantine, view selection, pseudonyms, HDF5 under ``OUT/h5``); build every study's clips as in
the run's evaluation (:class:`cinefm.data.datasets.StudyDataset`, phase-0 sampling, the
SAX subset keyed by study); score every task with the exported weights
(:meth:`cinefm.train.finetune_module.FinetuneModule.predict_step`), batch by batch.

Outputs (``OUT``):

- ``predictions.csv``: one row per study and task: ``model``, ``model_digest``, ``study_id``,
  ``patient_id`` (pseudonyms), ``task``, ``score`` (LVEF in percent or a probability),
  ``call_for`` (what the calls decide: the disease, or ``heart_failure`` for LVEF),
  ``call_<point>`` (1/0 at each operating point of the model's thresholds.csv, chosen on
  validation; empty without one), ``views`` (views used, ``;``-joined), ``n_clips``,
  ``attn_<view>`` (share of the MIL attention per view), ``input_digest`` (the study HDF5's
  ``source_digest``).
- ``studies.csv``: one row per study found: ``patient_id``, ``study_id``, ``status``
  (``scored`` | ``excluded`` | ``failed``), ``reason``, ``views``.
- ``files.csv``: one row per input file (``relpath``, ``status``, ``reason``, ids, ``view``, ``used``).
- ``flow.csv``: the ingestion flow (:mod:`cinefm.dicom.flow`) plus level ``scoring`` rows.
- ``summary.html``: a short self-contained page of the above; ``run.json``: model, versions, counts.
- ``ingest/`` and ``h5/``: the ingestion outputs (as ``cinefm ingest`` writes them).

Resumable: ingestion keeps HDF5 files whose inputs did not change, and a study whose rows in
``predictions.csv`` carry this model's digest and its current ``input_digest`` is not scored
again. ``predictions.csv`` is rewritten (atomically) after every ``chunk`` studies, so a killed
run loses at most one chunk.
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from cinefm import __version__
from cinefm.atomic import write_csv, write_text
from cinefm.data.h5 import VIEWS, drop_short_series, scan_series
from cinefm.dicom.flow import FLOW_COLUMNS, reason_code
from cinefm.inference.folder import ModelFolder, ModelFolderError, load_model_folder, versions_used

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
OK_MANIFEST = ("written", "unchanged")
FILE_COLUMNS = ["relpath", "status", "reason", "patient_id", "study_id", "series_id", "view", "used"]
STUDY_COLUMNS = ["patient_id", "study_id", "status", "reason", "views"]


@dataclass(frozen=True)
class PredictResult:
    """Where the outputs are and what happened."""

    out: Path
    predictions: pd.DataFrame
    studies: pd.DataFrame
    n_scored_now: int
    n_reused: int


# ----------------------------------------------------------------------------- the model


def load_module(folder: ModelFolder):
    """The exported model as a :class:`~cinefm.train.finetune_module.FinetuneModule` in eval mode (CPU)."""
    from safetensors.torch import load_file

    from cinefm.inference.export import clip_settings
    from cinefm.train.finetune_module import FinetuneModule
    from cinefm.train.recipe import FinetuneRecipe

    try:
        recipe = FinetuneRecipe.from_yaml(folder.recipe_path)
    except ValueError as err:
        raise ModelFolderError(f"{folder.recipe_path}: {err}") from err
    if clip_settings(recipe) != folder.preprocessing["clip"]:
        raise ModelFolderError(f"{folder.root}: recipe.yaml and preprocessing.yaml describe different clips")
    head = folder.manifest["head"]
    try:
        module = FinetuneModule(recipe, target_mean=head["target_mean"], target_std=head["target_std"])
    except (KeyError, ValueError, TypeError) as err:
        raise ModelFolderError(f"{folder.recipe_path}: this cinefm {__version__} cannot build the recipe's model "
                               f"({err})") from err
    try:
        module.model.load_state_dict(load_file(str(folder.weights_path)), strict=True)
    except (KeyError, ValueError, RuntimeError) as err:
        raise ModelFolderError(f"{folder.weights_path}: the weights do not fit the recipe's model ({err})") from err
    return module.eval()


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` (refused when no GPU is visible) or ``auto`` (cuda when available)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device: {device!r}; choose cpu, cuda or auto")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    return torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")


# ----------------------------------------------------------------------------- ingestion and studies


def ingest(folder: ModelFolder, dicom_root: PathLike, out: Path, *, jobs: int, phantom: bool,
           key_file: PathLike | None) -> None:
    """:func:`cinefm.dicom.ingest.run_ingest` with the model folder's settings and view rules."""
    from cinefm.dicom.ingest import run_ingest

    settings = {k: v for k, v in folder.preprocessing["ingest"].items() if k != "hdf5_schema"}
    cfg = {**settings, "views": str(folder.views_path), "shards": max(1, jobs)}
    run_ingest(dicom_root, out, ingest_cfg=cfg, jobs=jobs, phantom=phantom, key_file=key_file)


def study_table(files: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Every study the scan found, with the ingestion's verdict (``STUDY_COLUMNS``; ``scored`` decided later)."""
    f = files[files["study_id"].notna() & files["patient_id"].notna()]
    man = manifest.set_index("study_id") if len(manifest) else pd.DataFrame(columns=["status", "reason", "views"])
    rows = []
    for (study, patient), grp in f.groupby(["study_id", "patient_id"], sort=True):
        if study in man.index and man.at[study, "status"] in OK_MANIFEST:
            rows.append((patient, study, "ingested", "", man.at[study, "views"]))
        elif study in man.index:
            rows.append((patient, study, "failed", man.at[study, "reason"] or "failed", ""))
        else:
            counts = grp.assign(code=grp["status"] + "/" + grp["reason"].map(reason_code).replace("", "-"))
            summary = ", ".join(f"{n} {c}" for c, n in counts["code"].value_counts().items())
            rows.append((patient, study, "excluded", f"no_cine_view: no usable cine series ({summary} files)", ""))
    return pd.DataFrame(rows, columns=STUDY_COLUMNS)


def file_table(files: pd.DataFrame) -> pd.DataFrame:
    """``files.csv``: one row per input file with its status and reason (``FILE_COLUMNS``)."""
    return files.assign(used=files["selected"].fillna(False).astype(bool)).reindex(columns=FILE_COLUMNS)


def _input_digest(h5: str) -> str:
    with h5py.File(h5, "r") as fh:
        return str(fh.attrs.get("source_digest", ""))


# ----------------------------------------------------------------------------- scoring


def calls(rows: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """``call_for`` and one ``call_<point>`` column per operating point (1/0; empty without one).

    Direction ``<``: positive when score >= threshold; ``>`` (LVEF as heart failure): when
    score <= threshold (pROC's rule, :class:`cinefm.stats.roc.RocCurve`).
    """
    rows = rows.copy()
    rows["call_for"] = rows["task"].map(lambda t: "heart_failure" if t == "lvef" else t)
    for point in pd.unique(thresholds["point"]):
        col = pd.Series(pd.NA, index=rows.index, dtype="Int64")
        for t in thresholds[thresholds["point"] == point].itertuples(index=False):
            sel = rows["task"] == t.task
            hit = rows.loc[sel, "score"] >= t.threshold if t.direction == "<" else rows.loc[sel, "score"] <= t.threshold
            col[sel] = hit.astype(int)
            rows.loc[sel, "call_for"] = t.call_for
        rows[f"call_{point}"] = col
    return rows


def _load_items(ds, indices: range, failures: dict[str, str]) -> list[dict]:
    """Items ``indices`` of ``ds``; a study whose HDF5 cannot be read goes to ``failures`` with the reason."""
    items = []
    for i in indices:
        try:
            items.append(ds[i])
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            study = ds.studies[i]
            failures[study] = f"unreadable_h5: {type(err).__name__}: {err}"
            log.warning("study %s: %s", study, failures[study])
    return items


def score_studies(module, series: pd.DataFrame, clip: dict, tasks: list[str], *, device: torch.device,
                  batch_size: int, chunk: int, on_chunk) -> dict[str, str]:
    """Score the studies of ``series`` in chunks of ``chunk`` studies; ``on_chunk(rows)`` after each.

    Returns the studies that could not be read, with the reason (the others are scored).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cinefm.data.collate import collate_studies
    from cinefm.data.datasets import StudyDataset
    from cinefm.data.h5 import H5Reader
    from cinefm.data.transforms import ClipSpec, ClipTransform
    from cinefm.train.finetune_module import predict_batch

    spec = ClipSpec(frames=clip["frames"], size=clip["size"], mean=clip["mean"], std=clip["std"],
                    channels=clip["channels"], motion_gain=clip["motion_gain"], motion_crop=clip["motion_crop"])
    studies = list(pd.unique(series["study_id"]))
    failures: dict[str, str] = {}
    module.to(device)
    with Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not log.isEnabledFor(logging.INFO)) as bar:
        progress = bar.add_task("studies", total=len(studies))
        for start in range(0, len(studies), chunk):
            part = series[series["study_id"].isin(studies[start:start + chunk])]
            targets = pd.DataFrame(np.nan, index=pd.Index(pd.unique(part["study_id"]), name="study_id"),
                                   columns=tasks)
            ds = StudyDataset(part, targets, ClipTransform(spec, train=False), seed=int(clip["seed"]),
                              sax_fraction=float(clip["sax_fraction"]), reader=H5Reader(), require_target=False)
            rows = []
            try:
                with torch.inference_mode():
                    for i, first in enumerate(range(0, len(ds), batch_size)):
                        indices = range(first, min(first + batch_size, len(ds)))
                        items = _load_items(ds, indices, failures)
                        bar.advance(progress, len(indices))
                        if not items:
                            continue
                        batch = collate_studies(items)
                        used = {s: [v for v in views if v] for s, views in zip(batch["study_id"], batch["views"],
                                                                                strict=True)}
                        for row in predict_batch(module, batch, i):  # the run's and external tests' entry
                            views = used[row["study_id"]]
                            row.update(views=";".join(v for v in VIEWS if v in views), n_clips=len(views))
                            rows.append(row)
            finally:
                ds.reader.close()
            on_chunk(rows)
    return failures


def _previous(path: Path, digest: str, inputs: dict[str, str]) -> pd.DataFrame:
    """Rows of an earlier ``predictions.csv`` still valid: same model digest, same study inputs."""
    if not path.is_file():
        return pd.DataFrame()
    old = pd.read_csv(path, dtype={"study_id": str, "patient_id": str, "model_digest": str,
                                   "input_digest": str, "task": str})
    if not {"model_digest", "input_digest", "study_id"} <= set(old.columns):
        return pd.DataFrame()
    other = sorted(set(old["model_digest"].dropna()) - {digest})
    if other:
        log.warning("%s: rows of other model(s) %s are replaced (use one --out folder per model)", path, other)
    keep = old["model_digest"].eq(digest) & (old["input_digest"] == old["study_id"].map(inputs))
    return old[keep]


def _ordered(rows: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    points = [f"call_{p}" for p in pd.unique(thresholds["point"])]
    columns = ["model", "model_digest", "study_id", "patient_id", "task", "score", "call_for", *points, "views",
               "n_clips", *[f"attn_{v}" for v in VIEWS], "input_digest"]
    return rows.reindex(columns=columns).sort_values(["study_id", "task"], kind="stable", ignore_index=True)


# ----------------------------------------------------------------------------- reports


def scoring_flow(studies: pd.DataFrame) -> pd.DataFrame:
    """Level ``scoring`` rows of flow.csv: studies in, excluded by status and reason code, scored."""
    rows = [("scoring", "input", "", "", len(studies))]
    bad = studies[~studies["status"].eq("scored")]
    for (status, code), n in bad.groupby([bad["status"], bad["reason"].map(reason_code)]).size().items():
        rows.append(("scoring", "excluded", status, code, int(n)))
    rows.append(("scoring", "kept", "scored", "", int(studies["status"].eq("scored").sum())))
    return pd.DataFrame(rows, columns=FLOW_COLUMNS)


def summary_html(folder: ModelFolder, predictions: pd.DataFrame, studies: pd.DataFrame, files: pd.DataFrame,
                 device: str) -> str:
    """A short self-contained page: model, counts, per-task score summary and calls, exclusions."""
    from cinefm.report.html import CSS
    from cinefm.report.tables import table_html

    e = html.escape
    per_task = []
    for task, grp in predictions.groupby("task", sort=True):
        row = {"task": task, "calls for": grp["call_for"].iloc[0], "studies": len(grp),
               "mean score": grp["score"].mean(),
               "min": grp["score"].min(), "max": grp["score"].max()}
        for c in [c for c in grp.columns if c.startswith("call_") and c != "call_for"]:
            row[f"positive {c[5:]}"] = "" if grp[c].isna().all() else int(grp[c].fillna(0).sum())
        per_task.append(row)
    excluded = studies[~studies["status"].eq("scored")][["study_id", "status", "reason"]]
    file_counts = (files.groupby(["status", files["reason"].map(reason_code)]).size()
                   .rename("files").reset_index().rename(columns={"reason": "reason code"}))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>cinefm predict: {e(folder.name)}</title><style>{CSS}</style></head><body>
<header><h1>cinefm predict</h1><p>model {e(folder.name)} · digest {e(folder.digest)} · cinefm {e(__version__)}
 · device {e(device)}</p></header><main>
<section><h2>Studies</h2><p class="lead">{int(studies['status'].eq('scored').sum())} of {len(studies)} studies
scored; {len(files)} input files. Identifiers are pseudonyms; calls use the operating points chosen on the
model's validation split (see MODEL_CARD.md in the model folder).</p>{table_html(pd.DataFrame(per_task))}</section>
<section><h2>Studies not scored</h2>{table_html(excluded)}</section>
<section><h2>Input files by status</h2>{table_html(file_counts)}</section>
</main></body></html>
"""


# ----------------------------------------------------------------------------- the command


def run_predict(model_dir: PathLike, dicom_root: PathLike, out: PathLike, *, jobs: int = 1, device: str = "auto",
                batch_size: int | None = None, chunk: int = 256, phantom: bool = False,
                key_file: PathLike | None = None) -> PredictResult:
    """Ingest ``dicom_root``, score every study with the model folder, write the outputs (module docstring)."""
    t0 = time.perf_counter()
    dev = resolve_device(device)
    folder = load_model_folder(model_dir)
    module = load_module(folder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ingest(folder, dicom_root, out, jobs=max(1, int(jobs)), phantom=phantom, key_file=key_file)
    files = pd.read_parquet(out / "ingest" / "files.parquet")
    manifest = pd.read_csv(out / "ingest" / "studies.csv", dtype=str, keep_default_na=False)
    studies = study_table(files, manifest)
    ok = manifest[manifest["status"].isin(OK_MANIFEST)]
    ok = ok.assign(h5=[str(out / "h5" / r) for r in ok["h5_relpath"]])
    clip = folder.preprocessing["clip"]
    series, _ = drop_short_series(scan_series(ok), int(clip["min_frames"]))
    short = studies["status"].eq("ingested") & ~studies["study_id"].isin(series["study_id"])
    studies.loc[short, ["status", "reason"]] = ["excluded", f"short_series: no series with at least "
                                                            f"{clip['min_frames']} frames"]
    inputs = {s: _input_digest(h) for s, h in zip(ok["study_id"], ok["h5"], strict=True)}
    pred_csv = out / "predictions.csv"
    kept = _previous(pred_csv, folder.digest, inputs)
    done = set(kept["study_id"]) if len(kept) else set()
    todo = series[~series["study_id"].isin(done)]
    log.info("predict: %d studies to score, %d already scored by model %s", todo["study_id"].nunique(),
             len(done), folder.digest)
    parts = [kept] if len(kept) else []

    def on_chunk(rows: list[dict]) -> None:
        if not rows:
            return
        new = pd.DataFrame(rows).assign(model=folder.name, model_digest=folder.digest)
        new["input_digest"] = new["study_id"].map(inputs)
        parts.append(_ordered(calls(new, folder.thresholds), folder.thresholds))
        write_csv(_ordered(pd.concat(parts, ignore_index=True), folder.thresholds), pred_csv)

    size = int(batch_size or module.recipe.data.batch_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(jobs)))
    try:
        failures = score_studies(module, todo, clip, folder.tasks, device=dev, batch_size=size, chunk=chunk,
                                 on_chunk=on_chunk)
    finally:
        torch.set_num_threads(threads)
    predictions = (_ordered(pd.concat(parts, ignore_index=True), folder.thresholds) if parts
                   else _ordered(pd.DataFrame(columns=["study_id", "task", "score"]), folder.thresholds))
    write_csv(predictions, pred_csv)
    scored = studies["study_id"].isin(predictions["study_id"])
    studies.loc[scored, ["status", "reason"]] = ["scored", ""]
    for study, reason in failures.items():
        studies.loc[studies["study_id"].eq(study), ["status", "reason"]] = ["failed", reason]
    leftover = studies["status"].eq("ingested")
    if leftover.any():  # cannot happen unless scoring skipped a study: say so rather than drop it
        studies.loc[leftover, ["status", "reason"]] = ["failed", "not_scored: the study was ingested but not scored"]
    write_csv(studies, out / "studies.csv")
    file_rows = file_table(files)
    write_csv(file_rows, out / "files.csv")
    flow = pd.concat([pd.read_csv(out / "ingest" / "flow.csv", keep_default_na=False), scoring_flow(studies)],
                     ignore_index=True)
    write_csv(flow, out / "flow.csv")
    write_text(out / "summary.html", summary_html(folder, predictions, studies, file_rows, str(dev)))
    run = {"model": folder.name, "model_digest": folder.digest, "device": str(dev), "versions": versions_used(),
           "studies": int(len(studies)), "scored": int(scored.sum()), "scored_now": int(todo["study_id"].nunique()),
           "reused": len(done), "seconds": round(time.perf_counter() - t0, 1)}
    write_text(out / "run.json", json.dumps(run, indent=2) + "\n")
    log.info("predict: scored %d of %d studies (%d reused) -> %s", run["scored"], len(studies), len(done), out)
    return PredictResult(out, predictions, studies, run["scored_now"], len(done))


__all__ = ["PredictResult", "calls", "load_module", "resolve_device", "run_predict", "scoring_flow",
           "study_table", "summary_html"]
