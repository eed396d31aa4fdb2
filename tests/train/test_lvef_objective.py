"""The LVEF objective as the method and EchoNet-Dynamic name it: formulas re-derived, recipe plumbing."""

import dataclasses
import math

import pytest
import torch

from cinefm.config import PAPER_CONFIG, REPO_ROOT, load_config
from cinefm.train.finetune_module import FinetuneModule
from cinefm.train.objectives import huber_on_z, regression_loss, selection_metric
from cinefm.train.recipe import resolve_recipe

SMALL_VIDEO = {"name": "mvit_small", "frames": 8, "size": 64, "weights": None, "stochastic_depth": 0.0,
               "mvit_small": {"dims": [16, 32], "heads": [1, 2], "depths": [1, 2], "kv_stride": 4}}


def _huber_by_hand(pred, target, delta):
    """Huber (1964): ½d² for |d| ≤ δ, δ(|d| − ½δ) beyond; the mean over the known targets."""
    terms = []
    for p, y in zip(pred, target, strict=True):
        if math.isnan(y):
            continue
        d = abs(p - y)
        terms.append(0.5 * d * d if d <= delta else delta * (d - 0.5 * delta))
    return sum(terms) / len(terms)


def test_huber_on_lvef_in_percentage_points_with_pytorchs_default_delta():
    pred = torch.tensor([55.0, 30.2, 61.0, 40.0], dtype=torch.float64)
    target = torch.tensor([54.5, 45.0, float("nan"), 40.8], dtype=torch.float64)
    got = regression_loss(pred, target, loss="huber", scale="percent", mean=50.0, std=10.0, delta=1.0)
    assert got.item() == pytest.approx(_huber_by_hand(pred.tolist(), target.tolist(), 1.0), rel=1e-12)
    # a 14.8-point miss is in the linear part: 1 * (14.8 - 0.5); z-scored (SD 10) it would be quadratic
    assert got.item() == pytest.approx((0.5 * 0.25 + (14.8 - 0.5) + 0.5 * 0.64) / 3, rel=1e-9)


def test_zscore_variant_and_mse():
    pred_z = torch.tensor([0.1, -1.2, 0.4], dtype=torch.float64)
    target = torch.tensor([52.0, 20.0, 58.0], dtype=torch.float64)
    z = [(y - 50.0) / 10.0 for y in target.tolist()]
    zs = regression_loss(pred_z, target, loss="huber", scale="zscore", mean=50.0, std=10.0, delta=1.0)
    assert zs.item() == pytest.approx(_huber_by_hand(pred_z.tolist(), z, 1.0), rel=1e-12)
    torch.testing.assert_close(zs, huber_on_z(pred_z, target, 50.0, 10.0, 1.0))
    pct = torch.tensor([49.0, 35.0, 60.0], dtype=torch.float64)
    mse = regression_loss(pct, target, loss="mse", scale="percent", mean=50.0, std=10.0)
    assert mse.item() == pytest.approx(((49 - 52) ** 2 + (35 - 20) ** 2 + (60 - 58) ** 2) / 3, rel=1e-12)
    with pytest.raises(ValueError, match="target scale"):
        regression_loss(pct, target, loss="l1", scale="percent", mean=0.0, std=1.0)


def _paper_recipe(name):
    return resolve_recipe(REPO_ROOT / "config" / "experiments" / name, load_config(PAPER_CONFIG))


def test_paper_recipe_trains_huber_in_percent_with_the_output_bias_at_the_training_mean():
    recipe = _paper_recipe("lvef_clip_transfer_100.yaml")
    assert (recipe.regression_loss, recipe.target_scale, recipe.huber_delta) == ("huber", "percent", 1.0)
    assert (recipe.trunk_chunk, recipe.trunk_checkpoint, recipe.select_by) == (8, True, "metric")
    module = FinetuneModule(dataclasses.replace(recipe, video=SMALL_VIDEO), target_mean=57.5, target_std=9.0)
    assert module.model.head.bias.item() == pytest.approx(57.5)
    logits = torch.tensor([[56.0], [70.0]])
    torch.testing.assert_close(module.scores(logits), logits)  # the output is LVEF in percent
    target = torch.tensor([[57.0], [40.0]])
    assert module.loss(logits, target).item() == pytest.approx(_huber_by_hand([56.0, 70.0], [57.0, 40.0], 1.0))


def test_echonet_recipe_names_mse_in_percent_and_selection_by_validation_loss():
    recipe = _paper_recipe("echonet/echonet_r2plus1d_18_lvef.yaml")
    assert (recipe.regression_loss, recipe.target_scale, recipe.select_by) == ("mse", "percent", "loss")
    assert selection_metric(recipe.kind, None, recipe.select_by) == ("val/loss", "min")
    module = FinetuneModule(dataclasses.replace(recipe, video=SMALL_VIDEO), target_mean=55.7, target_std=12.0)
    assert module.model.head.bias.item() == pytest.approx(55.7)  # EchoNet: model.fc.bias.data[0] = mean EF
    logits, target = torch.tensor([[50.0], [60.0]]), torch.tensor([[53.0], [64.0]])
    assert module.loss(logits, target).item() == pytest.approx((9 + 16) / 2)


def test_echonet_final_predictions_average_the_output_of_every_clip():
    recipe = _paper_recipe("echonet/echonet_r2plus1d_18_lvef.yaml")
    assert (recipe.data.pad, recipe.data.normalization, recipe.data.test_clips) == (12, "dataset", "all")
    assert recipe.init == "kinetics" and recipe.video["weights"].endswith("r2plus1d_18-91a641e6.pth")
    torch.manual_seed(0)
    module = FinetuneModule(dataclasses.replace(recipe, video=SMALL_VIDEO), target_mean=55.0, target_std=10.0).eval()
    video = torch.randn(2, 3, 3, 8, 64, 64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    batch = {"video": video, "mask": mask, "target": torch.tensor([[50.0], [60.0]]), "views": [["A4C"] * 3] * 2,
             "study_id": ["a", "b"], "patient_id": ["p", "q"]}
    with torch.no_grad():
        rows = module.predict_step(batch, 0)
        single = [[module.model(video[i, k:k + 1][None]).logits.item() for k in range(3) if mask[i, k]]
                  for i in range(2)]
    assert [r["score"] for r in rows] == pytest.approx([sum(s) / len(s) for s in single], rel=1e-5)
    assert rows[1]["attn_A4C"] == pytest.approx(1.0)
