"""The clip pipeline: temporal sampling, resize/crop, normalisation, 3 channels."""

import numpy as np
import pytest
import torch

from cinefm.data.augment import TemporalAugMix
from cinefm.data.transforms import (
    ClipSpec,
    ClipTransform,
    crop_on_motion,
    fit_square,
    motion_centre,
)

from .conftest import series_array

SPEC = ClipSpec(frames=4, size=16, mean=0.45, std=0.225)


def _value(x: torch.Tensor) -> torch.Tensor:
    """Undo normalisation: grey level of each frame's centre pixel, channel 0."""
    return (x[0, :, 8, 8] * SPEC.std + SPEC.mean) * 255


def test_evaluation_clip_has_model_shape_and_the_evenly_spaced_frames():
    frames = series_array(1, 8)[0]
    clip = ClipTransform(SPEC, train=False)(frames, np.random.default_rng(0))
    assert clip.shape == (3, 4, 16, 16) and clip.dtype == torch.float32
    assert torch.equal(clip[0], clip[1]) and torch.equal(clip[0], clip[2])
    expected = torch.tensor([10 + 20 * f for f in (0, 2, 4, 6)], dtype=torch.float32)
    assert torch.allclose(_value(clip), expected, atol=1e-3)


def test_training_draws_a_phase_offset_but_keeps_the_frame_spacing():
    frames = series_array(1, 8)[0]
    tf = ClipTransform(SPEC, train=True, augment=None)
    starts = set()
    for seed in range(20):
        v = _value(tf(frames, np.random.default_rng(seed))).round()
        starts.add(int(v[0]))
        assert torch.allclose(v[1:] - v[:-1], torch.full((3,), 40.0))
    assert starts == {10, 30}  # offset 0 or 1 frame within the step of 2


def test_short_series_repeat_frames():
    frames = series_array(1, 3)[0]
    v = _value(ClipTransform(SPEC, train=False)(frames, np.random.default_rng(0))).round()
    assert v.tolist() == [10.0, 10.0, 30.0, 50.0]


def test_non_square_frames_are_resized_and_centre_cropped():
    clip = torch.zeros((2, 1, 40, 60), dtype=torch.uint8)
    clip[..., :, 25:35] = 200  # a bar in the horizontal centre survives the centre crop
    out = fit_square(clip, 16)
    assert out.shape == (2, 1, 16, 16)
    assert out[0, 0, 8, 8] == 200 and out[0, 0, 8, 0] == 0


def test_augmentation_runs_only_in_training_and_is_seeded():
    frames = series_array(1, 8)[0].copy()
    frames[:, 5:12, 3:9] = 250  # structure for the geometric ops
    aug = TemporalAugMix(severity=5)
    train, evaluation = ClipTransform(SPEC, True, aug), ClipTransform(SPEC, False, aug)
    assert evaluation.augment is None
    a = train(frames, np.random.default_rng(4))
    assert torch.equal(a, train(frames, np.random.default_rng(4)))
    assert not torch.equal(a, train(frames, np.random.default_rng(5)))


def test_invalid_spec_is_rejected():
    with pytest.raises(ValueError, match="invalid clip spec"):
        ClipSpec(frames=0, size=16)


def test_motion_channel_holds_the_change_over_the_cycle_and_cancels_what_stands_still():
    frames = np.full((8, 16, 16), 60, dtype=np.uint8)
    frames[:, 4:12, 4:12] = 200                         # a static structure
    frames[::2, 0:3, 0:3] = 250                         # a corner that blinks every other frame
    spec = ClipSpec(frames=4, size=16, mean=0.45, std=0.225, motion_gain=2.0)
    clip = ClipTransform(spec, train=False)(frames, np.random.default_rng(0))
    gray = ClipTransform(SPEC, train=False)(frames, np.random.default_rng(0))
    assert clip.shape == gray.shape == (3, 4, 16, 16)
    assert torch.equal(clip[0], gray[0]) and torch.equal(clip[2], gray[2])
    motion = clip[1]
    assert torch.allclose(motion[:, 4:12, 4:12], torch.zeros(4, 8, 8), atol=1e-5)  # static: no signal
    # frames 0, 2, 4, 6 are sampled: all "on", so the blinking corner stands still in this clip too
    assert torch.allclose(motion[:, 0:3, 0:3], torch.zeros(4, 3, 3), atol=1e-5)
    clip = ClipTransform(ClipSpec(frames=8, size=16, motion_gain=2.0), train=False)(frames, np.random.default_rng(0))
    on = 2.0 * (250 - 60) / 2 / 255 / 0.225             # gain * (value - temporal mean), normalised
    assert torch.allclose(clip[1][:, 1, 1], torch.tensor([on, -on] * 4), atol=1e-4)
    assert torch.allclose(clip[1].sum(dim=0), torch.zeros(16, 16), atol=1e-4)  # mean over time is zero


def test_motion_channel_needs_a_second_channel_and_a_non_negative_gain():
    with pytest.raises(ValueError, match="motion"):
        ClipSpec(frames=4, size=16, channels=1, motion_gain=1.0)
    with pytest.raises(ValueError, match="motion_gain"):
        ClipSpec(frames=4, size=16, motion_gain=-1.0)


def _beating_disk_at(row: int, col: int, frames: int = 8, size: int = 64, bar: bool = True) -> np.ndarray:
    """A disk at (row, col) whose radius beats 3..6 px, and a still bright bar across the middle."""
    yy, xx = np.mgrid[:size, :size]
    out = np.full((frames, size, size), 40, dtype=np.uint8)
    if bar:
        out[:, 30:34, 8:56] = 230
    for t in range(frames):
        radius = 6 - 3 * (1 - np.cos(2 * np.pi * t / frames)) / 2
        out[t][np.hypot(yy - row, xx - col) <= radius] = 200
    return out


def test_motion_crop_centres_on_what_moves_and_stays_inside_the_frame():
    clip = torch.from_numpy(_beating_disk_at(14, 44)).unsqueeze(1)
    row, col = motion_centre(clip)
    assert abs(row - 14) < 1.5 and abs(col - 44) < 1.5
    crop = crop_on_motion(clip, 0.5)
    assert crop.shape == (8, 1, 32, 32)
    assert torch.equal(crop, clip[..., 0:32, 28:60])             # centred on (14, 44), clamped at the top
    edge = torch.from_numpy(_beating_disk_at(2, 62)).unsqueeze(1)
    assert torch.equal(crop_on_motion(edge, 0.5), edge[..., 0:32, 32:64])
    still = torch.full((8, 1, 64, 64), 90, dtype=torch.uint8)
    assert motion_centre(still) == (31.5, 31.5)                  # no motion: the frame centre


def test_motion_crop_in_the_clip_pipeline_makes_the_heart_fill_the_input():
    frames = _beating_disk_at(14, 44, bar=False)
    whole = ClipTransform(ClipSpec(frames=8, size=32), train=False)(frames, np.random.default_rng(0))
    cropped = ClipTransform(ClipSpec(frames=8, size=32, motion_crop=0.5), train=False)(frames,
                                                                                       np.random.default_rng(0))
    share = lambda clip: float((clip[0, 0] > (120 / 255 - 0.45) / 0.225).float().mean())  # noqa: E731
    assert share(cropped) == pytest.approx(4 * share(whole), rel=0.2)  # half the side: 4x the area
    with pytest.raises(ValueError, match="motion_crop"):
        ClipSpec(frames=4, size=16, motion_crop=0.0)
