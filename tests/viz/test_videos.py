"""Heat-map videos: a planted high-attention token shows where it sits; a fine-tuned model's test studies."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cinefm.models.video import build_video_encoder
from cinefm.viz.videos import (
    AttentionSettings,
    overlay,
    render_attention_videos,
    render_clip,
    write_mp4,
)

FRAMES, SIZE, UP = 8, 32, 2
PLANTED = (2, 5, 1)  # (t, h, w) on the 4x8x8 token grid of an 8x32x32 clip (patch stride 2x4x4)
SETTINGS = AttentionSettings(studies=2, views=("4CH", "2CH", "SAX"), blocks=(-1,), seed=0, fps=4.0, alpha=0.8,
                             colormap="inferno", upscale=UP)


def planted_model() -> torch.nn.Module:
    """A two-block MViT whose last block's class token attends (almost) only to the token of one bright voxel.

    Patch embedding reads only the centre voxel of its kernel (token (t, h, w) = pixel (2t, 4h, 4w))
    times a ±1 pattern e; positions are zero and the class token is e. LayerNorm maps e·a to e and
    the dark tokens to 0; q = 10·LN(x), k = LN(x) with an identity key-pooling kernel: only the
    class token and the bright token get a large q·k. Block 0 is made the identity (zero output
    projections; torchvision's MViT cannot be built with a single block).
    """
    model = build_video_encoder("mvit_small", frames=FRAMES, size=SIZE, weights=None,
                                mvit_small={"dims": [8], "heads": [1], "depths": [2], "kv_stride": 1}).eval()
    dim = 8
    e = torch.tensor([1.0, -1.0] * (dim // 2))
    with torch.no_grad():
        for p in model.pos_encoding.parameters():
            p.zero_()
        model.pos_encoding.class_token.copy_(e)
        model.conv_proj.weight.zero_()
        model.conv_proj.bias.zero_()
        model.conv_proj.weight[:, 0, 1, 3, 3] = e
        first = model.blocks[0]
        for layer in (first.attn.project[0], first.mlp[3]):
            layer.weight.zero_()
            layer.bias.zero_()
        attn = model.blocks[1].attn
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        attn.qkv.weight[:dim] = 10 * torch.eye(dim)
        attn.qkv.weight[dim:2 * dim] = torch.eye(dim)
        attn.qkv.weight[2 * dim:] = torch.eye(dim)
        for pool in (attn.pool_k, attn.pool_v):
            pool.pool.weight.zero_()
            pool.pool.weight[:, 0, 1, 1, 1] = 1.0
    return model


def planted_clip() -> torch.Tensor:
    clip = torch.zeros(3, FRAMES, SIZE, SIZE)
    t, h, w = PLANTED
    clip[:, 2 * t, 4 * h, 4 * w] = 1.0
    return clip


def test_heat_map_video_peaks_where_the_planted_token_sits(tmp_path):
    video, heat, grid = render_clip(planted_model(), planted_clip(), SETTINGS, mean=0.45, std=0.225)
    assert grid == "4x8x8" and heat.shape == (FRAMES, SIZE, SIZE)
    write_mp4(video, tmp_path / "a.mp4", fps=SETTINGS.fps)
    frames = iio.imread(tmp_path / "a.mp4", extension=".mp4")
    assert frames.shape == (FRAMES, SIZE * UP, SIZE * UP, 3)  # every clip frame, upscaled
    grey = np.full(frames.shape[:3], 0.45 * 255)
    change = np.abs(frames.astype(float) - grey[..., None]).sum(-1)  # where the overlay departs from the grey clip
    # mean change per token block (2 frames x 4·UP x 4·UP pixels): the planted token's block stands out
    blocks = change.reshape(4, 2, 8, 4 * UP, 8, 4 * UP).mean(axis=(1, 3, 5))
    assert np.unravel_index(blocks.argmax(), blocks.shape) == PLANTED
    others = np.delete(blocks.ravel(), np.ravel_multi_index(PLANTED, blocks.shape))
    assert blocks[PLANTED] > 100 and others.max() < 0.2 * blocks[PLANTED]


def test_overlay_keeps_unattended_pixels_grey_and_colours_the_attended():
    grey = np.full((2, 4, 4), 100, np.uint8)
    heat = np.zeros((2, 4, 4))
    heat[1, 2, 3] = 5.0
    rgb = overlay(grey, heat, alpha=0.5, colormap="inferno", upscale=3)
    assert rgb.shape == (2, 12, 12, 3) and rgb.dtype == np.uint8
    assert (rgb[0] == 100).all() and (rgb[1, 6:9, 9:12] != 100).any()
    with pytest.raises(ValueError, match="alpha must lie in"):
        overlay(grey, heat, alpha=2.0)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """A real fine-tuning run (2 steps) of the fine-tuning tests' toy cohort: best.ckpt and its cohort."""
    from cinefm.train.finetune import run_finetune
    from train.finetune_cohort import build_cohort, toy_config, write_experiment

    tmp = tmp_path_factory.mktemp("attention")
    cohort = build_cohort(tmp / "cohort")
    config = toy_config(finetune={"lvef": {"max_steps": 2, "val_every_steps": 2}})
    exp = write_experiment(tmp / "experiments", "lvef_random_transfer_100", task="lvef", init="random",
                           mode="transfer", fraction=1.0, seed=0)
    out = tmp / "finetune" / "lvef_random_transfer_100"
    run_finetune(exp, config, splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv,
                 labels_csv=cohort.labels_csv, pretrain_ckpt=None, out_ckpt=out / "best.ckpt",
                 out_predictions=out / "predictions.csv", out_metrics=out / "metrics.csv", gpus=0, threads=1)
    return cohort, config, out / "best.ckpt"


def _attention_config(config: dict, **over) -> dict:
    section = {"experiments": None, "studies": 2, "views": ["4CH", "2CH", "SAX"], "blocks": [-1], "seed": 0, "fps": 4, "alpha": 0.6,
               "colormap": "inferno", "upscale": 4, **over}
    return {**config, "attention": section}


@pytest.mark.slow
def test_videos_of_a_finetuned_model_cover_the_chosen_test_studies(finetuned, tmp_path):
    cohort, config, ckpt = finetuned
    out = tmp_path / "attention" / "lvef_random_transfer_100"
    table = pd.read_csv(render_attention_videos(ckpt, cohort.splits_csv, cohort.studies_csv, out,
                                                _attention_config(config, studies=3, seed=2)),
                        dtype={"study_id": str})
    test_ids = set(cohort.splits.query("split == 'test' and stage == 'downstream'")["study_id"])
    assert table["study_id"].nunique() == 3 and set(table["study_id"]) <= test_ids
    assert list(table["view"]) == ["4CH", "2CH", "SAX"] * 3
    # the fixture drops 2CH of every 3rd study: those rows say so instead of vanishing
    lacks_2ch = table["study_id"].str[1:].astype(int) % 3 == 0
    assert lacks_2ch.any() and ((table["status"] == "absent") == (lacks_2ch & (table["view"] == "2CH"))).all()
    ok = table[table["status"] == "ok"]
    absent = table[table["status"] == "absent"]
    assert (absent["view"] == "2CH").all() and absent["reason"].str.contains("no 2CH series").all()
    sax = ok[ok["view"] == "SAX"]
    assert (sax["slice"] == 1).all()  # the middle of the fixture's 2-slice stacks
    assert (ok["token_grid"] == "2x2x2").all() and (ok["experiment"] == "lvef_random_transfer_100").all()
    for rec in ok.itertuples():
        frames = iio.imread(out / rec.mp4, extension=".mp4")
        assert frames.shape == (4, 64, 64, 3) == (rec.frames, rec.height, rec.width, 3)
        gif = iio.imread(out / rec.gif, extension=".gif")  # Pillow merges repeated frames into one
        assert gif.shape[1:3] == (16, 16) and 1 <= gif.shape[0] <= 4
        assert iio.imread(out / rec.poster).shape == (64, 64, 3)

    # a rerun choosing other studies leaves only its own files
    render_attention_videos(ckpt, cohort.splits_csv, cohort.studies_csv, out,
                            _attention_config(config, studies=1, views=["4CH"]))
    again = pd.read_csv(out / "videos.csv")
    assert again["study_id"].nunique() == 1
    assert len(list((out / "videos").glob("*.mp4"))) == int((again["status"] == "ok").sum())


@pytest.mark.slow
def test_cli_writes_what_the_rule_writes(finetuned, tmp_path):
    from cinefm.cli import main

    cohort, config, ckpt = finetuned
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(_attention_config(config, studies=1, views=["SAX"])))
    out = tmp_path / "attention" / "x"
    assert main(["attention", "--checkpoint", str(ckpt), "--splits", str(cohort.splits_csv), "--studies",
                 str(cohort.studies_csv), "--out", str(out), "--config", str(cfg), "--device", "cpu"]) == 0
    table = pd.read_csv(out / "videos.csv")
    assert list(table["status"]) == ["ok"] and (out / table["mp4"][0]).is_file()
    assert table["experiment"][0] == "lvef_random_transfer_100"  # the checkpoint's folder


def test_a_cnn_checkpoint_is_refused_with_the_reason(finetuned, tmp_path):
    cohort, config, ckpt = finetuned
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state["hyper_parameters"]["video"] = {"name": "r2plus1d_18", "weights": None, "frames": 4, "size": 16}
    bad = tmp_path / "best.ckpt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match="r2plus1d_18.*convolutional network"):
        render_attention_videos(bad, cohort.splits_csv, cohort.studies_csv, tmp_path / "out",
                                _attention_config(config))
