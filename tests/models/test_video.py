import pickle

import pytest
import torch
import torchvision

from cinefm.config import ConfigError
from cinefm.models.video import MVIT_V1_B_FILE, build_video_encoder
from cinefm.models.weights import WeightsNotFoundError


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_mvit_v1_b_is_torchvisions_trunk_with_36_3m_parameters():
    torch.manual_seed(1)
    trunk = build_video_encoder("mvit_v1_b", frames=16, size=224)
    torch.manual_seed(1)
    ref = torchvision.models.video.mvit_v1_b(weights=None)
    ref_trunk = {k: v for k, v in ref.state_dict().items() if not k.startswith("head.")}
    ours = trunk.state_dict()
    assert ours.keys() == ref_trunk.keys()
    assert all(torch.equal(ours[k], ref_trunk[k]) for k in ours)
    assert abs(_n_params(trunk) - 36.3e6) < 0.1e6
    assert trunk.out_dim == 768

    captured = {}
    trunk.norm.register_forward_hook(lambda m, i, o: captured.setdefault("norm", o))
    trunk.eval()
    with torch.no_grad():
        y = trunk(torch.randn(1, 3, 16, 224, 224))
    assert y.shape == (1, 768)
    torch.testing.assert_close(y, captured["norm"][:, 0])  # class token after the final norm


def test_mvit_small_is_configurable_and_trains_on_small_clips(mvit_cfg):
    enc = build_video_encoder("mvit_small", **mvit_cfg)
    assert enc.out_dim == 32 and len(enc.blocks) == 3
    x = torch.randn(2, 3, 8, 64, 64)
    y = enc(x)
    assert y.shape == (2, 32)
    y.square().sum().backward()
    assert all(p.grad is not None for p in enc.parameters())

    wider = build_video_encoder("mvit_small", frames=4, size=32,
                                mvit_small={"dims": [8, 16, 24], "heads": [1, 1, 2], "depths": [1, 1, 2],
                                            "kv_stride": 2})
    assert wider.out_dim == 24 and len(wider.blocks) == 4
    assert wider(torch.randn(1, 3, 4, 32, 32)).shape == (1, 24)


def test_mvit_rejects_a_clip_of_another_size_even_after_pickling(mvit_cfg):
    enc = pickle.loads(pickle.dumps(build_video_encoder("mvit_small", **mvit_cfg)))
    with pytest.raises(ValueError, match=r"\(T, H, W\) = \(8, 64, 64\) \(models.video.frames/size\)"):
        enc(torch.randn(1, 3, 8, 32, 32))


def test_r2plus1d_trunk_gives_512_for_any_clip_size():
    enc = build_video_encoder("r2plus1d_18")
    assert enc.out_dim == 512
    assert not any(k.startswith("fc.") for k in enc.state_dict())
    enc.eval()
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 4, 32, 32)).shape == (1, 512)
        assert enc(torch.randn(2, 3, 8, 48, 40)).shape == (2, 512)


@pytest.mark.parametrize("bad, match", [
    ({"name": "resnet"}, r"models.video.name: unknown encoder 'resnet'"),
    ({"name": "mvit_small", "frame": 8}, r"models.video: unknown key\(s\) \['frame'\]"),
    ({"name": "mvit_small", "mvit_small": {"depth": [1]}}, r"models.video.mvit_small: unknown option"),
    ({"name": "mvit_small", "mvit_small": {"dims": [30], "heads": [4], "depths": [1]}}, "not divisible"),
])
def test_bad_video_config_names_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        build_video_encoder(**bad)


def test_other_encoders_sections_are_ignored(mvit_cfg):
    cfg = {**mvit_cfg, "perceiver_io": {"latents": 4}}
    assert build_video_encoder("mvit_small", **cfg).out_dim == 32


def test_mvit_small_state_dict_round_trips_through_the_weights_path(tmp_path, mvit_cfg):
    torch.manual_seed(3)
    saved = build_video_encoder("mvit_small", **mvit_cfg)
    state = saved.state_dict()
    # as in a torchvision checkpoint: a classifier head that the trunk must drop
    state_with_head = {**state, "head.1.weight": torch.randn(400, 32), "head.1.bias": torch.zeros(400)}
    torch.save(state_with_head, tmp_path / "small.pth")
    torch.manual_seed(4)
    loaded = build_video_encoder("mvit_small", **mvit_cfg, weights=str(tmp_path / "small.pth"))
    fresh = build_video_encoder("mvit_small", **mvit_cfg)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    assert not all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("how", ["file", "directory", "kinetics400"])
def test_r2plus1d_loads_a_torchvision_checkpoint_without_its_fc(r2plus1d_checkpoint, monkeypatch, how):
    root, state = r2plus1d_checkpoint
    ckpt_dir = root / "hub" / "checkpoints"
    monkeypatch.setenv("TORCH_HOME", str(root))
    weights = {"file": ckpt_dir / "r2plus1d_18-91a641e6.pth", "directory": ckpt_dir, "kinetics400": "kinetics400"}[how]
    enc = build_video_encoder("r2plus1d_18", weights=str(weights))
    ours = enc.state_dict()
    assert ours.keys() == {k for k in state if not k.startswith("fc.")}
    assert all(torch.equal(ours[k], state[k]) for k in ours)


def test_missing_kinetics_file_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for weights in (tmp_path / "nope.pth", tmp_path, "kinetics400"):
        with pytest.raises(WeightsNotFoundError) as info:
            build_video_encoder("mvit_v1_b", weights=str(weights))
        msg = str(info.value)
        assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ConfigError)
        assert "models.video.weights" in msg and "MViT_V1_B_Weights.KINETICS400_V1" in msg
        assert MVIT_V1_B_FILE in msg


def test_state_dict_of_another_network_is_refused_with_the_key(r2plus1d_checkpoint, mvit_cfg):
    root, _ = r2plus1d_checkpoint
    with pytest.raises(ConfigError, match="models.video.weights: .* does not fit"):
        build_video_encoder("mvit_small", **mvit_cfg, weights=str(root / "hub" / "checkpoints"
                                                                   / "r2plus1d_18-91a641e6.pth"))


def test_mvit_weights_for_another_clip_size_get_resized_positions(tmp_path, mvit_cfg):
    src = build_video_encoder("mvit_small", **mvit_cfg)           # 4 x 16 x 16 tokens
    torch.save(src.state_dict(), tmp_path / "w.pth")
    dst = build_video_encoder("mvit_small", **{**mvit_cfg, "frames": 16, "size": 96},
                              weights=str(tmp_path / "w.pth"))     # 8 x 24 x 24 tokens
    assert dst.pos_encoding.spatial_pos.shape == (24 * 24, 16)
    assert dst.pos_encoding.temporal_pos.shape == (8, 16)
    torch.testing.assert_close(dst.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)
    grid = src.pos_encoding.spatial_pos.detach().T.reshape(1, 16, 16, 16)
    expect = torch.nn.functional.interpolate(grid, size=(24, 24), mode="bicubic").reshape(16, -1).T
    torch.testing.assert_close(dst.pos_encoding.spatial_pos.detach(), expect)
    assert dst(torch.randn(1, 3, 16, 96, 96)).shape == (1, 32)
