"""Class-token attention of torchvision MViT blocks: recomputed exactly, on the right grid, refused elsewhere."""

from __future__ import annotations

import pytest
import torch

from cinefm.models.video import build_video_encoder
from cinefm.viz.attention import (
    AttentionUnavailable,
    attention_probabilities,
    check_supported,
    mvit_class_attention,
    to_clip,
    upsample_nearest,
)

SMALL = {"frames": 4, "size": 32, "weights": None,
         "mvit_small": {"dims": [8, 16], "heads": [1, 2], "depths": [1, 2], "kv_stride": 2}}


def test_recomputed_attention_reproduces_every_block_output():
    torch.manual_seed(0)
    model = build_video_encoder("mvit_small", **SMALL).eval()
    seen = {}

    def keep(i):
        def hook(module, args, output):
            seen[i] = (args[0], tuple(args[1]), output[0])
        return hook

    handles = [b.attn.register_forward_hook(keep(i)) for i, b in enumerate(model.blocks)]
    with torch.no_grad():
        model(torch.randn(2, 3, 4, 32, 32))
        for i, (x, thw, y) in seen.items():
            attn = model.blocks[i].attn
            probs, v, _, _ = attention_probabilities(attn, x, thw)
            rebuilt = attn.project(torch.matmul(probs, v).transpose(1, 2).reshape(x.shape[0], -1, attn.output_dim))
            torch.testing.assert_close(rebuilt, y)
            torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs[..., 0]))
    for h in handles:
        h.remove()


def test_last_block_of_mvit_v1_b_has_one_map_per_head_on_the_pooled_key_grid():
    model = build_video_encoder("mvit_v1_b", frames=4, size=64, weights=None).eval()
    (att,) = mvit_class_attention(model, torch.randn(1, 3, 4, 64, 64))
    # stage 4 of MViT-B: 8 heads; tokens 2x16x16 pooled three times by (1, 2, 2) -> 2x2x2, keys not pooled
    assert att.block == 15 and att.grid == (2, 2, 2) and att.weights.shape == (1, 8, 2, 2, 2)
    assert float(att.weights.sum(dim=(2, 3, 4)).max()) < 1.0  # the class token also attends to itself
    first = mvit_class_attention(model, torch.randn(1, 3, 4, 64, 64), blocks=[0])[0]
    assert first.grid == (2, 2, 2)  # block 0: 2x16x16 tokens, keys pooled by stride (1, 8, 8)


def test_blocks_are_averaged_after_upsampling_to_the_clip():
    model = build_video_encoder("mvit_small", **SMALL).eval()
    atts = mvit_class_attention(model, torch.randn(1, 3, 4, 32, 32), blocks=[0, -1])
    assert [a.block for a in atts] == [0, 2]
    heat = to_clip(atts, (4, 32, 32))
    assert heat.shape == (1, 4, 32, 32)
    manual = sum(upsample_nearest(a.weights[0].mean(0), (4, 32, 32)) for a in atts) / 2
    torch.testing.assert_close(heat[0], manual)
    with pytest.raises(ValueError, match="block 7 does not exist; this MViT has 3 blocks"):
        mvit_class_attention(model, torch.randn(1, 3, 4, 32, 32), blocks=[7])


def test_nearest_upsampling_gives_each_token_its_stride_of_the_clip():
    grid = torch.arange(8.0).reshape(2, 2, 2)
    up = upsample_nearest(grid, (4, 8, 8))
    assert up.shape == (4, 8, 8)
    assert torch.equal(up[0:2, 0:4, 4:8].unique(), torch.tensor([1.0]))
    assert torch.equal(up[2:4, 4:8, 0:4].unique(), torch.tensor([6.0]))


@pytest.mark.parametrize("name,why", [("r2plus1d_18", "convolutional network"),
                                      ("perceiver_io", "no class token attending to patches")])
def test_encoders_without_class_token_attention_are_refused_with_the_reason(name, why):
    with pytest.raises(AttentionUnavailable, match=why):
        check_supported(name)
    model = build_video_encoder(name, frames=4, size=16, weights=None)
    with pytest.raises(AttentionUnavailable, match=why):
        mvit_class_attention(model, torch.randn(1, 3, 4, 16, 16))
