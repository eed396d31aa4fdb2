"""On-disk cache of LLM replies, so that a rerun of the label stage costs no request.

Key: sha256 of the canonical JSON of (model, generation settings, messages); the
messages hold the prompt templates and the report, so a changed prompt, report or
model misses the cache. One small JSON file per reply under ``root/ab/abcdef....json``,
written atomically (threads and concurrent jobs may share a cache). Replies are
cached as received, valid or not, so a rerun replays the same validation path.
Transport failures are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cinefm.atomic import write_text


def cache_key(model: str, messages: list[dict[str, str]], settings: dict[str, Any]) -> str:
    """sha256 hex digest of the request that produces a reply."""
    doc = {"model": model, "settings": settings, "messages": messages}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    """Replies by cache key under ``root`` (created on first write)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        """The cached reply, or None."""
        path = self._path(key)
        try:
            return json.loads(path.read_text())["content"]
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            return None

    def put(self, key: str, content: str, model: str) -> None:
        """Store a reply (atomic)."""
        write_text(self._path(key), json.dumps({"model": model, "content": content}))
