"""Text encoder: a transformers ``BertModel`` (local directory or a config), pooled to one vector.

The method's encoder is BERT-base pre-trained on PubMed abstracts (PubMedBERT /
BiomedBERT, 30,522-token vocabulary) read from ``models.text.path``; without a path a
small random BERT of ``layers``/``hidden``/``heads`` is built (tests, CPU demo).

Pooling: ``mean`` (default) is the mean of the last hidden states over real tokens
(attention_mask = 1, [CLS]/[SEP] included); ``cls`` takes the [CLS] state. Mean pooling
is the default because PubMedBERT's [CLS] is not trained as a sentence summary and a
random small BERT gives it no meaning either; with mean pooling every token contributes.

Reports: the training batches of :mod:`cinefm.data.text` join the k sampled sentences
into one sequence ``[CLS] s_1 … s_k [SEP]`` (``[B, L]``), which this encoder pools
directly. ``CLIPModel.encode_text`` also accepts sentences kept apart, ``[B, S, L]``
(batched by :func:`pad_sentences`), and averages their embeddings — for whole reports
longer than the token limit (e.g. retrieval over every sentence of a report).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, BertModel

from cinefm.config import ConfigError

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
PLACE_BERT = ("place PubMedBERT/BiomedBERT's model directory there (config.json, vocab.txt, model.safetensors — "
              "e.g. a copy of microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract downloaded once where a "
              "network is reachable), or set models.text.path: null for a small random BERT")


FEATURE_NORMS = ("none", "batchnorm")


class TextEncoder(nn.Module):
    """``forward(input_ids [B, L], attention_mask [B, L]) -> [B, hidden]``; ``out_dim = hidden``.

    ``feature_norm``: ``none`` returns the pooled state; ``batchnorm`` standardises each
    pooled feature over the batch (``nn.BatchNorm1d``, running statistics in evaluation)
    before the projection. A randomly initialised BERT pools nearly the same vector for
    every report (the spread across reports is a few percent of the common part), which
    leaves the contrastive loss at its ln(batch) plateau; centring and scaling each
    feature over the batch (Ioffe & Szegedy 2015), as the batch-normalised projection
    heads of SimCLR-style models (Chen et al. 2020) do, removes the common part.
    """

    def __init__(self, bert: BertModel, pooling: str = "mean", feature_norm: str = "none") -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ConfigError(f"models.text.pooling: {pooling!r} is not 'mean' or 'cls'")
        if feature_norm not in FEATURE_NORMS:
            raise ConfigError(f"models.text.feature_norm: {feature_norm!r} is not one of {', '.join(FEATURE_NORMS)}")
        self.bert = bert
        self.pooling = pooling
        self.out_dim = bert.config.hidden_size
        self.norm = nn.BatchNorm1d(self.out_dim) if feature_norm == "batchnorm" else nn.Identity()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden_bld = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden_bld[:, 0]
        else:
            m = attention_mask.to(hidden_bld.dtype).unsqueeze(-1)
            pooled = (hidden_bld * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.norm(pooled)


def _check_bert_dir(path: Path) -> None:
    if not path.is_dir():
        raise ConfigError(f"models.text.path: directory not found: {path} — {PLACE_BERT}")
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if missing:
        raise ConfigError(f"models.text.path: {path} lacks {', '.join(missing)} — {PLACE_BERT}")


def freeze_bert_layers(bert: BertModel, k: int, embeddings: bool = False) -> None:
    """Freeze encoder layers 0..k-1 (``requires_grad = False``) and, with ``embeddings``, the embedding layer.

    The method freezes "the first 6 layers of the BERT text encoder" and says nothing of the
    embeddings, so they train unless ``models.text.freeze_embeddings`` says otherwise. k = 0 and
    ``embeddings`` False freezes nothing.
    """
    n = bert.config.num_hidden_layers
    if not 0 <= k <= n:
        raise ConfigError(f"models.text.freeze_layers: {k} is outside 0..{n} (the BERT has {n} layers)")
    if embeddings:
        for p in bert.embeddings.parameters():
            p.requires_grad_(False)
    for layer in bert.encoder.layer[:k]:
        for p in layer.parameters():
            p.requires_grad_(False)


def build_text_encoder(
    path: str | os.PathLike | None = None,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    vocab_size: int = 30522,
    freeze_layers: int = 0,
    freeze_embeddings: bool = False,
    pooling: str = "mean",
    feature_norm: str = "none",
    max_position: int = 512,
    dropout: float | None = None,
) -> TextEncoder:
    """BERT text encoder from ``path`` (local files only) or, when ``path`` is None, a random ``BertConfig``.

    With a path, ``layers``/``hidden``/``heads`` must match the directory's config.json
    (they document the model in config); ``vocab_size`` and ``max_position`` are then
    taken from the directory. ``freeze_layers``/``freeze_embeddings``: see :func:`freeze_bert_layers`;
    ``pooling`` and ``feature_norm``: see :class:`TextEncoder`. ``dropout``: BERT's hidden
    and attention-probability dropout (None: the model's own, 0.1 for BERT-base).
    """
    drop = {} if dropout is None else {"hidden_dropout_prob": float(dropout),
                                       "attention_probs_dropout_prob": float(dropout)}
    if path is not None:
        path = Path(path).expanduser()
        _check_bert_dir(path)
        bert = BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False, **drop)
        cfg = bert.config
        got = {"layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size, "heads": cfg.num_attention_heads}
        want = {"layers": layers, "hidden": hidden, "heads": heads}
        diff = {k: (want[k], got[k]) for k in got if got[k] != want[k]}
        if diff:
            raise ConfigError("models.text: " + "; ".join(f"{k}={a} but {path}/config.json has {b}"
                                                          for k, (a, b) in diff.items())
                              + " — make models.text match the model directory")
        log.info("loaded BERT from %s (%d layers, hidden %d)", path, cfg.num_hidden_layers, cfg.hidden_size)
    else:
        if hidden % heads:
            raise ConfigError(f"models.text: hidden {hidden} is not divisible by heads {heads}")
        cfg = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, intermediate_size=4 * hidden,
                         max_position_embeddings=max_position, **drop)
        bert = BertModel(cfg, add_pooling_layer=False)
    freeze_bert_layers(bert, freeze_layers, embeddings=freeze_embeddings)
    return TextEncoder(bert, pooling=pooling, feature_norm=feature_norm)


def pad_sentences(
    reports: Sequence[Sequence[Sequence[int]]], max_length: int, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch reports of tokenised sentences → ``input_ids, attention_mask`` of shape ``[B, S, L]``.

    S = most sentences in a report, L = longest sentence (≤ ``max_length``; longer ones
    are cut at ``max_length`` tokens). Missing sentences are all-padding rows (mask 0),
    which ``CLIPModel.encode_text`` skips. Every report needs at least one sentence.
    """
    if not reports:
        raise ValueError("pad_sentences: empty batch")
    for i, sentences in enumerate(reports):
        if not sentences or not any(len(s) for s in sentences):
            raise ValueError(f"pad_sentences: report {i} of the batch has no tokens")
    n_s = max(len(r) for r in reports)
    n_l = min(max_length, max(len(s) for r in reports for s in r))
    ids = torch.full((len(reports), n_s, n_l), pad_id, dtype=torch.long)
    mask = torch.zeros((len(reports), n_s, n_l), dtype=torch.long)
    for b, sentences in enumerate(reports):
        for s, tokens in enumerate(sentences):
            tokens = list(tokens)[:n_l]
            ids[b, s, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
            mask[b, s, : len(tokens)] = 1
    return ids, mask
