"""The model card of an exported model (Markdown), after Mitchell et al., "Model Cards for Model
Reporting", FAT* 2019: model details, intended use, training data, metrics with CIs, limits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd


def _num(value: Any, digits: int = 3) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "—" if math.isnan(x) else f"{x:.{digits}g}" if abs(x) >= 10 else f"{x:.{digits}f}"


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_num(v) if isinstance(v, float) else str(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _metrics_table(metrics: pd.DataFrame) -> str:
    if metrics.empty:
        return "_no metrics: the run has no validation or test predictions with known targets_\n"
    m = metrics.copy()
    m["value (95 % CI)"] = [f"{_num(v)} ({_num(lo)}–{_num(hi)})" for v, lo, hi in
                            zip(m["value"], m["ci_low"], m["ci_high"], strict=True)]
    m["n"] = m["n"].map(lambda n: "" if pd.isna(n) else str(int(n)))
    return _table(m[["split", "task", "metric", "value (95 % CI)", "n", "note"]].fillna(""))


def model_card(manifest: Mapping[str, Any], recipe, preprocessing: Mapping[str, Any], thresholds: pd.DataFrame,
               metrics: pd.DataFrame, counts: Mapping[str, float], labels: Mapping[str, Any]) -> str:
    """Markdown text of ``MODEL_CARD.md``."""
    ing, clip = preprocessing["ingest"], preprocessing["clip"]
    tasks = labels["tasks"]
    no_points = [t for t in recipe.tasks if t not in set(thresholds["task"])]
    count_rows = pd.DataFrame([(k, str(int(v)) if float(v).is_integer() else _num(v)) for k, v in counts.items()],
                              columns=["count", "value"])
    task_names = ", ".join(f"`{t}` ({tasks[t]['name']})" for t in recipe.tasks)
    versions = ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())
    parts = [
        f"# Model card: {recipe.experiment}\n",
        f"Model digest `{manifest['digest']}` · exported by cinefm {manifest['versions']['cinefm']} · "
        f"folder schema {manifest['schema_version']}\n",
        "## Model\n",
        f"- Task: {recipe.kind} of {task_names}.",
        f"- Architecture: video encoder `{recipe.video['name']}` ({clip['frames']} frames of "
        f"{clip['size']}×{clip['size']} pixels per clip, {clip['channels']} channels), projection to "
        f"{recipe.projection_dim} dimensions, gated-attention MIL over the study's views "
        f"({recipe.attention} attention, hidden {recipe.mil_hidden}), a linear head per task.",
        f"- Initialisation `{recipe.init}`, mode `{recipe.mode}`, {recipe.fraction:.0%} of the training patients, "
        f"seed {recipe.seed}.",
        f"- Versions at export: {versions}.\n",
        "## Intended use\n",
        "Research use: scoring cine cardiac MRI studies (DICOM, 4CH/3CH/2CH long-axis and short-axis cine "
        "series as the view rules in `views.yaml` recognise them) with `cinefm predict`, which repeats the "
        "ingestion and clip preprocessing below. Not a medical device; not for clinical decisions. Calls at "
        "the operating points are thresholds chosen on this run's validation split: re-check them on local "
        "data before relying on sensitivity or specificity.\n",
        "## Training data\n",
        f"Cohort `{recipe.cohort}`; patient-level splits; labels parsed from the clinical reports "
        f"({labels['label_values']}). Counts from the run's metrics.csv:\n",
        _table(count_rows),
        "## Metrics (validation and test split of the run)\n",
        "AUROC with DeLong 95 % CIs (DeLong et al. 1988; as R pROC). For an LVEF model the `heart_failure` "
        f"row scores the predicted LVEF as a detector of LVEF < {labels['heart_failure_lvef']:g} %; MAE, RMSE, "
        "R² and Pearson r carry percentile-bootstrap CIs, the Bland–Altman rows the limits of agreement.\n",
        _metrics_table(metrics),
        "## Operating points (chosen on the validation split)\n",
        "Youden (max sensitivity + specificity − 1) and the thresholds reaching the target sensitivity / "
        "specificity (Youden 1950; pROC's midpoint thresholds). Validation values below; `predict` writes "
        "one call per point.\n",
        _table(thresholds.drop(columns=["tp", "fp", "tn", "fn"])),
        *([f"No operating point for {', '.join(no_points)}: the validation split lacks cases or controls "
           "of it; predict writes its score without calls.\n"] if no_points else []),
        "## Preprocessing (read by `cinefm predict` from this folder)\n",
        f"- Ingestion: frames resized to {ing['frame_size']} pixels, intensities windowed at the "
        f"{ing['intensity_percentiles'][0]:g}–{ing['intensity_percentiles'][1]:g} percentiles, series with "
        f"fewer than {ing['min_frames']} frames left out, HDF5 layout {ing['hdf5_schema']}.",
        f"- Clips: {clip['frames']} frames sampled uniformly over the loop (phase 0), "
        f"{'a crop of ' + format(clip['motion_crop'], 'g') + ' of the frame around the moving heart, ' if clip['motion_crop'] < 1 else ''}"
        f"resized to {clip['size']}², normalised with mean {clip['mean']:g} and SD {clip['std']:g}"
        f"{', motion channel gain ' + format(clip['motion_gain'], 'g') if clip['motion_gain'] > 0 else ''}; "
        f"a share {clip['sax_fraction']:g} of the SAX slices per study.\n",
        "## Known limits\n",
        "- Trained on one cohort; scanners, vendors, sequences and populations not seen in training may "
        "shift scores and break the calibration of the operating points.",
        "- A study needs at least one cine series that the view rules recognise; studies without one are "
        "reported as excluded, never scored.",
        "- Labels come from report text (rules or a language model), not from adjudicated diagnoses; their "
        "errors bound what the model can learn.",
        "- Small validation splits give unstable operating points (see the CIs above).\n",
    ]
    return "\n".join(parts)
