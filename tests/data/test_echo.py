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


# --- EchoNet-Dynamic's recipe (echonet/utils/video.py): pad + random crop, the videos' mean/SD, all clips ---

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cinefm.data.echo import AllClipsDataset, clip_starts, dataset_mean_std  # noqa: E402
from cinefm.data.h5 import MemoryReader  # noqa: E402


def test_training_clips_are_zero_padded_and_cropped_back_at_a_random_offset():
    spec = ClipSpec(frames=2, size=8, mean=0.0, std=1.0)
    frames = np.full((4, 8, 8), 255, dtype=np.uint8)  # all ones after normalisation
    train = PeriodClipTransform(spec, True, period=1, pad=3)
    offsets = set()
    for seed in range(60):
        clip = train.from_frames(frames[:2], np.random.default_rng(seed))
        assert clip.shape == (3, 2, 8, 8)
        ones = clip[0, 0] == 1
        rows, cols = np.flatnonzero(ones.any(1).numpy()), np.flatnonzero(ones.any(0).numpy())
        # the image moved by (3 - i, 3 - j) for a crop at (i, j); what came from the padding is 0
        assert (rows[0] == 0 or rows[-1] == 7) and (cols[0] == 0 or cols[-1] == 7)  # a shifted whole frame
        offsets.add((int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])))
        assert float(clip[0, 0][~ones].abs().sum()) == 0.0
    assert len(offsets) > 5  # the offset is drawn
    evaluation = PeriodClipTransform(spec, False, period=1, pad=3)
    assert bool((evaluation.from_frames(frames[:2], np.random.default_rng(0)) == 1).all())  # no pad in eval


def test_dataset_mean_and_sd_are_those_of_the_training_videos():
    rng = np.random.default_rng(1)
    videos = {("a.h5", "A4C"): rng.integers(0, 256, (1, 30, 6, 6), dtype=np.uint8),
              ("b.h5", "A4C"): rng.integers(0, 100, (1, 20, 6, 6), dtype=np.uint8)}
    series = pd.DataFrame({"h5": ["a.h5", "b.h5"], "view": "A4C", "slice": 0})
    mean, std = dataset_mean_std(series, MemoryReader(videos))
    pixels = np.concatenate([v.ravel() for v in videos.values()]) / 255.0
    assert mean == pytest.approx(pixels.mean(), rel=1e-12) and std == pytest.approx(pixels.std(), rel=1e-9)
    one, _ = dataset_mean_std(series, MemoryReader(videos), samples=1, seed=0)
    assert one in (pytest.approx(videos[("a.h5", "A4C")].mean() / 255), pytest.approx(videos[("b.h5", "A4C")].mean() / 255))


def test_all_clips_dataset_holds_every_start_of_the_video():
    n, frames, period = 30, 4, 3
    video = np.arange(n, dtype=np.uint8)[None, :, None, None].repeat(8, 2).repeat(8, 3)
    series = pd.DataFrame({"patient_id": ["P"], "study_id": ["S"], "h5": ["s.h5"], "view": ["A4C"], "slice": [0],
                           "frames": [n]})
    targets = pd.DataFrame({"lvef": [55.0]}, index=pd.Index(["S"], name="study_id"))
    spec = ClipSpec(frames=frames, size=8, mean=0.0, std=1.0)
    ds = AllClipsDataset(series, targets, PeriodClipTransform(spec, False, period), seed=0,
                         reader=MemoryReader({("s.h5", "A4C"): video}))
    item = ds[0]
    starts = list(clip_starts(n, frames, period))
    assert starts == list(range(n - (frames - 1) * period))  # EchoNet: every start whose clip fits
    assert item["video"].shape == (len(starts), 3, frames, 8, 8) and item["views"] == ["A4C"] * len(starts)
    first_frames = (item["video"][:, 0, :, 0, 0] * 255).round().long()
    assert first_frames.tolist() == [[s + k * period for k in range(frames)] for s in starts]
    assert float(item["target"][0]) == 55.0
    assert torch.isfinite(item["video"]).all()
