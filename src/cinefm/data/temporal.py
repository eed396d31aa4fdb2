"""Uniform temporal subsampling of a cine loop to T frames.

A cine series covers one cardiac cycle in ``n`` frames. We take T frames evenly spread over
the whole cycle, ``i_k = floor(phase + k * n / T) mod n`` for ``k = 0..T-1``:

* evaluation uses ``phase = 0`` (deterministic, starts at the first acquired frame);
* training draws ``phase ~ U[0, n / T)``, a random offset within one sampling step, so the
  model sees every frame over the epochs while each clip still spans the full cycle;
* ``n < T`` (short series): the step ``n / T`` is below one and frames are repeated
  (nearest-neighbour temporal up-sampling). Series below ``config.data.min_frames`` are
  left out of the datasets with a count instead (:func:`cinefm.data.h5.drop_short_series`).
"""

from __future__ import annotations

import numpy as np


def temporal_indices(n_frames: int, t: int, phase: float = 0.0) -> np.ndarray:
    """Frame indices ``floor(phase + k * n_frames / t) mod n_frames`` for ``k < t`` (int64)."""
    if n_frames < 1:
        raise ValueError(f"a series needs at least one frame, got {n_frames}")
    if t < 1:
        raise ValueError(f"clip length T must be >= 1, got {t}")
    step = n_frames / t
    if not 0.0 <= phase < max(step, 1.0):
        raise ValueError(f"phase {phase} outside [0, {max(step, 1.0)})")
    idx = np.floor(phase + np.arange(t) * step).astype(np.int64)
    return idx % n_frames


def random_phase(n_frames: int, t: int, rng: np.random.Generator) -> float:
    """Draw a training phase offset ``U[0, max(n/T, 1))``."""
    return float(rng.uniform(0.0, max(n_frames / t, 1.0)))
