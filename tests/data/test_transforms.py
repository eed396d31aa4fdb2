"""The clip pipeline: temporal sampling, resize/crop, normalisation, 3 channels."""

import numpy as np
import pytest
import torch

from cinefm.data.augment import TemporalAugMix
from cinefm.data.transforms import ClipSpec, ClipTransform, fit_square

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
