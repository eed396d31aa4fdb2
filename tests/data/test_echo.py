"""EchoNet-Dynamic clip sampling: T frames every period-th, random start in training, wrap-around when short."""

from __future__ import annotations

import numpy as np

from cinefm.data.echo import PeriodClipTransform, max_start, period_indices
from cinefm.data.transforms import ClipSpec


def test_period_indices_step_by_the_period_and_wrap():
    assert period_indices(100, 4, 2, 10).tolist() == [10, 12, 14, 16]
    assert period_indices(5, 4, 2).tolist() == [0, 2, 4, 1]  # a short loop wraps around
    assert max_start(100, 32, 2) == 37 and max_start(20, 32, 2) == 0


def test_training_draws_starts_whose_clip_fits_and_evaluation_starts_at_zero():
    spec = ClipSpec(frames=8, size=16)
    train, evaluation = PeriodClipTransform(spec, True, period=2), PeriodClipTransform(spec, False, period=2)
    rng = np.random.default_rng(0)
    starts = {int(train.frame_indices(40, rng)[0]) for _ in range(300)}
    assert starts == set(range(0, max_start(40, 8, 2) + 1))  # every fitting start, none beyond
    assert evaluation.frame_indices(40, rng).tolist() == list(range(0, 16, 2))
    clip = evaluation(np.arange(40, dtype=np.uint8)[:, None, None].repeat(20, 1).repeat(24, 2), rng)
    assert clip.shape == (3, 8, 16, 16)
    assert np.allclose(clip[0, :, 0, 0].numpy() * 0.225 + 0.45, np.arange(0, 16, 2) / 255, atol=1e-6)
