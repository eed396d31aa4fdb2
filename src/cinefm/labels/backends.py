"""Label backends by name: one interface, chosen by ``labels.backend`` in config.

A backend has ``name``, ``model`` (recorded in ``labels.csv``) and
``label(texts) -> [{disease: Answer}, ...]``. Builders import their heavy
dependencies only when called.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from cinefm.config import ConfigError
from cinefm.labels.answers import Answer
from cinefm.labels.cache import ResponseCache
from cinefm.labels.vocabulary import LabelVocabulary


class LabelBackend(Protocol):
    """What the label stage needs from a backend."""

    name: str
    model: str

    def label(self, texts: Sequence[str]) -> list[dict[str, Answer]]: ...


def _rules(cfg: dict[str, Any], vocab: LabelVocabulary, cache: ResponseCache | None) -> LabelBackend:
    from cinefm.labels.rules import RuleLabeler

    return RuleLabeler(vocab)


def _openai(cfg: dict[str, Any], vocab: LabelVocabulary, cache: ResponseCache | None) -> LabelBackend:
    from cinefm.labels.openai import LLMSettings, OpenAIBackend

    return OpenAIBackend(LLMSettings.from_config(cfg.get("llm", {})), vocab, cache)


def _hf(cfg: dict[str, Any], vocab: LabelVocabulary, cache: ResponseCache | None) -> LabelBackend:
    from cinefm.labels.hf import HFBackend

    hf = cfg.get("hf", {})
    return HFBackend(
        hf.get("path"), vocab, max_new_tokens=hf.get("max_new_tokens", 64),
        max_retries=cfg.get("llm", {}).get("max_retries", 1), device=hf.get("device", "auto"), cache=cache,
    )


BACKENDS: dict[str, Callable[[dict[str, Any], LabelVocabulary, ResponseCache | None], LabelBackend]] = {
    "rules": _rules,
    "openai": _openai,
    "hf": _hf,
}


def build_backend(
    labels_cfg: dict[str, Any],
    vocab: LabelVocabulary,
    cache_dir: str | os.PathLike | None = None,
    name: str | None = None,
) -> LabelBackend:
    """The backend ``name`` (default ``labels_cfg["backend"]``) configured from ``labels_cfg``."""
    name = name or labels_cfg.get("backend", "rules")
    if name not in BACKENDS:
        raise ConfigError(f"config.labels.backend: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    cache = ResponseCache(Path(cache_dir)) if cache_dir else None
    return BACKENDS[name](labels_cfg, vocab, cache)
