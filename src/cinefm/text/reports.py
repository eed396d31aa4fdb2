"""The ``reports`` stage: hospital report CSV -> scrubbed table, tokenizer, indexed JSON.

Order matters for privacy: identifiers are pseudonymized and the text scrubbed
(:mod:`cinefm.text.scrub`) before anything is written; sentences, the trained
vocabulary and token ids all come from scrubbed text.

Outputs (``out_dir`` = ``results/text``):

- ``reports.csv``: ``patient_id``, ``study_id`` (pseudonyms, see
  :mod:`cinefm.privacy`), ``report_text`` (scrubbed) — what the label stage reads;
- ``reports.json`` + ``reports.json.idx``: ``{study_id: {"sentences", "input_ids"}}``
  (:mod:`cinefm.text.indexed_json`);
- ``tokenizer/``: the BERT tokenizer that produced ``input_ids``;
- ``rejected.csv``: rows skipped or repaired, with the reason (no report text).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cinefm.atomic import write_csv, write_text
from cinefm.privacy import pseudonymize
from cinefm.text.indexed_json import write_indexed_json
from cinefm.text.report_table import (
    Rejection,
    log_rejection,
    read_report_table,
    rejection_counts,
    write_rejections,
)
from cinefm.text.scrub import scrub_phi
from cinefm.text.sentences import SentenceSplitter
from cinefm.text.tokenizer import encode_sentences, load_tokenizer, save_tokenizer, train_wordpiece

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("patient_id", "accession_number", "report_text")


@dataclass(frozen=True)
class ReportsSummary:
    """What the stage wrote: study count, rejections per reason, tokenizer origin."""

    studies: int
    rejected: dict[str, int]
    tokenizer: str
    splitter: str


def scrub_report_table(df: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """Pseudonymize ids and scrub text: returns ``patient_id, study_id, report_text``.

    ``df`` has the hospital columns ``patient_id``, ``accession_number``,
    ``report_text`` and optionally ``patient_name`` and ``exam_date``; its index is kept.
    """
    blank = pd.Series("", index=df.index)
    names, dates = df.get("patient_name", blank), df.get("exam_date", blank)
    scrubbed = [
        scrub_phi(text, names=[name], identifiers=[pid, acc], dates=[date])
        for text, name, pid, acc, date in zip(
            df["report_text"], names, df["patient_id"], df["accession_number"], dates, strict=True
        )
    ]
    return pd.DataFrame({
        "patient_id": [pseudonymize(v, key, "patient") for v in df["patient_id"]],
        "study_id": [pseudonymize(v, key, "study") for v in df["accession_number"]],
        "report_text": scrubbed,
    }, index=df.index)


def _reject(table: pd.DataFrame, mask: pd.Series, reason: str, detail: str,
            rejections: list[Rejection], source: str) -> pd.DataFrame:
    """Move the rows of ``table`` where ``mask`` holds to ``rejections``; return the rest."""
    for row, sid in table.loc[mask, "study_id"].items():
        r = Rejection(int(row), reason, f"study {sid}: {detail}")
        log_rejection(source, r)
        rejections.append(r)
    return table.loc[~mask]


def build_reports(
    reports_csv: str | os.PathLike,
    out_dir: str | os.PathLike,
    key: bytes,
    *,
    stanza_dir: str | None = None,
    tokenizer_dir: str | None = None,
    vocab_size: int = 2000,
    min_frequency: int = 2,
    max_tokens: int = 64,
    known_studies: Collection[str] | None = None,
) -> ReportsSummary:
    """Run the reports stage (see the module docstring); ``known_studies`` = study ids
    with images, when known: reports of other studies are counted and dropped."""
    out, source = Path(out_dir), Path(reports_csv).name
    splitter = SentenceSplitter(stanza_dir)  # configuration errors surface before any work
    tokenizer = load_tokenizer(tokenizer_dir) if tokenizer_dir else None
    df, rejections = read_report_table(reports_csv, REQUIRED_COLUMNS, key="accession_number")
    table = scrub_report_table(df, key)
    if known_studies is not None:
        unknown = ~table["study_id"].isin(set(known_studies))
        table = _reject(table, unknown, "unknown_study", "no imaging study with this accession", rejections, source)
    sentences = pd.Series([splitter(t) for t in table["report_text"]], index=table.index, dtype=object)
    no_text = sentences.map(len) == 0
    table = _reject(table, no_text, "empty_report", "no sentence with words", rejections, source)
    sentences = sentences[~no_text]

    if tokenizer is not None:
        origin = f"loaded from {tokenizer_dir}"
    else:
        corpus = [s for sents in sentences for s in sents]
        tokenizer = train_wordpiece(corpus, vocab_size=vocab_size, min_frequency=min_frequency)
        origin = f"WordPiece trained on {len(corpus)} sentences"
    save_tokenizer(tokenizer, out / "tokenizer")

    entries = {
        sid: {"sentences": sents, "input_ids": encode_sentences(tokenizer, sents, max_tokens)}
        for sid, sents in zip(table["study_id"], sentences, strict=True)
    }
    write_indexed_json(entries, out / "reports.json")
    # which splitter and tokenizer produced the sentences (the method: stanza, BERT's WordPiece)
    write_text(out / "pipeline.json", json.dumps({"splitter": splitter.backend, "splitter_version": splitter.version,
                                                   "tokenizer": f"loaded from {Path(tokenizer_dir).name}" if tokenizer_dir else origin,
                                                   "vocab_size": len(tokenizer),
                                                   "max_tokens": max_tokens}, indent=1) + "\n")
    write_csv(table, out / "reports.csv")  # the row index is dropped: it points into raw data
    write_rejections(rejections, out / "rejected.csv")
    summary = ReportsSummary(len(entries), rejection_counts(rejections), origin, splitter.backend)
    log.info("reports: %d studies written to %s; rejected %s; tokenizer %s (vocab %d); splitter %s",
             summary.studies, out, summary.rejected or "none", origin, len(tokenizer), summary.splitter)
    return summary
