"""Class-token self-attention of torchvision MViT blocks, mapped back onto the input clip.

Source read: torchvision ``models/video/mvit.py`` (0.29): ``MultiscaleBlock.forward`` calls
``self.attn(norm1(x), thw)``; ``MultiscaleAttention.forward`` splits ``qkv(x)`` into
``(B, heads, N, head_dim)`` q, k, v, pools k and v with ``pool_k``/``pool_v`` (a depthwise
Conv3d + LayerNorm over the token grid ``thw``, the class token kept apart), pools q with
``pool_q`` (which changes ``thw`` for the next block), and computes
``softmax(q k^T / sqrt(head_dim))`` (+ MViT-v2 relative positions when configured). Token 0
of q and k is the class token; keys 1.. lie on the pooled grid ``k_thw`` in ``(t, h, w)``
order. The class token's row is what the trunk's output (the class token after the final
LayerNorm) is built from.

Here a forward pre-hook records each chosen block's attention input ``(x, thw)`` and the
attention is recomputed from it with the block's own modules (no change to the model, no
copy of torchvision's forward). ``class_token_attention`` returns the class token's
attention to the patch keys, ``(B, heads, t, h, w)``; :func:`to_clip` averages it over heads,
upsamples it to the clip ``(T, H, W)`` by nearest neighbour (each token covers its patch-embedding
stride: 2 frames × 4 × 4 pixels at the first block of MViT-B) and averages over blocks.

Only MViT trunks have this attention: R(2+1)D is a convolutional network, and the Perceiver IO
encoder has no class token (its latents cross-attend to Fourier-encoded inputs and are pooled
by averaging), so :func:`check_model` (and, by name, :func:`cinefm.viz.support.check_supported`)
refuses them with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.video import MViT
from torchvision.models.video.mvit import MultiscaleAttention, _add_rel_pos

from cinefm.viz.support import AttentionUnavailable, check_supported

__all__ = ["AttentionUnavailable", "BlockAttention", "check_model", "check_supported", "class_token_attention",
           "mvit_class_attention", "to_clip", "upsample_nearest"]

# class names of the built trunks (cinefm.models.video) -> encoder names
ENCODER_OF_CLASS = {"VideoResNet": "r2plus1d_18", "PerceiverIOEncoder": "perceiver_io"}


def check_model(model: nn.Module) -> None:
    """Raise :class:`AttentionUnavailable` unless ``model`` is a torchvision MViT (the reason otherwise)."""
    if isinstance(model, MViT):
        return
    cls = type(model).__name__
    check_supported(ENCODER_OF_CLASS.get(cls, cls))


@dataclass(frozen=True)
class BlockAttention:
    """The class token's attention to the patch keys of one block, ``(B, heads, t, h, w)``."""

    block: int
    weights: torch.Tensor
    grid: tuple[int, int, int]  # (t, h, w) of the keys (after key pooling)


def attention_probabilities(attn: MultiscaleAttention, x: torch.Tensor, thw: tuple[int, int, int]):
    """Recompute ``softmax(q k^T / sqrt(d))`` of one MViT attention module from its input.

    ``x``: ``(B, 1 + t·h·w, C)`` (the block's ``norm1`` output), ``thw`` its token grid.
    Returns ``(probs (B, heads, Nq, Nk), v (B, heads, Nk, d), q_thw, k_thw)`` exactly as
    torchvision's forward computes them (``probs @ v`` then ``project`` is the module output).
    """
    b, n, _ = x.shape
    q, k, v = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).transpose(1, 3).unbind(dim=2)
    k, k_thw = attn.pool_k(k, thw) if attn.pool_k is not None else (k, thw)
    if attn.pool_v is not None:
        v = attn.pool_v(v, thw)[0]
    q, q_thw = attn.pool_q(q, thw) if attn.pool_q is not None else (q, thw)
    logits = torch.matmul(attn.scaler * q, k.transpose(2, 3))
    if attn.rel_pos_h is not None and attn.rel_pos_w is not None and attn.rel_pos_t is not None:
        logits = _add_rel_pos(logits, q, q_thw, k_thw, attn.rel_pos_h, attn.rel_pos_w, attn.rel_pos_t)
    return logits.softmax(dim=-1), v, tuple(q_thw), tuple(k_thw)


def class_token_attention(attn: MultiscaleAttention, x: torch.Tensor,
                          thw: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """``(B, heads, t, h, w)`` attention of the class token (query 0) to the patch keys, and ``(t, h, w)``."""
    probs, _, _, k_thw = attention_probabilities(attn, x, thw)
    return probs[:, :, 0, 1:].reshape(*probs.shape[:2], *k_thw), k_thw


class _InputRecorder:
    """Forward pre-hook keeping the ``(x, thw)`` an attention module was called with."""

    def __init__(self) -> None:
        self.args: tuple | None = None

    def __call__(self, module: nn.Module, args: tuple) -> None:
        self.args = (args[0].detach(), tuple(int(s) for s in args[1]))


def _block_indices(model: MViT, blocks: Sequence[int]) -> list[int]:
    n = len(model.blocks)
    out = []
    for b in blocks:
        if not -n <= b < n:
            raise ValueError(f"attention.blocks: block {b} does not exist; this MViT has {n} blocks "
                             f"(0..{n - 1}, or -1 for the last)")
        out.append(b % n)
    return sorted(set(out))


@torch.no_grad()
def mvit_class_attention(model: nn.Module, clip_bcthw: torch.Tensor,
                         blocks: Sequence[int] = (-1,)) -> list[BlockAttention]:
    """Run ``model`` on ``clip_bcthw`` and return the class-token attention of each of ``blocks``."""
    check_model(model)
    chosen = _block_indices(model, blocks)
    recorders = {i: _InputRecorder() for i in chosen}
    handles = [model.blocks[i].attn.register_forward_pre_hook(rec) for i, rec in recorders.items()]
    try:
        model(clip_bcthw)
    finally:
        for h in handles:
            h.remove()
    out = []
    for i, rec in recorders.items():
        x, thw = rec.args
        weights, grid = class_token_attention(model.blocks[i].attn, x, thw)
        out.append(BlockAttention(block=i, weights=weights.float(), grid=grid))
    return out


def upsample_nearest(grid_thw: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """``(t, h, w)`` → ``(T, H, W)`` by nearest-neighbour resampling (output voxel i takes token ⌊i·t/T⌋)."""
    return F.interpolate(grid_thw[None, None].float(), size=size, mode="nearest")[0, 0]


def to_clip(attentions: Sequence[BlockAttention], size: tuple[int, int, int]) -> torch.Tensor:
    """``(B, T, H, W)``: each block's attention averaged over heads, upsampled to the clip, averaged over blocks."""
    maps = [torch.stack([upsample_nearest(a.weights[i].mean(dim=0), size) for i in range(a.weights.shape[0])])
            for a in attentions]
    return torch.stack(maps).mean(dim=0)
