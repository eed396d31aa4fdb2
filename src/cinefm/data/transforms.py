"""The clip pipeline: a stored series -> the model's ``(C, T, H, W)`` float input.

Steps, in order: uniform temporal subsampling to T frames (:mod:`.temporal`); resize of the
shorter side to ``size`` and centre crop to ``size x size``; in training, AugMix with one
parameter draw for the whole clip (:mod:`.augment`); scaling to [0, 1] and
``(x - mean) / std``; grayscale replicated to ``channels`` (3 for Kinetics-initialised
encoders). Resizing comes before augmentation so AugMix runs at model size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from cinefm.data.augment import TemporalAugMix
from cinefm.data.temporal import random_phase, temporal_indices


@dataclass(frozen=True)
class ClipSpec:
    """What a clip looks like to the model (T from models.video.frames, size from models.video.size)."""

    frames: int
    size: int
    mean: float = 0.45
    std: float = 0.225
    channels: int = 3

    def __post_init__(self) -> None:
        if self.frames < 1 or self.size < 1 or self.channels < 1 or self.std <= 0:
            raise ValueError(f"invalid clip spec {self}: frames, size, channels >= 1 and std > 0")


def fit_square(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side of a ``(T, C, H, W)`` clip to ``size`` and centre-crop to a square."""
    h, w = clip.shape[-2:]
    if (h, w) == (size, size):
        return clip
    if min(h, w) != size:
        clip = F.resize(clip, [size], antialias=True)
    return F.center_crop(clip, [size, size])


def normalize_clip(clip: torch.Tensor, mean: float, std: float, channels: int) -> torch.Tensor:
    """``(T, 1, H, W)`` values in [0, 255] -> ``(channels, T, H, W)`` float32 ``(x/255 - mean)/std``."""
    x = clip.float().div_(255.0).sub_(mean).div_(std)
    return x.permute(1, 0, 2, 3).expand(channels, -1, -1, -1).contiguous()


class ClipTransform:
    """Turn one stored series ``(frames, H, W)`` uint8 into a model clip ``(C, T, size, size)``."""

    def __init__(self, spec: ClipSpec, train: bool, augment: TemporalAugMix | None = None) -> None:
        self.spec = spec
        self.train = train
        self.augment = augment if train else None

    def frame_indices(self, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        """The T frames to take from a series of ``n_frames`` (random phase in training)."""
        phase = random_phase(n_frames, self.spec.frames, rng) if self.train else 0.0
        return temporal_indices(n_frames, self.spec.frames, phase)

    def from_frames(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Resize, augment (training only) and normalise already sampled ``(T, H, W)`` frames."""
        clip = torch.from_numpy(np.ascontiguousarray(frames)).unsqueeze(1)  # (T, 1, H, W)
        clip = fit_square(clip, self.spec.size)
        if self.augment is not None:
            clip = self.augment(clip, rng)
        return normalize_clip(clip, self.spec.mean, self.spec.std, self.spec.channels)

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Whole series ``(frames, H, W)`` -> clip; ``rng`` drives all randomness."""
        if frames.ndim != 3:
            raise ValueError(f"a series must be (frames, H, W), got shape {frames.shape}")
        return self.from_frames(frames[self.frame_indices(frames.shape[0], rng)], rng)
