"""One JSON object for all reports, plus a byte-offset index to read one study alone.

Layout of ``reports.json`` (valid JSON; ``json.load`` reads it whole)::

    {
    "S0123456789ab": {"sentences": ["..."], "input_ids": [[2, 417, 3], ...]},
    "S...": {...}
    }

one entry per line, keys sorted, ASCII only (``ensure_ascii``), so an entry's value
is a contiguous byte range. ``reports.json.idx`` (JSON) holds, per study id, the
``[offset, length]`` of that value in bytes, plus the size of ``reports.json`` it
describes. :class:`IndexedReports` reads the index once and then, per lookup,
seeks and parses only that study's bytes (no file handle is kept open, so the
object can be handed to DataLoader worker processes). When the index is missing
or describes another file, the reader rebuilds it by scanning line starts (no
value is parsed) and logs a warning.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cinefm.atomic import atomic_path

log = logging.getLogger(__name__)

INDEX_SUFFIX = ".idx"
FORMAT = "cinefm-indexed-json"
VERSION = 1


def index_path(path: str | os.PathLike) -> Path:
    """The index file beside ``path``: ``reports.json`` -> ``reports.json.idx``."""
    path = Path(path)
    return path.with_name(path.name + INDEX_SUFFIX)


def write_indexed_json(entries: Mapping[str, Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Write ``entries`` as one JSON object at ``path`` and its byte index beside it (atomic)."""
    path = Path(path)
    offsets: dict[str, list[int]] = {}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(b"{\n")
        keys = sorted(entries)
        for i, key in enumerate(keys):
            if not isinstance(key, str) or "\n" in key:
                raise ValueError(f"indexed JSON keys must be single-line strings, got {key!r}")
            head = json.dumps(key).encode() + b": "
            value = json.dumps(entries[key], ensure_ascii=True, separators=(",", ":")).encode()
            fh.write(head)
            offsets[key] = [fh.tell(), len(value)]
            fh.write(value)
            fh.write(b",\n" if i < len(keys) - 1 else b"\n")
        fh.write(b"}\n")
        fh.flush()
        size = fh.tell()
    doc = {"format": FORMAT, "version": VERSION, "json_size": size, "entries": offsets}
    with atomic_path(index_path(path)) as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
    return path


def _scan_offsets(path: Path) -> dict[str, list[int]]:
    """Rebuild the index from the one-entry-per-line layout without parsing values."""
    offsets: dict[str, list[int]] = {}
    with open(path, "rb") as fh:
        pos = 0
        for line in fh:
            start = pos
            pos += len(line)
            if not line.startswith(b'"'):
                continue
            key_end = line.index(b'": ') + 1
            key = json.loads(line[:key_end])
            body = line.rstrip(b"\n")
            body = body[:-1] if body.endswith(b",") else body
            offsets[key] = [start + key_end + 2, len(body) - key_end - 2]
    return offsets


class IndexedReports(Mapping[str, dict]):
    """Read-only mapping ``study_id -> {"sentences": [...], "input_ids": [[...], ...]}``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"{self.path}: indexed report JSON not found — run the `reports` rule "
                "(snakemake results/text/reports.json) or `cinefm reports`"
            )
        self._offsets = self._load_index()

    def _load_index(self) -> dict[str, list[int]]:
        idx = index_path(self.path)
        size = self.path.stat().st_size
        if idx.is_file():
            doc = json.loads(idx.read_text())
            if doc.get("format") == FORMAT and doc.get("json_size") == size:
                return doc["entries"]
            log.warning("%s does not describe %s (size changed); rebuilding the index in memory", idx, self.path)
        else:
            log.warning("%s missing; rebuilding the index of %s in memory", idx, self.path)
        return _scan_offsets(self.path)

    def __getitem__(self, study_id: str) -> dict:
        offset, length = self._offsets[study_id]
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return json.loads(fh.read(length))

    def __contains__(self, study_id: object) -> bool:
        return study_id in self._offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def __iter__(self) -> Iterator[str]:
        return iter(self._offsets)
