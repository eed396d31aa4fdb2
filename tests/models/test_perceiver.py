import math

import pytest
import torch
from transformers.models.perceiver.modeling_perceiver import generate_fourier_features

from cinefm.models.perceiver import PerceiverIOEncoder, fourier_features, grid_positions
from cinefm.models.video import build_video_encoder

SMALL = {"tubelet": [2, 8, 8], "latents": 8, "latent_dim": 32, "cross_heads": 1, "self_heads": 2,
         "self_blocks": 2, "repeats": 2, "fourier_bands": 3}


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_fourier_features_hand_computed():
    # x = 0.5, K = 2 bands, mu = 4: f = linspace(1, 2, 2) = [1, 2]
    out = fourier_features(torch.tensor([[0.5]]), num_bands=2, max_resolution=[4])
    expect = [0.5, math.sin(math.pi * 0.5), math.sin(math.pi * 1.0), math.cos(math.pi * 0.5), math.cos(math.pi)]
    torch.testing.assert_close(out, torch.tensor([expect]))


def test_fourier_features_match_transformers_perceiver_on_a_3d_grid():
    pos = grid_positions((3, 4, 5))
    assert pos.shape == (60, 3) and pos.min() == -1 and pos.max() == 1
    ours = fourier_features(pos, num_bands=4, max_resolution=(3, 4, 5))
    ref = generate_fourier_features(pos[None], num_bands=4, max_resolution=(3, 4, 5))[0]
    torch.testing.assert_close(ours, ref)


def test_output_shape_does_not_depend_on_clip_length_or_size():
    enc = build_video_encoder("perceiver_io", frames=8, size=32, perceiver_io=SMALL)
    assert enc.out_dim == 32
    for t, s in [(2, 16), (8, 32), (16, 48)]:
        assert enc(torch.randn(2, 3, t, s, s)).shape == (2, 32)


def test_latent_blocks_share_weights_across_repeats():
    once = PerceiverIOEncoder(frames=8, size=32, **{**SMALL, "repeats": 1})
    thrice = PerceiverIOEncoder(frames=8, size=32, **{**SMALL, "repeats": 3})
    assert _n_params(once) == _n_params(thrice)
    one_block = PerceiverIOEncoder(frames=8, size=32, **{**SMALL, "self_blocks": 1})
    assert _n_params(once) - _n_params(one_block) == _n_params(once.blocks[1])
    thrice.load_state_dict(once.state_dict())        # identical parameter sets ...
    x = torch.randn(1, 3, 8, 32, 32)
    assert not torch.allclose(once(x), thrice(x))     # ... applied a different number of times


def test_query_decoder_cross_attends_once_into_the_latents():
    enc = PerceiverIOEncoder(frames=8, size=32, **{**SMALL, "decoder": "query"})
    y = enc(torch.randn(2, 3, 8, 32, 32))
    assert y.shape == (2, 32)
    y.sum().backward()
    assert enc.query.grad is not None and enc.latents.grad is not None


def test_clip_not_divisible_by_the_tubelet_is_refused():
    enc = PerceiverIOEncoder(frames=8, size=32, **SMALL)
    with pytest.raises(ValueError, match="perceiver_io.tubelet"):
        enc(torch.randn(1, 3, 7, 32, 32))


def test_tubelets_are_contiguous_patches():
    enc = PerceiverIOEncoder(frames=2, size=16, **{**SMALL, "tubelet": [1, 8, 8]})
    x = torch.arange(1 * 3 * 2 * 16 * 16, dtype=torch.float32).reshape(1, 3, 2, 16, 16)
    tok = enc.tokens(x)
    assert tok.shape == (1, 2 * 2 * 2, 3 * 64 + 3 * 7)
    # token 1 = t 0, y-patch 0, x-patch 1: channel 0 pixels x[0, 0, 0, :8, 8:16]
    torch.testing.assert_close(tok[0, 1, :64], x[0, 0, 0, :8, 8:16].reshape(-1))


def test_recurrent_cross_attention_reuses_one_set_of_weights():
    """The source's recurring step: every repeat cross-attends into the inputs with the same module (shared
    weights: no more parameters than a single cross-attend), and its MLP widens by cross_mlp_ratio."""
    from cinefm.models.perceiver import PerceiverIOEncoder

    kw = dict(frames=4, size=16, tubelet=(2, 8, 8), latents=4, latent_dim=16, self_blocks=1, fourier_bands=2,
              cross_mlp_ratio=1)
    torch.manual_seed(0)
    once = PerceiverIOEncoder(repeats=3, recurrent_cross=False, **kw)
    torch.manual_seed(0)
    recurrent = PerceiverIOEncoder(repeats=3, recurrent_cross=True, **kw)
    assert sum(p.numel() for p in recurrent.parameters()) == sum(p.numel() for p in once.parameters())
    assert recurrent.encode.mlp[1].out_features == 16  # widening factor 1: 16 -> 16
    calls = []
    recurrent.encode.register_forward_hook(lambda mod, args, out: calls.append(args[0].detach().clone()))
    x = torch.randn(2, 3, 4, 16, 16)
    out = recurrent(x)
    assert len(calls) == 3  # one cross-attend per repeat, all through self.encode
    assert not torch.allclose(calls[1], calls[0])  # later repeats query with the updated latents
    # re-derived: the same modules applied step by step
    tokens = recurrent.tokens(x)
    z = recurrent.latents.expand(2, -1, -1)
    for _ in range(3):
        z = recurrent.blocks[0](recurrent.encode(z, tokens))
    expected = recurrent.norm(recurrent.decode(recurrent.query.expand(2, -1, -1), z)[:, 0]) \
        if recurrent.decoder == "query" else recurrent.norm(z.mean(1))
    torch.testing.assert_close(out, expected)
    # the gradient of the one cross-attention collects every repeat's contribution
    out.sum().backward()
    assert recurrent.encode.attn.q.weight.grad is not None
