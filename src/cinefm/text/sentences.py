"""Sentence splitting of report text: stanza when configured, else pysbd (offline).

The paper split reports with the stanza English tokenizer (Qi et al., "Stanza: A
Python Natural Language Processing Toolkit for Many Human Languages", ACL 2020).
stanza needs a downloaded model, so it is used only when ``text.stanza_dir`` names a
local stanza resources directory; otherwise the rule-based pysbd segmenter (Sadvilkar
& Neumann, "PySBD: Pragmatic Sentence Boundary Disambiguation", NLP-OSS 2020) runs
offline. Both see the text line by line: report templates put measurements and
section headers on lines of their own without a full stop. A section header alone
("IMPRESSION:") is joined to the sentence that follows it. A question mark glued to
the next word ("?DCM", radiologists' shorthand for "query") does not end a sentence.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

_HEADER_RE = re.compile(r"^[A-Za-z][A-Za-z /&()-]{0,40}:$")
_HAS_WORD_RE = re.compile(r"[A-Za-z0-9]")
_QUERY_RE = re.compile(r"\?(?=\w)")
_QUERY_MARK = "\ue000"  # private-use character standing in for a "?" glued to a word


class SentenceSplitterError(RuntimeError):
    """The configured sentence splitter cannot be used; the message says what to do."""


def _stanza_segmenter(stanza_dir: Path) -> Callable[[str], list[str]]:
    try:
        import stanza
    except ImportError as err:
        raise SentenceSplitterError(
            f"config.text.stanza_dir is set ({stanza_dir}) but the stanza package is not installed: "
            "install it (the paper used stanza==1.5.0) or set text.stanza_dir: null to use the "
            "offline pysbd splitter"
        ) from err
    if not stanza_dir.is_dir():
        raise SentenceSplitterError(
            f"config.text.stanza_dir: directory not found: {stanza_dir} — download the English "
            "models once where a network is available (python -c \"import stanza; "
            f"stanza.download('en', model_dir='{stanza_dir}', processors='tokenize')\") and copy "
            "the folder here, or set text.stanza_dir: null"
        )
    try:
        pipeline = stanza.Pipeline(
            lang="en", dir=str(stanza_dir), processors="tokenize", download_method=None, verbose=False
        )
    except Exception as err:  # noqa: BLE001 - stanza raises several kinds for a missing/partial model
        raise SentenceSplitterError(
            f"config.text.stanza_dir: {stanza_dir} holds no usable stanza English tokenizer "
            f"({type(err).__name__}: {err}) — it must be a stanza resources directory with "
            "resources.json and en/tokenize/<package>.pt: run python -c \"import stanza; "
            f"stanza.download('en', model_dir='{stanza_dir}', processors='tokenize')\" where a network is "
            "available and copy the folder here, or set text.stanza_dir: null for the offline pysbd splitter"
        ) from err

    def segment(line: str) -> list[str]:
        return [s.text for s in pipeline(line).sentences]

    return segment


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _pysbd_segmenter() -> Callable[[str], list[str]]:
    import pysbd

    seg = pysbd.Segmenter(language="en", clean=False)
    return seg.segment


class SentenceSplitter:
    """Callable ``text -> list[str]`` of sentences (stripped, none empty).

    ``stanza_dir``: a local stanza resources directory, or None for pysbd.
    """

    def __init__(self, stanza_dir: str | os.PathLike | None = None) -> None:
        self.backend = "stanza" if stanza_dir else "pysbd"
        self.version = _version(self.backend)
        self._segment = _stanza_segmenter(Path(stanza_dir)) if stanza_dir else _pysbd_segmenter()

    def __call__(self, text: str) -> list[str]:
        sentences: list[str] = []
        for line in (text or "").splitlines():
            if not _HAS_WORD_RE.search(line):
                continue
            parts = self._segment(_QUERY_RE.sub(_QUERY_MARK, line.strip()))
            sentences.extend(s.strip().replace(_QUERY_MARK, "?") for s in parts if _HAS_WORD_RE.search(s))
        return _join_headers(sentences)


def _join_headers(sentences: list[str]) -> list[str]:
    """Attach a bare section header ("FINDINGS:") to the sentence after it."""
    out: list[str] = []
    pending = ""
    for s in sentences:
        if _HEADER_RE.match(s):
            pending = f"{pending} {s}".strip()
            continue
        out.append(f"{pending} {s}".strip() if pending else s)
        pending = ""
    if pending:
        out.append(pending)
    return out
