"""``config/labels.yaml`` as typed records: diseases, NegEx cues and LLM prompt templates.

The file is documented where it lives; this module only reads and checks it, so that
a typo in a key fails at start-up with the file and key named, not mid-run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cinefm.config import ConfigError


@dataclass(frozen=True)
class Disease:
    """One label: key (``hcm``), display name, definition and the ways reports say it."""

    key: str
    name: str
    definition: str
    synonyms: tuple[str, ...]
    abbreviations: tuple[str, ...]
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class Cues:
    """NegEx trigger phrases by kind."""

    negation_pre: tuple[str, ...]
    negation_post: tuple[str, ...]
    uncertainty_pre: tuple[str, ...]
    uncertainty_post: tuple[str, ...]
    pseudo: tuple[str, ...]
    ignore: tuple[str, ...]
    termination: tuple[str, ...]


@dataclass(frozen=True)
class Prompts:
    """LLM prompt templates and the JSON schema every answer must satisfy."""

    system: str
    question: str
    correction: str
    answer_schema: dict[str, Any]
    answer_values: dict[str, int | None]


@dataclass(frozen=True)
class LabelVocabulary:
    """Everything ``config/labels.yaml`` defines, for the diseases in use."""

    diseases: tuple[Disease, ...]
    scope_words: int
    typo_min_length: int
    cues: Cues
    prompts: Prompts
    source: str

    @property
    def keys(self) -> tuple[str, ...]:
        """Disease keys in output column order."""
        return tuple(d.key for d in self.diseases)


def _strs(doc: dict, key: str, where: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key}: expected a list of strings, got {value!r}")
    return tuple(value)


def _require(doc: dict, key: str, where: str) -> Any:
    if not isinstance(doc, dict) or key not in doc:
        raise ConfigError(f"{where}: missing key '{key}'")
    return doc[key]


def load_vocabulary(path: str | os.PathLike, diseases: Sequence[str]) -> LabelVocabulary:
    """Read ``path`` (config ``labels.vocabulary``) for the disease keys ``diseases``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config.labels.vocabulary: file not found: {path}")
    doc = yaml.safe_load(path.read_text()) or {}
    where = str(path)
    table = _require(doc, "diseases", where)
    missing = [k for k in diseases if k not in table]
    if missing:
        raise ConfigError(
            f"{where}: diseases {', '.join(missing)} (config labels.diseases) have no entry; "
            f"add them under 'diseases:' (known: {', '.join(table)})"
        )
    out = []
    for key in diseases:
        entry, w = table[key], f"{where}: diseases.{key}"
        name = _require(entry, "name", w)
        out.append(Disease(
            key=key, name=name, definition=entry.get("definition") or name,
            synonyms=_strs(entry, "synonyms", w), abbreviations=_strs(entry, "abbreviations", w),
            patterns=_strs(entry, "patterns", w),
        ))
        if not (out[-1].synonyms or out[-1].abbreviations or out[-1].patterns):
            raise ConfigError(f"{w}: no synonyms, abbreviations or patterns — the disease could never match")
    cues = _require(doc, "cues", where)
    neg, unc = _require(cues, "negation", f"{where}: cues"), _require(cues, "uncertainty", f"{where}: cues")
    w = f"{where}: cues"
    llm = _require(doc, "llm", where)
    values = _require(llm, "answer_values", f"{where}: llm")
    return LabelVocabulary(
        diseases=tuple(out),
        scope_words=int(doc.get("scope_words", 6)),
        typo_min_length=int(doc.get("typo_min_length", 0)),
        cues=Cues(
            negation_pre=_strs(neg, "pre", f"{w}.negation"), negation_post=_strs(neg, "post", f"{w}.negation"),
            uncertainty_pre=_strs(unc, "pre", f"{w}.uncertainty"),
            uncertainty_post=_strs(unc, "post", f"{w}.uncertainty"),
            pseudo=_strs(cues, "pseudo", w), ignore=_strs(cues, "ignore", w),
            termination=_strs(cues, "termination", w),
        ),
        prompts=Prompts(
            system=_require(llm, "system", f"{where}: llm"),
            question=_require(llm, "question", f"{where}: llm"),
            correction=_require(llm, "correction", f"{where}: llm"),
            answer_schema=_require(llm, "answer_schema", f"{where}: llm"),
            answer_values={str(k): (None if v is None else int(v)) for k, v in values.items()},
        ),
        source=where,
    )
