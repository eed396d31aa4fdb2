"""Uniform temporal subsampling to T frames."""

import numpy as np
import pytest

from cinefm.data.temporal import random_phase, temporal_indices


def test_evaluation_takes_evenly_spaced_frames_from_the_first():
    assert temporal_indices(32, 8).tolist() == [0, 4, 8, 12, 16, 20, 24, 28]
    assert temporal_indices(30, 4).tolist() == [0, 7, 15, 22]


def test_a_phase_offset_shifts_within_one_step_and_keeps_the_full_cycle():
    idx = temporal_indices(32, 8, phase=3.5)
    assert idx.tolist() == [3, 7, 11, 15, 19, 23, 27, 31]
    rng = np.random.default_rng(0)
    phases = [random_phase(32, 8, rng) for _ in range(200)]
    assert min(phases) >= 0 and max(phases) < 4 and max(phases) - min(phases) > 3
    for p in phases:
        i = temporal_indices(32, 8, p)
        assert len(set(i.tolist())) == 8 and i.max() - i.min() >= 28


def test_fewer_frames_than_t_repeats_frames_in_order():
    idx = temporal_indices(5, 8)
    assert idx.tolist() == [0, 0, 1, 1, 2, 3, 3, 4]
    assert temporal_indices(1, 4).tolist() == [0, 0, 0, 0]


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="at least one frame"):
        temporal_indices(0, 4)
    with pytest.raises(ValueError, match="phase"):
        temporal_indices(32, 8, phase=4.0)
