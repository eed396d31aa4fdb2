"""Contrastive video–report model: asymmetric InfoNCE, flooding and the two-tower ``CLIPModel``.

References: ConVIRT (Zhang et al. 2022, "Contrastive learning of medical visual
representations from paired images and text") for the asymmetric bidirectional loss;
Ishida et al. 2020 ("Do we need zero training loss after achieving zero training
error?") for flooding; open_clip for the log-parameterised, clamped temperature.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cinefm.config import ConfigError
from cinefm.models.text import TextEncoder, build_text_encoder
from cinefm.models.video import build_video_encoder


def asymmetric_info_nce(
    video: torch.Tensor, text: torch.Tensor, temperature: float | torch.Tensor, weight: float = 0.5
) -> torch.Tensor:
    """Asymmetric bidirectional InfoNCE of paired ``video``/``text`` projections ``(N, D)``.

    With v_i, u_i L2-normalised inside and s_ij = ⟨v_i, u_j⟩ / τ:

        l_i(v→u) = −log( exp(s_ii) / Σ_j exp(s_ij) )
        l_i(u→v) = −log( exp(s_ii) / Σ_j exp(s_ji) )
        L = (1/N) Σ_i [ λ·l_i(v→u) + (1−λ)·l_i(u→v) ],   λ = ``weight``

    (ConVIRT, Zhang et al. 2022, Eq. 2–3; ConVIRT and the method's paper.yaml use λ = 0.75 —
    λ = 0.5 is the symmetric CLIP loss). Returns a scalar tensor.
    """
    if video.shape != text.shape or video.dim() != 2:
        raise ValueError(f"video and text must both be (N, D); got {tuple(video.shape)} and {tuple(text.shape)}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight (lambda) must lie in [0, 1], got {weight}")
    v = F.normalize(video, dim=-1)
    u = F.normalize(text, dim=-1)
    logits_nn = v @ u.T / temperature
    target = torch.arange(v.shape[0], device=v.device)
    v2t = F.cross_entropy(logits_nn, target)
    t2v = F.cross_entropy(logits_nn.T, target)
    return weight * v2t + (1.0 - weight) * t2v


def flood(loss: torch.Tensor, level: float) -> torch.Tensor:
    """Flooding: ``L̃ = |L − b| + b`` with flood level ``b`` (Ishida et al. 2020, Eq. 2).

    Equal to L above b; below b the gradient is reversed (ascent back up to b).
    """
    return (loss - level).abs() + level


class ClipOutput(NamedTuple):
    """Unit-norm embeddings ``video (B, P)``, ``text (B, P)`` and the temperature (0-d tensor)."""

    video: torch.Tensor
    text: torch.Tensor
    temperature: torch.Tensor


class CLIPModel(nn.Module):
    """Video and text towers, each ending in one linear projection to ``projection_dim``.

    Attributes (the state-dict prefixes fine-tuning relies on): ``video`` (trunk),
    ``video_proj`` (Linear ``video.out_dim → P``), ``text`` (:class:`TextEncoder`),
    ``text_proj`` (Linear ``text.out_dim → P``), ``log_temperature`` (a Parameter when
    learnable, else a buffer). τ = clamp(exp(log_temperature), min_temperature, max_temperature).
    """

    def __init__(self, video: nn.Module, text: TextEncoder, projection_dim: int, *, temperature: float = 0.1,
                 learnable_temperature: bool = False, min_temperature: float = 0.01,
                 max_temperature: float = 1.0) -> None:
        super().__init__()
        if not min_temperature <= temperature <= max_temperature:
            raise ConfigError(f"pretrain.temperature: {temperature} outside [{min_temperature}, {max_temperature}]")
        self.video = video
        self.text = text
        self.video_proj = nn.Linear(video.out_dim, projection_dim)
        self.text_proj = nn.Linear(text.out_dim, projection_dim)
        log_t = torch.tensor(math.log(temperature))
        if learnable_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)
        self.min_temperature = min_temperature
        self.max_temperature = max_temperature

    @property
    def temperature(self) -> torch.Tensor:
        """τ (0-d tensor), clamped to [min_temperature, max_temperature]."""
        return self.log_temperature.exp().clamp(self.min_temperature, self.max_temperature)

    def encode_video(self, clips: torch.Tensor) -> torch.Tensor:
        """``[B, C, T, H, W] -> [B, P]`` unit-norm video embeddings."""
        return F.normalize(self.video_proj(self.video(clips)), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Report embeddings ``[B, P]`` (unit norm) from one sequence ``[B, L]`` or sentences ``[B, S, L]``.

        ``[B, L]``: the k sampled sentences already joined into one BERT sequence
        (``[CLS] s_1 … s_k [SEP]``, :func:`cinefm.data.text.compose_text`) — the training
        path. ``[B, S, L]``: sentences kept apart are combined by :func:`pool_sentences`
        (each encoded as its own sequence, averaged over the report's real sentences;
        all-padding rows skipped) — for reports longer than the token limit.
        """
        if input_ids.dim() == 2:
            pooled = self.text(input_ids, attention_mask)
        else:
            pooled = pool_sentences(self.text, input_ids, attention_mask)
        return F.normalize(self.text_proj(pooled), dim=-1)

    def forward(self, clips: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> ClipOutput:
        """Both embeddings for a batch of (clip, report) pairs; the loss is computed by the caller."""
        return ClipOutput(self.encode_video(clips), self.encode_text(input_ids, attention_mask), self.temperature)


def pool_sentences(text: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Encode ``[B, S, L]`` sentences separately and average each report's real sentences → ``[B, H]``.

    e_b = (1/|S_b|) Σ_{s ∈ S_b} text(sentence_{b,s}), S_b = sentences with at least one
    real token. Padding sentences are never passed through ``text``.
    """
    b, s, length = input_ids.shape
    real_bs = attention_mask.bool().any(-1)
    if not bool(real_bs.any(-1).all()):
        empty = (~real_bs.any(-1)).nonzero().flatten().tolist()
        raise ValueError(f"reports {empty} of the batch have no sentence with tokens")
    flat_ids = input_ids.reshape(b * s, length)[real_bs.flatten()]
    flat_mask = attention_mask.reshape(b * s, length)[real_bs.flatten()]
    emb_nh = text(flat_ids, flat_mask)
    emb_bsh = emb_nh.new_zeros(b, s, emb_nh.shape[-1])
    emb_bsh[real_bs] = emb_nh
    return emb_bsh.sum(1) / real_bs.sum(1, keepdim=True).to(emb_bsh.dtype)


def build_clip_model(models_cfg: dict, *, vocab_size: int, temperature: float = 0.1,
                     learnable_temperature: bool = False) -> CLIPModel:
    """``CLIPModel`` from the ``models`` config section (``video``, ``text``, ``projection_dim``).

    ``vocab_size`` comes from the tokenizer (ignored when ``models.text.path`` is set);
    ``temperature``/``learnable_temperature`` from ``pretrain``.
    """
    video = build_video_encoder(**models_cfg["video"])
    text = build_text_encoder(**models_cfg["text"], vocab_size=vocab_size)
    return CLIPModel(video, text, models_cfg["projection_dim"], temperature=temperature,
                     learnable_temperature=learnable_temperature)
