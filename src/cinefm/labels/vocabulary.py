"""``config/labels.yaml`` as typed records: diseases, NegEx cues, sections and LLM prompts.

The file is documented where it lives; this module only reads and checks it, so that
a typo in a key fails at start-up with the file and key named, not mid-run.
"""

from __future__ import annotations

import hashlib
import os
import re
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
    field_names: tuple[str, ...] = ()  # "Pericardium" in "Pericardium: small effusion"
    field_values: tuple[str, ...] = ()  # regexes that mean the disease inside such a field
    quantity: tuple[str, ...] = ()  # amounts read as normal ("trace", "physiological")
    look_alikes: tuple[str, ...] = ()  # phrases containing a mention that are not the disease
    # implicit subject: a bare finding word ("dilatation") whose clause names no structure
    # belongs to the last structure named before it; when that one is this disease's
    # ``subject_structure`` (a regex), the word is a mention ("RV at the upper end of
    # normal size; mild dilatation cannot be excluded")
    subject_structure: str = ""
    subject_values: tuple[str, ...] = ()


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
class Sections:
    """Header words of report sections by role, and how each role's mentions count."""

    indication: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    impression: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    known: tuple[str, ...] = ()
    impression_overrides: bool = False


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
    sections: Sections = Sections()
    structures: tuple[str, ...] = ()  # regexes naming cardiac structures (implicit subjects)
    digest: str = ""  # sha256 of the file: which cue set produced the labels
    typo_keep: tuple[str, ...] = ()  # English words never read as a typo of a vocabulary word

    @property
    def cue_set(self) -> str:
        """``labels.yaml@<first 12 hex digits of its sha256>``, recorded beside the labels."""
        return f"{Path(self.source).name}@{self.digest[:12]}"

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
    raw = path.read_bytes()
    doc = yaml.safe_load(raw) or {}
    where = str(path)
    table = _require(doc, "diseases", where)
    missing = [k for k in diseases if k not in table]
    if missing:
        raise ConfigError(
            f"{where}: diseases {', '.join(missing)} (config labels.diseases) have no entry; "
            f"add them under 'diseases:' (known: {', '.join(table)})"
        )
    quantity = doc.get("quantity") or {}
    if not isinstance(quantity, dict) or set(quantity) - set(table):
        raise ConfigError(f"{where}: quantity: expected a mapping of disease keys to word lists; "
                          f"unknown keys {sorted(set(quantity) - set(table)) if isinstance(quantity, dict) else quantity}")
    out = []
    for key in diseases:
        entry, w = table[key], f"{where}: diseases.{key}"
        name = _require(entry, "name", w)
        fields = entry.get("fields") or {}
        subject = entry.get("subject") or {}
        if not isinstance(subject, dict):
            raise ConfigError(f"{w}.subject: expected a mapping with 'structure' and 'values', got {subject!r}")
        out.append(Disease(
            key=key, name=name, definition=entry.get("definition") or name,
            synonyms=_strs(entry, "synonyms", w), abbreviations=_strs(entry, "abbreviations", w),
            patterns=_strs(entry, "patterns", w),
            field_names=_strs(fields, "names", f"{w}.fields"), field_values=_strs(fields, "values", f"{w}.fields"),
            quantity=_strs(quantity, key, f"{where}: quantity"),
            look_alikes=_strs(entry, "look_alikes", w),
            subject_structure=str(subject.get("structure") or ""),
            subject_values=_strs(subject, "values", f"{w}.subject"),
        ))
        if bool(out[-1].subject_structure) != bool(out[-1].subject_values):
            raise ConfigError(f"{w}.subject: needs both 'structure' and 'values'")
        if bool(out[-1].field_names) != bool(out[-1].field_values):
            raise ConfigError(f"{w}.fields: needs both 'names' and 'values'")
        if not (out[-1].synonyms or out[-1].abbreviations or out[-1].patterns):
            raise ConfigError(f"{w}: no synonyms, abbreviations or patterns — the disease could never match")
    cues = _require(doc, "cues", where)
    neg, unc = _require(cues, "negation", f"{where}: cues"), _require(cues, "uncertainty", f"{where}: cues")
    w = f"{where}: cues"
    sec = doc.get("sections") or {}
    ws = f"{where}: sections"
    sections = Sections(
        indication=_strs(sec, "indication", ws), history=_strs(sec, "history", ws),
        impression=_strs(sec, "impression", ws), findings=_strs(sec, "findings", ws), known=_strs(sec, "known", ws),
        impression_overrides=bool(sec.get("impression_overrides", False)),
    )
    structures = _strs(doc, "structures", where)
    if any(d.subject_structure for d in out) and not structures:
        raise ConfigError(f"{where}: structures: needed by the diseases' 'subject' entries (implicit subjects)")
    for rx in (*structures, *(d.subject_structure for d in out if d.subject_structure),
               *(v for d in out for v in d.subject_values)):
        try:
            re.compile(rx)
        except re.error as e:
            raise ConfigError(f"{where}: bad regular expression {rx!r} in structures / subject: {e}") from None
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
        sections=sections,
        structures=structures,
        digest=hashlib.sha256(raw).hexdigest(),
        typo_keep=_strs(doc, "typo_keep", where),
    )
