"""The ``labels`` stage: a report table in, one row of labels per study out.

Input CSV: ``study_id``, ``report_text`` (and ``patient_id``, passed through when
present) — the scrubbed ``results/text/reports.csv`` in the pipeline. Output columns:

- ``study_id`` [, ``patient_id``];
- one column per disease key: 1, 0 or empty (unknown);
- ``lvef``: the LVEF the report states (:mod:`cinefm.labels.lvef`), or empty;
- ``heart_failure``: 1 if ``lvef < labels.heart_failure_lvef``, 0 if not, empty
  without an LVEF;
- ``backend``, ``model`` (for ``rules``: the cue engine, e.g. ``negex+sections``),
  ``cue_set`` (``labels.yaml@<sha256 prefix>``: the vocabulary, cues and prompts used);
  ``notes``: why labels are unknown (``disease: reason; ...``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd

from cinefm.atomic import write_csv
from cinefm.labels.backends import LabelBackend, build_backend
from cinefm.labels.lvef import parse_lvef
from cinefm.labels.vocabulary import load_vocabulary
from cinefm.text.report_table import drop_rows, read_report_table, rejection_counts

log = logging.getLogger(__name__)

CHUNK = 256  # reports per progress message


def labels_frame(
    table: pd.DataFrame, backend: LabelBackend, diseases: Collection[str], heart_failure_lvef: float,
    cue_set: str = "",
) -> pd.DataFrame:
    """Label every report of ``table`` (columns study_id, report_text[, patient_id])."""
    texts = table["report_text"].tolist()
    answers = []
    start = time.perf_counter()
    for i in range(0, len(texts), CHUNK):
        answers.extend(backend.label(texts[i:i + CHUNK]))
        log.info("labels: %d/%d reports (%.1f reports/s)", min(i + CHUNK, len(texts)), len(texts),
                 min(i + CHUNK, len(texts)) / max(time.perf_counter() - start, 1e-9))
    out = table[[c for c in ("study_id", "patient_id") if c in table]].reset_index(drop=True)
    for key in diseases:
        out[key] = pd.array([a[key].value for a in answers], dtype="Int8")
    lvef = [parse_lvef(t) for t in texts]
    out["lvef"] = pd.array(lvef, dtype="Float64")
    out["heart_failure"] = pd.array(
        [None if v is None else int(v < heart_failure_lvef) for v in lvef], dtype="Int8"
    )
    out["backend"] = backend.name
    out["model"] = backend.model
    out["cue_set"] = cue_set
    out["notes"] = ["; ".join(f"{k}: {a[k].reason}" for k in diseases if a[k].value is None) for a in answers]
    return out


def label_reports(
    reports_csv: str | os.PathLike,
    out_csv: str | os.PathLike,
    labels_cfg: dict[str, Any],
    *,
    backend: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    known_studies: Collection[str] | None = None,
) -> pd.DataFrame:
    """Run the label stage (see the module docstring); returns the written frame."""
    diseases = labels_cfg["diseases"]
    vocab = load_vocabulary(labels_cfg["vocabulary"], diseases)
    engine = build_backend(labels_cfg, vocab, cache_dir=cache_dir, name=backend)
    table, rejections = read_report_table(reports_csv, ("study_id", "report_text"), key="study_id")
    if known_studies is not None:
        unknown = ~table["study_id"].isin(set(known_studies))
        table = drop_rows(table, unknown, "unknown_study", "no imaging study", rejections, Path(reports_csv).name)
    out = labels_frame(table, engine, diseases, labels_cfg.get("heart_failure_lvef", 40), vocab.cue_set)
    write_csv(out, out_csv)
    unknown_labels = int(out[list(diseases)].isna().sum().sum())
    log.info("labels: %d studies -> %s (backend %s, model %s, cue set %s); %d unknown labels; rejected rows %s",
             len(out), out_csv, engine.name, engine.model, vocab.cue_set, unknown_labels,
             rejection_counts(rejections) or "none")
    sent = getattr(engine, "requests_sent", None)
    if sent is not None:
        log.info("labels: %d HTTP requests sent (the rest came from the cache)", sent)
    return out
