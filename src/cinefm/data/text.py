"""Report text for pre-training: k random sentences of a study's report -> one token sequence.

The indexed report JSON (``results/text/reports.json``, :mod:`cinefm.text.indexed_json`)
stores per study ``{"sentences": [...], "input_ids": [[...], ...]}`` with one token list
per sentence. Each training step draws ``k`` sentences (paper: 5) without replacement,
keeps them in report order, strips any per-sentence ``[CLS]``/``[SEP]`` and joins them into
``[CLS] s_1 s_2 ... s_k [SEP]``, truncated to ``max_tokens`` (the closing ``[SEP]`` is
kept). Reports with fewer than ``k`` sentences contribute all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the BERT special tokens in the tokenizer's vocabulary."""

    cls: int
    sep: int
    pad: int


def load_special_tokens(tokenizer_dir: str | os.PathLike) -> SpecialTokens:
    """Read ``[CLS]``, ``[SEP]``, ``[PAD]`` ids from ``tokenizer.json`` or ``vocab.txt`` in ``tokenizer_dir``."""
    folder = Path(tokenizer_dir)
    names = ("[CLS]", "[SEP]", "[PAD]")
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        ids = [tok.token_to_id(n) for n in names]
    elif (folder / "vocab.txt").is_file():
        vocab = {line.rstrip("\n"): i for i, line in
                 enumerate((folder / "vocab.txt").read_text(encoding="utf-8").splitlines())}
        ids = [vocab.get(n) for n in names]
    else:
        raise FileNotFoundError(f"{folder}: neither tokenizer.json nor vocab.txt found; point "
                                "config.text.tokenizer_dir (or results/text/tokenizer) at a BERT tokenizer")
    if any(i is None for i in ids):
        missing = [n for n, i in zip(names, ids, strict=True) if i is None]
        raise ValueError(f"{folder}: vocabulary lacks special token(s) {missing}; a BERT WordPiece "
                         "vocabulary with [CLS], [SEP] and [PAD] is required")
    return SpecialTokens(*ids)


def compose_text(sentence_ids: Sequence[Sequence[int]], k: int, rng: np.random.Generator,
                 max_tokens: int, special: SpecialTokens) -> torch.Tensor:
    """Draw ``k`` sentences and return ``[CLS] s... [SEP]`` as a 1-D int64 tensor (module docstring)."""
    if max_tokens < 2:
        raise ValueError(f"config.data.text_max_tokens must be >= 2, got {max_tokens}")
    n = len(sentence_ids)
    chosen = np.sort(rng.choice(n, size=min(k, n), replace=False)) if n else []
    body: list[int] = []
    for i in chosen:
        ids = list(sentence_ids[int(i)])
        if ids and ids[0] == special.cls:
            ids = ids[1:]
        if ids and ids[-1] == special.sep:
            ids = ids[:-1]
        body.extend(ids)
    body = body[: max_tokens - 2]
    return torch.tensor([special.cls, *body, special.sep], dtype=torch.long)


class ReportSource:
    """The indexed report JSON, opened on first use in each process (never pickled open).

    Wraps :class:`cinefm.text.indexed_json.IndexedReports`; any mapping ``study_id ->
    {"input_ids": ...}`` may stand in for it (``reports=`` in tests and benchmarks).
    """

    def __init__(self, path: str | os.PathLike | None = None,
                 reports: Mapping[str, Mapping] | None = None) -> None:
        if (path is None) == (reports is None):
            raise ValueError("give exactly one of path= (indexed report JSON) or reports= (a mapping)")
        self.path = None if path is None else str(path)
        self._reports = reports
        self._pid = os.getpid()

    def _mapping(self) -> Mapping[str, Mapping]:
        if self.path is not None and (self._reports is None or self._pid != os.getpid()):
            from cinefm.text.indexed_json import IndexedReports

            if not Path(self.path).is_file():
                raise FileNotFoundError(f"{self.path}: indexed report JSON not found; run the "
                                        "reports rule (results/text/reports.json) first")
            self._reports = IndexedReports(self.path)
            self._pid = os.getpid()
        return self._reports

    def __contains__(self, study_id: str) -> bool:
        return study_id in self._mapping()

    def sentence_ids(self, study_id: str) -> list[list[int]]:
        """Token ids of each sentence of the study's report."""
        return list(self._mapping()[study_id]["input_ids"])

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self.path is not None:
            state["_reports"] = None
        return state
