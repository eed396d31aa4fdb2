"""AugMix-style chained spatial transforms, applied with one parameter draw to every frame.

AugMix (Hendrycks et al., ICLR 2020, arXiv:1912.02781): ``width`` chains of ``depth``
random operations each are mixed with Dirichlet(alpha) weights and blended with the input
by ``m ~ Beta(alpha, alpha)``::

    out = (1 - m) * x + m * sum_i w_i * chain_i(x)

For video the parameters (operations, magnitudes, signs, weights) are drawn ONCE per clip
by :meth:`TemporalAugMix.sample` and the torchvision ``transforms.v2.functional`` kernels
are applied to the whole ``(T, C, H, W)`` clip as a batch of frames, so every frame gets
the identical transform (a cine loop must stay a coherent heart beat).

Operations (``config.data.augmix.ops``), magnitude at level ``l ~ U(0.1, severity)``,
``f = l / 10``: ``zoom`` (the paper's "resize": scale 1 ± 0.3 f, size kept), ``shear_x``/
``shear_y`` (± atan(0.3 f)), ``translate_x``/``translate_y`` (± f · size / 3), ``rotate``
(± 30 f degrees), ``solarize`` (threshold 256 − 256 f), ``posterize`` (4 − ⌊4 f⌋ bits, at
least 1), ``autocontrast``, ``equalize``, ``brightness``/``contrast`` (factor 1 ± 0.9 f).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

OPS = (
    "zoom", "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
    "solarize", "posterize", "autocontrast", "equalize", "brightness", "contrast",
)
DEFAULT_OPS = OPS[:10]  # spatial and intensity-remapping ops of the original AugMix
_SIGNED = {"zoom", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness",
           "contrast"}


@dataclass(frozen=True)
class AugMixParams:
    """One draw of AugMix parameters: ``chains[i]`` is a tuple of ``(op, signed f)``."""

    m: float  # weight of the mixed chains against the input
    weights: tuple[float, ...]  # Dirichlet weights of the chains, sum 1
    chains: tuple[tuple[tuple[str, float], ...], ...]


def apply_op(clip: torch.Tensor, op: str, f: float) -> torch.Tensor:
    """Apply one operation with signed magnitude ``f`` to a uint8 ``(..., C, H, W)`` clip."""
    h, w = clip.shape[-2:]
    geo = {"angle": 0.0, "translate": [0, 0], "scale": 1.0, "shear": [0.0, 0.0]}
    if op == "zoom":
        geo["scale"] = 1.0 + 0.3 * f
    elif op == "shear_x":
        geo["shear"] = [math.degrees(math.atan(0.3 * f)), 0.0]
    elif op == "shear_y":
        geo["shear"] = [0.0, math.degrees(math.atan(0.3 * f))]
    elif op == "translate_x":
        geo["translate"] = [int(round(f * w / 3)), 0]
    elif op == "translate_y":
        geo["translate"] = [0, int(round(f * h / 3))]
    elif op == "rotate":
        geo["angle"] = 30.0 * f
    elif op == "solarize":
        return F.solarize(clip, threshold=float(256 - 256 * abs(f)))
    elif op == "posterize":
        return F.posterize(clip, bits=max(1, 4 - int(4 * abs(f))))
    elif op == "autocontrast":
        return F.autocontrast(clip)
    elif op == "equalize":
        return F.equalize(clip)
    elif op == "brightness":
        return F.adjust_brightness(clip, 1.0 + 0.9 * f)
    elif op == "contrast":
        return F.adjust_contrast(clip, 1.0 + 0.9 * f)
    else:
        raise ValueError(f"unknown AugMix op {op!r}; choose from {OPS}")
    return F.affine(clip, interpolation=InterpolationMode.BILINEAR, fill=0, **geo)


class TemporalAugMix:
    """AugMix for clips: sample parameters once, apply them to all frames (module docstring)."""

    def __init__(self, severity: int = 3, width: int = 3, depth: int = -1, alpha: float = 1.0,
                 ops: Sequence[str] = DEFAULT_OPS) -> None:
        if not 1 <= severity <= 10:
            raise ValueError(f"config.data.augmix.severity must lie in [1, 10], got {severity}")
        if width < 1:
            raise ValueError(f"config.data.augmix.width must be >= 1, got {width}")
        if depth == 0:
            raise ValueError("config.data.augmix.depth must be >= 1, or -1 for a random 1..3")
        if alpha <= 0:
            raise ValueError(f"config.data.augmix.alpha must be > 0, got {alpha}")
        unknown = [op for op in ops if op not in OPS]
        if unknown or not ops:
            raise ValueError(f"config.data.augmix.ops: unknown or empty {unknown or ops}; choose from {OPS}")
        self.severity, self.width, self.depth, self.alpha = severity, width, depth, alpha
        self.ops = tuple(ops)

    def sample(self, rng: np.random.Generator) -> AugMixParams:
        """Draw the operations, magnitudes and mixing weights of one clip."""
        weights = rng.dirichlet([self.alpha] * self.width)
        m = float(rng.beta(self.alpha, self.alpha))
        chains = []
        for _ in range(self.width):
            depth = self.depth if self.depth > 0 else int(rng.integers(1, 4))
            chain = []
            for _ in range(depth):
                op = self.ops[int(rng.integers(len(self.ops)))]
                f = float(rng.uniform(0.1, self.severity)) / 10.0
                if op in _SIGNED and rng.random() < 0.5:
                    f = -f
                chain.append((op, f))
            chains.append(tuple(chain))
        return AugMixParams(m, tuple(float(x) for x in weights), tuple(chains))

    @staticmethod
    def apply(clip: torch.Tensor, params: AugMixParams) -> torch.Tensor:
        """Blend the chains over a uint8 ``(T, C, H, W)`` clip; float32 result in [0, 255]."""
        if clip.dtype != torch.uint8:
            raise TypeError(f"AugMix expects a uint8 clip, got {clip.dtype}")
        mixed = torch.zeros(clip.shape, dtype=torch.float32)
        for weight, chain in zip(params.weights, params.chains, strict=True):
            aug = clip
            for op, f in chain:
                aug = apply_op(aug, op, f)
            mixed.add_(aug.float(), alpha=weight)
        return clip.float().mul_(1.0 - params.m).add_(mixed, alpha=params.m)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Sample once and apply to every frame of ``clip``."""
        return self.apply(clip, self.sample(rng))
