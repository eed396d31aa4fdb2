"""The clip pipeline: a stored series -> the model's ``(C, T, H, W)`` float input.

Steps, in order: uniform temporal subsampling to T frames (:mod:`.temporal`); optionally a
crop around the moving heart (see below); resize of the
shorter side to ``size`` and centre crop to ``size x size``; in training, AugMix with one
parameter draw for the whole clip (:mod:`.augment`); scaling to [0, 1] and
``(x - mean) / std``; grayscale replicated to ``channels`` (3 for Kinetics-initialised
encoders). Resizing comes before augmentation so AugMix runs at model size.

Optionally (``motion_gain > 0``, config ``data.motion_gain``) channel 1 carries motion instead
of a copy of the frame: ``motion_gain * (x_t - mean_t x)``, each frame's difference from the
clip's temporal mean. Structures that do not move over the cardiac cycle cancel; the
contracting walls and blood pool remain, so wall motion (the ejection fraction) is in the
input rather than left for the encoder to find across frames. The method replicates the gray
frame (``motion_gain: 0``); a pre-trained checkpoint must be fine-tuned with the layout it was
trained on (checked by :func:`cinefm.train.finetune.plan_init`).

Optionally (``motion_crop < 1``, config ``data.motion_crop``) the frames are first cropped to
a square of that share of the shorter side, centred on the part of the clip that changes
most over time (:func:`motion_centre`; in a cine loop, the heart), so the heart fills more
of the model's input. The method keeps the whole frame (``motion_crop: 1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from cinefm.data.augment import TemporalAugMix
from cinefm.data.temporal import random_phase, temporal_indices

MOTION_QUANTILE = 0.97  # motion_centre: the top 3 % of the smoothed temporal-SD map locate the heart
MOTION_SMOOTH = 5  # box filter (pixels, odd) on that map before thresholding


@dataclass(frozen=True)
class ClipSpec:
    """What a clip looks like to the model (T from models.video.frames, size from models.video.size)."""

    frames: int
    size: int
    mean: float = 0.45
    std: float = 0.225
    channels: int = 3
    motion_gain: float = 0.0  # > 0: channel 1 = motion_gain * (frame - temporal mean of the clip)
    motion_crop: float = 1.0  # < 1: square of this share of the shorter side, centred where the clip moves

    def __post_init__(self) -> None:
        if self.frames < 1 or self.size < 1 or self.channels < 1 or self.std <= 0:
            raise ValueError(f"invalid clip spec {self}: frames, size, channels >= 1 and std > 0")
        if not 0.0 < self.motion_crop <= 1.0:
            raise ValueError(f"invalid clip spec {self}: motion_crop must lie in (0, 1]")
        if self.motion_gain < 0 or (self.motion_gain > 0 and self.channels < 2):
            raise ValueError(f"invalid clip spec {self}: motion_gain must be >= 0, and a motion channel "
                             "needs channels >= 2")


def clip_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`ClipSpec` arguments of the CMR clips from the config (``models.video`` and ``data``)."""
    video, data = config["models"]["video"], config["data"]
    return {"frames": video["frames"], "size": video["size"], "mean": data["mean"], "std": data["std"],
            "motion_gain": data["motion_gain"], "motion_crop": data["motion_crop"]}


def fit_square(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side of a ``(T, C, H, W)`` clip to ``size`` and centre-crop to a square."""
    h, w = clip.shape[-2:]
    if (h, w) == (size, size):
        return clip
    if min(h, w) != size:
        clip = F.resize(clip, [size], antialias=True)
    return F.center_crop(clip, [size, size])


def motion_centre(clip: torch.Tensor) -> tuple[float, float]:
    """``(row, col)`` centroid of the pixels of a ``(T, 1, H, W)`` clip that change most over time.

    The per-pixel standard deviation over the frames, box-smoothed over ``MOTION_SMOOTH``
    pixels, is thresholded at its ``MOTION_QUANTILE``; the centre is the SD-weighted centroid of
    the moving pixels above it. In a cine loop the heart is what moves most. A clip without
    motion gives the frame centre.
    """
    x = clip[:, 0].float()
    sd = (x - x.mean(dim=0)).square_().mean(dim=0).sqrt_()  # ~15x faster than Tensor.std over dim 0
    sd = torch.nn.functional.avg_pool2d(sd[None, None], MOTION_SMOOTH, stride=1, padding=MOTION_SMOOTH // 2,
                                        count_include_pad=False)[0, 0]
    weight = sd * ((sd >= torch.quantile(sd.flatten(), MOTION_QUANTILE)) & (sd > 0))
    total = weight.sum()
    if total <= 0:
        return (sd.shape[0] - 1) / 2, (sd.shape[1] - 1) / 2
    rows, cols = torch.meshgrid(torch.arange(sd.shape[0]), torch.arange(sd.shape[1]), indexing="ij")
    return float((weight * rows).sum() / total), float((weight * cols).sum() / total)


def crop_on_motion(clip: torch.Tensor, fraction: float) -> torch.Tensor:
    """Square crop of ``fraction`` x the shorter side around :func:`motion_centre`, kept inside the frame."""
    h, w = clip.shape[-2:]
    side = max(1, round(min(h, w) * fraction))
    row, col = motion_centre(clip)
    top = min(max(round(row - side / 2), 0), h - side)
    left = min(max(round(col - side / 2), 0), w - side)
    return clip[..., top:top + side, left:left + side]


def normalize_clip(clip: torch.Tensor, mean: float, std: float, channels: int,
                   motion_gain: float = 0.0) -> torch.Tensor:
    """``(T, 1, H, W)`` values in [0, 255] -> ``(channels, T, H, W)`` float32 ``(x/255 - mean)/std``.

    ``motion_gain > 0``: channel 1 is ``motion_gain * (x - x.mean over T)`` instead of ``x``.
    """
    x = clip.float().div_(255.0).sub_(mean).div_(std).permute(1, 0, 2, 3)  # (1, T, H, W)
    out = x.expand(channels, -1, -1, -1).contiguous()
    if motion_gain > 0:
        out[1] = (x[0] - x[0].mean(dim=0, keepdim=True)) * motion_gain
    return out


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
        if self.spec.motion_crop < 1.0:
            clip = crop_on_motion(clip, self.spec.motion_crop)
        clip = fit_square(clip, self.spec.size)
        if self.augment is not None:
            clip = self.augment(clip, rng)
        return normalize_clip(clip, self.spec.mean, self.spec.std, self.spec.channels, self.spec.motion_gain)

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Whole series ``(frames, H, W)`` -> clip; ``rng`` drives all randomness."""
        if frames.ndim != 3:
            raise ValueError(f"a series must be (frames, H, W), got shape {frames.shape}")
        return self.from_frames(frames[self.frame_indices(frames.shape[0], rng)], rng)
