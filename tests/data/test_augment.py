"""AugMix for clips: one parameter draw, the identical transform on every frame."""

import numpy as np
import pytest
import torch

from cinefm.data.augment import OPS, TemporalAugMix, apply_op


def _frame(seed: int = 0, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 1, size, size), generator=g, dtype=torch.uint8)


def test_a_clip_of_identical_frames_stays_identical_but_changes():
    aug = TemporalAugMix(severity=3, width=3, depth=-1, ops=OPS)
    clip = _frame().expand(8, -1, -1, -1).contiguous()
    changes = []
    for seed in range(1, 6):  # (seed 0 draws m = 0.02: AugMix then keeps the input almost as is)
        out = aug(clip, np.random.default_rng(seed))
        assert out.shape == clip.shape and out.dtype == torch.float32
        assert all(torch.equal(out[0], out[t]) for t in range(1, 8)), f"seed {seed}: frames diverged"
        assert (out - clip.float()).abs().max() > 1.0, f"seed {seed}: augmentation did nothing"
        changes.append((out - clip.float()).abs().mean().item())
    assert np.mean(changes) > 5.0  # grey levels: a visible change on average, not rounding noise


def test_batched_clip_equals_each_frame_transformed_with_the_same_parameters():
    aug = TemporalAugMix(severity=5, width=3, depth=3, ops=OPS)
    clip = torch.cat([_frame(s) for s in range(6)])  # six different frames
    params = aug.sample(np.random.default_rng(11))
    batched = aug.apply(clip, params)
    per_frame = torch.cat([aug.apply(clip[t:t + 1], params) for t in range(6)])
    assert torch.allclose(batched, per_frame, atol=1e-3)
    other = aug.apply(clip, aug.sample(np.random.default_rng(12)))
    assert not torch.allclose(batched, other)


def test_same_seed_same_augmentation():
    aug = TemporalAugMix()
    clip = torch.cat([_frame(s) for s in range(4)])
    a = aug(clip, np.random.default_rng(3))
    b = aug(clip, np.random.default_rng(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("op", OPS)
def test_every_op_changes_a_frame_and_keeps_its_shape(op):
    clip = (_frame(1) // 2 + 40).expand(3, -1, -1, -1).contiguous()  # low contrast: autocontrast acts
    out = apply_op(clip, op, 0.8)
    assert out.shape == clip.shape and out.dtype == torch.uint8
    assert not torch.equal(out, clip)


def test_bad_settings_name_the_config_key():
    with pytest.raises(ValueError, match="config.data.augmix.ops"):
        TemporalAugMix(ops=["zoom", "warp"])
    with pytest.raises(ValueError, match="config.data.augmix.severity"):
        TemporalAugMix(severity=0)
