"""Perceiver IO video encoder (Jaegle et al., "Perceiver IO", ICLR 2022; "Perceiver", ICML 2021).

A clip ``[B, C, T, H, W]`` is cut into tubelets ``(t, y, x)``; each tubelet's raw pixels
are concatenated with Fourier features of its (t, y, x) position in [-1, 1]. A small
learned latent array cross-attends into these tokens and a stack of ``self_blocks`` latent
self-attention blocks follows; with ``recurrent_cross`` (the second source's "recurring
step": cross-attention "feeds in data computed from the previous time step ... sharing weight
matrices across time") this cross-attend + self-attend step is repeated ``repeats`` times,
the latents of one repeat being the queries of the next, with the same cross-attention and the
same self-attention weights every time (the Perceiver's iterative attention, Jaegle et al.
2021 Sec. 2, with all cross-attends sharing weights); without it the inputs are attended
once and only the self-attention stack repeats. The cross-attention's MLP widens by
``cross_mlp_ratio`` (the source's ``CrossAttention(widening_factor=1)``), the self-attention
MLPs by ``mlp_ratio``. A decoder reduces the
latents to one vector: ``mean`` (LayerNorm of the mean latent) or ``query`` (one learned
output query cross-attends to the latents, Perceiver IO's decoder with a single output).
Output ``[B, latent_dim]`` whatever the number of tokens.

A compact module of our own: transformers' ``PerceiverModel`` couples preprocessors to
fixed input index dims and its own config object, which does not fit a clip-length-free
encoder behind ``build_video_encoder``. ``fourier_features`` follows the same published
formula and feature ordering as ``transformers.models.perceiver.generate_fourier_features``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cinefm.config import ConfigError


def fourier_features(pos: torch.Tensor, num_bands: int, max_resolution: Sequence[int]) -> torch.Tensor:
    """Fourier position features of ``pos [N, d]`` (coordinates in [-1, 1]) → ``[N, d·(2K+1)]``.

    With K = ``num_bands`` frequencies per dimension f_{i,k} = linspace(1, μ_i/2, K)
    (μ_i = ``max_resolution[i]``, the Nyquist frequency of that axis):
    ``[x_1..x_d, sin(π f_{1,1} x_1) .. sin(π f_{d,K} x_d), cos(π f_{1,1} x_1) .. cos(π f_{d,K} x_d)]``
    (Jaegle et al. 2021, Sec. 3.2 / Appendix; same ordering as transformers' Perceiver).
    """
    if pos.dim() != 2 or pos.shape[1] != len(max_resolution):
        raise ValueError(f"pos must be [N, {len(max_resolution)}], got {tuple(pos.shape)}")
    freqs = torch.stack([torch.linspace(1.0, r / 2, num_bands, device=pos.device, dtype=pos.dtype)
                         for r in max_resolution])                      # [d, K]
    scaled = (pos[:, :, None] * freqs[None]).reshape(pos.shape[0], -1)  # [N, d·K]
    return torch.cat([pos, torch.sin(math.pi * scaled), torch.cos(math.pi * scaled)], dim=-1)


def grid_positions(shape: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
    """Coordinates of every cell of a grid ``shape`` (row-major), each axis linspace(-1, 1) → ``[prod, d]``."""
    axes = [torch.linspace(-1.0, 1.0, n, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))


class Attention(nn.Module):
    """Multi-head attention from ``q_dim`` queries to ``kv_dim`` keys/values (scaled dot product)."""

    def __init__(self, q_dim: int, kv_dim: int, heads: int) -> None:
        super().__init__()
        if q_dim % heads:
            raise ConfigError(f"models.video.perceiver_io: latent_dim {q_dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(q_dim, q_dim)
        self.k = nn.Linear(kv_dim, q_dim)
        self.v = nn.Linear(kv_dim, q_dim)
        self.out = nn.Linear(q_dim, q_dim)

    def forward(self, x_bnd: torch.Tensor, ctx_bmd: torch.Tensor) -> torch.Tensor:
        b, n, d = x_bnd.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], self.heads, d // self.heads).transpose(1, 2)

        o = F.scaled_dot_product_attention(split(self.q(x_bnd)), split(self.k(ctx_bmd)), split(self.v(ctx_bmd)))
        return self.out(o.transpose(1, 2).reshape(b, n, d))


class _MLP(nn.Sequential):
    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, ratio * dim), nn.GELU(), nn.Linear(ratio * dim, dim))


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention ``x ← x + Attn(LN x, LN ctx)`` then ``x ← x + MLP(x)``."""

    def __init__(self, q_dim: int, kv_dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(q_dim)
        self.norm_kv = nn.LayerNorm(kv_dim)
        self.attn = Attention(q_dim, kv_dim, heads)
        self.mlp = _MLP(q_dim, mlp_ratio)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_q(x), self.norm_kv(ctx))
        return x + self.mlp(x)


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block on the latent array."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, dim, heads)
        self.mlp = _MLP(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        x = x + self.attn(h, h)
        return x + self.mlp(x)


class PerceiverIOEncoder(nn.Module):
    """Perceiver IO clip encoder: ``forward(x [B, C, T, H, W]) -> [B, latent_dim]``; ``out_dim = latent_dim``.

    Args: ``frames``/``size`` the nominal clip (sets the Fourier features' maximum resolution
    μ = tubelet-grid size per axis); ``tubelet`` (t, y, x) patch size; ``latents`` N and
    ``latent_dim`` D of the latent array; ``cross_heads``; ``self_heads``, ``self_blocks``
    (distinct blocks) and ``repeats`` (how often that shared stack is applied);
    ``fourier_bands`` K; ``decoder`` ``mean`` | ``query``; ``mlp_ratio`` (self-attention MLPs);
    ``cross_mlp_ratio`` (cross-attention MLPs); ``recurrent_cross`` (cross-attend into the inputs
    in every repeat, shared weights); ``in_channels``.
    """

    def __init__(self, *, frames: int, size: int, tubelet: Sequence[int] = (2, 8, 8), latents: int = 32,
                 latent_dim: int = 64, cross_heads: int = 1, self_heads: int = 4, self_blocks: int = 2,
                 repeats: int = 2, fourier_bands: int = 6, decoder: str = "mean", mlp_ratio: int = 4,
                 cross_mlp_ratio: int | None = None, recurrent_cross: bool = False, in_channels: int = 3) -> None:
        super().__init__()
        if len(tubelet) != 3:
            raise ConfigError(f"models.video.perceiver_io.tubelet: need (t, y, x), got {list(tubelet)}")
        if decoder not in ("mean", "query"):
            raise ConfigError(f"models.video.perceiver_io.decoder: {decoder!r} is not 'mean' or 'query'")
        self.tubelet = tuple(int(t) for t in tubelet)
        self.max_resolution = (max(1, frames // self.tubelet[0]), max(1, size // self.tubelet[1]),
                               max(1, size // self.tubelet[2]))
        self.fourier_bands = fourier_bands
        self.repeats = repeats
        self.recurrent_cross = bool(recurrent_cross)
        cross_mlp_ratio = mlp_ratio if cross_mlp_ratio is None else cross_mlp_ratio
        self.decoder = decoder
        self.out_dim = latent_dim
        token_dim = in_channels * math.prod(self.tubelet) + 3 * (2 * fourier_bands + 1)
        self.latents = nn.Parameter(torch.randn(latents, latent_dim) * 0.02)
        self.encode = CrossAttentionBlock(latent_dim, token_dim, cross_heads, cross_mlp_ratio)
        self.blocks = nn.ModuleList(SelfAttentionBlock(latent_dim, self_heads, mlp_ratio) for _ in range(self_blocks))
        if decoder == "query":
            self.query = nn.Parameter(torch.randn(1, latent_dim) * 0.02)
            self.decode = CrossAttentionBlock(latent_dim, latent_dim, cross_heads, cross_mlp_ratio)
        self.norm = nn.LayerNorm(latent_dim)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Tubelet pixels + Fourier features: ``[B, C, T, H, W] -> [B, n_tokens, token_dim]``."""
        b, c, t, h, w = x.shape
        pt, py, px = self.tubelet
        if t % pt or h % py or w % px:
            raise ValueError(f"PerceiverIOEncoder: clip (T, H, W) = {(t, h, w)} is not a multiple of the tubelet "
                             f"{self.tubelet} (models.video.perceiver_io.tubelet)")
        grid = (t // pt, h // py, w // px)
        patches = (x.reshape(b, c, grid[0], pt, grid[1], py, grid[2], px)
                   .permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, math.prod(grid), c * pt * py * px))
        pos = fourier_features(grid_positions(grid, device=x.device), self.fourier_bands, self.max_resolution)
        return torch.cat([patches, pos.to(patches.dtype).expand(b, -1, -1)], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(x)
        z = self.latents.expand(x.shape[0], -1, -1)
        for step in range(self.repeats):
            if step == 0 or self.recurrent_cross:  # the recurring step: the same self.encode every time
                z = self.encode(z, tokens)
            for block in self.blocks:
                z = block(z)
        if self.decoder == "query":
            return self.norm(self.decode(self.query.expand(x.shape[0], -1, -1), z)[:, 0])
        return self.norm(z.mean(dim=1))
