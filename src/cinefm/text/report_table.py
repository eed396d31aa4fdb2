"""Tolerant reading of report CSVs: a bad row is named, counted and skipped, not fatal.

Hospital exports are messy. :func:`read_report_table` reads a CSV whose first line is
a header and returns the good rows as a frame plus one :class:`Rejection` per bad
row (malformed field count, missing required value, empty report, duplicate key).
Bytes that are not UTF-8 (Windows-1252 exports are common) are decoded as
Windows-1252, logged and counted but the row is kept. Row numbers are 1-based data
rows (the header is row 0); the returned frame's index holds them.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from cinefm.atomic import write_csv

log = logging.getLogger(__name__)

_SURROGATES_RE = re.compile("[\udc80-\udcff]+")


@dataclass(frozen=True)
class Rejection:
    """A CSV row that was skipped (or repaired, when ``kept``), and why. No report text."""

    row: int
    reason: str
    detail: str
    kept: bool = False


class ReportTableError(ValueError):
    """The CSV as a whole cannot be used (missing file or required column)."""


def _repair(value: str) -> str:
    """Decode surrogate-escaped (non-UTF-8) bytes as Windows-1252."""
    return _SURROGATES_RE.sub(
        lambda m: bytes(ord(c) - 0xDC00 for c in m[0]).decode("cp1252", errors="replace"), value
    )


def read_report_table(
    path: str | os.PathLike,
    required: Sequence[str],
    key: str | None = None,
    text_column: str = "report_text",
) -> tuple[pd.DataFrame, list[Rejection]]:
    """Read ``path``; return (good rows as strings, rejections).

    ``required``: columns that must exist and be non-empty in a kept row.
    ``key``: a column whose duplicates are rejected (the first occurrence is kept).
    ``text_column``: the free-text column; a row where it is blank is an empty report.
    """
    path = Path(path)
    if not path.is_file():
        raise ReportTableError(f"{path}: report CSV not found")
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    reader = csv.reader(io.StringIO(raw.decode("utf-8", errors="surrogateescape"), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration as err:
        raise ReportTableError(f"{path}: empty file (expected a header with {', '.join(required)})") from err
    missing = [c for c in required if c not in header]
    if missing:
        raise ReportTableError(
            f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}"
        )
    rows: list[list[str]] = []
    rejections: list[Rejection] = []
    seen: set[str] = set()
    index: list[int] = []
    row_no = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            row_no += 1
            rejections.append(Rejection(row_no, "malformed", f"unreadable CSV: {err}"))
            continue
        if not fields or all(not f.strip() for f in fields):
            continue  # a blank line is not a row
        row_no += 1
        if len(fields) != len(header):
            rejections.append(Rejection(row_no, "malformed", f"{len(fields)} fields, expected {len(header)}"))
            continue
        record = dict(zip(header, fields, strict=True))
        bad = [c for c, v in record.items() if _SURROGATES_RE.search(v)]
        if bad:
            record = {c: _repair(v) for c, v in record.items()}
            rejections.append(
                Rejection(row_no, "non_utf8", f"non-UTF-8 bytes in {', '.join(bad)} (read as cp1252)", kept=True)
            )
        if text_column in record and not record[text_column].strip():
            rejections.append(Rejection(row_no, "empty_report", f"{text_column} is empty"))
            continue
        blank = [c for c in required if not record[c].strip()]
        if blank:
            rejections.append(Rejection(row_no, "missing_value", f"empty {', '.join(blank)}"))
            continue
        if key is not None:
            k = record[key].strip()
            if k in seen:
                rejections.append(Rejection(row_no, "duplicate", f"{key} repeats an earlier row"))
                continue
            seen.add(k)
        rows.append([record[c] for c in header])
        index.append(row_no)
    for r in rejections:
        log_rejection(path.name, r)
    return pd.DataFrame(rows, columns=header, dtype=str, index=pd.Index(index, name="row")), rejections


def log_rejection(source: str, r: Rejection) -> None:
    """Log one rejection as a warning naming the file and row."""
    log.warning("%s row %d: %s — %s%s", source, r.row, r.reason, r.detail, "; kept" if r.kept else "; skipped")


def drop_rows(table: pd.DataFrame, mask: pd.Series, reason: str, detail: str,
              rejections: list[Rejection], source: str) -> pd.DataFrame:
    """Log and record the rows of ``table`` where ``mask`` holds (index = row number,
    column ``study_id`` named in the detail); return the other rows."""
    for row, sid in table.loc[mask, "study_id"].items():
        r = Rejection(int(row), reason, f"study {sid}: {detail}")
        log_rejection(source, r)
        rejections.append(r)
    return table.loc[~mask]


def rejection_counts(rejections: Sequence[Rejection]) -> dict[str, int]:
    """Number of rejections per reason."""
    counts: dict[str, int] = {}
    for r in rejections:
        counts[r.reason] = counts.get(r.reason, 0) + 1
    return counts


def write_rejections(rejections: Sequence[Rejection], path: str | os.PathLike) -> None:
    """Write rejections as CSV (row, reason, detail, kept); header only when none."""
    cols = ["row", "reason", "detail", "kept"]
    write_csv(pd.DataFrame([asdict(r) for r in rejections], columns=cols), path)
