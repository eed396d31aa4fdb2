"""Pure parts of frame assembly: temporal resampling, window, resize, counts."""

import numpy as np
import pytest

from cinefm.dicom.assemble import (
    common_frame_count,
    fit_frames,
    resample_cycle,
    resize_matrix,
    to_uint8,
)


def test_resample_cycle_interpolates_over_a_periodic_cycle():
    x = np.arange(4, dtype=np.float32)[:, None, None]
    out = resample_cycle(x, 8)[:, 0, 0]
    np.testing.assert_allclose(out, [0, 0.5, 1, 1.5, 2, 2.5, 3, 1.5])  # last wraps to frame 0
    np.testing.assert_array_equal(resample_cycle(x, 4), x)
    np.testing.assert_allclose(resample_cycle(np.arange(6.0)[:, None], 3)[:, 0], [0, 2, 4])


def test_common_frame_count_is_the_mode_ties_to_the_larger():
    assert common_frame_count([25, 25, 30]) == 25
    assert common_frame_count([20, 30]) == 30


def test_fit_frames_keeps_the_physical_aspect_and_pads():
    x = np.ones((2, 24, 12), np.float32)
    out, spacing = fit_frames(x, (1.0, 1.0), 32)
    assert out.shape == (2, 32, 32) and spacing == pytest.approx(0.75)
    cols = np.where(out[0].max(axis=0) > 0.5)[0]
    assert len(cols) == 16 and cols[0] == 8  # 12 mm wide -> 16 px, centred
    out, spacing = fit_frames(np.ones((1, 20, 20), np.float32), (2.0, 1.0), 40)  # 40 mm tall, 20 mm wide
    rows, cols = np.where(out[0] > 0.5)
    assert spacing == pytest.approx(1.0) and np.ptp(rows) + 1 == 40 and np.ptp(cols) + 1 == 20


def test_to_uint8_clips_to_the_window():
    x = np.array([-5.0, 0.0, 5.0, 10.0, 20.0])
    np.testing.assert_array_equal(to_uint8(x, 0.0, 10.0), [0, 0, 128, 255, 255])
    assert not to_uint8(np.full(3, 7.0), 7.0, 7.0).any()


def test_resize_matrix_is_identity_at_scale_one_and_averages_when_shrinking():
    np.testing.assert_array_equal(resize_matrix(5, 5), np.eye(5, dtype=np.float32))
    m = resize_matrix(8, 4)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)
    assert (m > 0).sum(axis=1).min() >= 2  # antialiased: each output mixes several inputs
    ramp = np.arange(8, dtype=np.float32)
    np.testing.assert_allclose(resize_matrix(16, 8) @ resize_matrix(8, 16) @ ramp, ramp, atol=0.6)


def test_percentile_is_numpys_bit_for_bit():
    """The histogram path of assemble.percentile gives np.percentile's exact float64s (and falls back)."""
    from cinefm.dicom.assemble import percentile

    rng = np.random.default_rng(27)
    cases = [rng.integers(0, 4000, 20_000).astype(np.float32), (rng.integers(-500, 500, 999) * 3).astype(np.float32),
             np.full(50, 7, np.float32), rng.normal(0, 100, 777).astype(np.float32), np.array([0.0, -0.0, 1.0], np.float32),
             np.array([1.0, np.nan, 3.0], np.float32), np.array([5.0], np.float32), np.array([0.0, 2.0**30], np.float32)]
    for x in cases:
        for q in [(0.5, 99.5), (0, 100), (25.3, 74.9), (50,)]:
            a, b = np.percentile(x, q), percentile(x, q)
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), (x[:5], q)
            assert np.array_equal(np.signbit(a), np.signbit(b))
