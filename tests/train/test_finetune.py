"""Fine-tuning on a tiny real cohort: what trains, what is learned, what is written, what fails early."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from cinefm.config import ConfigError
from cinefm.data.datamodules import StudyDataModule, close_readers
from cinefm.train.experiments import ExperimentError
from cinefm.train.finetune import prepare, run_finetune
from cinefm.train.finetune_module import PREDICTION_COLUMNS, FinetuneModule, predict
from cinefm.train.initialization import init_weights, plan_init
from cinefm.train.objectives import masked_bce_with_logits, pos_weights
from cinefm.train.optim import OptimizerSpec, SchedulerSpec
from cinefm.train.recipe import FinetuneRecipe, resolve_recipe

from .finetune_cohort import (
    build_cohort,
    recipe_for,
    toy_config,
    write_clip_checkpoint,
    write_experiment,
)

VIEW_COLUMNS = ["attn_4CH", "attn_3CH", "attn_2CH", "attn_SAX"]


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    return build_cohort(tmp_path_factory.mktemp("finetune_cohort"))


def _run(cohort, experiment: Path, out: Path, config: dict, pretrain_ckpt=None) -> dict:
    paths = {"ckpt": out / "best.ckpt", "predictions": out / "predictions.csv", "metrics": out / "metrics.csv"}
    run_finetune(experiment, config, splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv,
                 labels_csv=cohort.labels_csv, pretrain_ckpt=pretrain_ckpt, out_ckpt=paths["ckpt"],
                 out_predictions=paths["predictions"], out_metrics=paths["metrics"], gpus=0, threads=1)
    return {**paths, "config": config, "experiment": experiment,
            "predictions_df": pd.read_csv(paths["predictions"], dtype={"study_id": str, "patient_id": str}),
            "metrics_df": pd.read_csv(paths["metrics"])}


@pytest.fixture(scope="session")
def lvef_run(cohort, tmp_path_factory):
    """LVEF regression, random init, transfer mode: 40 steps, validation every 10."""
    tmp = tmp_path_factory.mktemp("lvef_run")
    exp = write_experiment(tmp / "experiments", "lvef_random_transfer_100", task="lvef", init="random",
                           mode="transfer", fraction=1.0, seed=0)
    config = toy_config(finetune={"lvef": {"max_steps": 40}})
    return _run(cohort, exp, tmp / "out", config)


@pytest.fixture(scope="session")
def disease_run(cohort, tmp_path_factory):
    """All diseases (hcm, dcm) in one model from a contrastive checkpoint, finetune mode, per-disease attention."""
    tmp = tmp_path_factory.mktemp("disease_run")
    config = toy_config()
    config["finetune"]["disease"]["attention"] = "per_disease"
    ckpt = tmp / "last.ckpt"
    clip_state = write_clip_checkpoint(ckpt, config)
    exp = write_experiment(tmp / "experiments", "disease_clip_finetune_100", task="diseases", init="clip",
                           mode="finetune", fraction=1.0, seed=1)
    return {**_run(cohort, exp, tmp / "out", config, pretrain_ckpt=ckpt), "clip_state": clip_state}


def _downstream(cohort, split: str) -> pd.DataFrame:
    s = cohort.splits
    return s[(s["stage"] == "downstream") & (s["split"] == split)]


# --------------------------------------------------------------------------- training modes


def _module(config, mode: str) -> FinetuneModule:
    recipe = recipe_for(config, "lvef", mode=mode, optimizer=OptimizerSpec("adamw", 1e-2, weight_decay=0.01),
                        scheduler=SchedulerSpec())
    return FinetuneModule(recipe, target_mean=45.0, target_std=15.0)


def _changed_after_steps(module, loader, steps: int = 2) -> set[str]:
    before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, limit_val_batches=0,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, train_dataloaders=loader)
    after = module.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_finetune_mode_changes_only_the_last_encoder_layer_and_the_head(cohort):
    config = toy_config()
    dm = StudyDataModule.from_recipe(recipe_for(config, "lvef"), splits_csv=cohort.splits_csv,
                                     studies_csv=cohort.studies_csv, labels_csv=cohort.labels_csv, num_workers=0)
    dm.setup("fit")
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    module = _module(config, "finetune")
    trained = {k for k, p in module.named_parameters()}
    changed = _changed_after_steps(module, dm.train_dataloader())
    head_like = {k for k in trained if k.split(".")[1] in ("video_proj", "mil", "head")}
    assert changed == head_like  # every projection/MIL/head tensor moved, nothing else
    assert not any(k.startswith("model.video.") for k in changed)
    assert module.model.video.training is False  # frozen trunk stays in eval mode

    transfer = _module(config, "transfer")
    changed = _changed_after_steps(transfer, dm.train_dataloader())
    assert any(k.startswith("model.video.") for k in changed)  # the contrast: transfer trains the trunk
    close_readers(dm)


class _LearningRates(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_schedule_warms_up_then_decays_to_zero_or_stays_constant(cohort, schedule):
    config = toy_config()
    dm = StudyDataModule.from_recipe(recipe_for(config, "lvef"), splits_csv=cohort.splits_csv,
                                     studies_csv=cohort.studies_csv, labels_csv=cohort.labels_csv, num_workers=0)
    dm.setup("fit")
    torch.set_num_threads(1)
    module = FinetuneModule(recipe_for(config, "lvef", mode="finetune",
                                       optimizer=OptimizerSpec("adamw", 1e-2, weight_decay=0.01),
                                       scheduler=SchedulerSpec("none" if schedule == "constant" else schedule,
                                                               warmup_fraction=0.25)))
    seen = _LearningRates()
    trainer = L.Trainer(max_steps=8, logger=False, enable_checkpointing=False, limit_val_batches=0, callbacks=[seen],
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, train_dataloaders=dm.train_dataloader())
    close_readers(dm)
    assert len(seen.lrs) == 8
    if schedule == "constant":
        assert seen.lrs == [1e-2] * 8
    else:  # 2 warm-up steps (0.5, 1.0 x lr), then half a cosine towards 0 at step 8
        assert seen.lrs[:3] == pytest.approx([5e-3, 1e-2, 1e-2])
        assert all(a > b for a, b in zip(seen.lrs[2:], seen.lrs[3:], strict=False))
        assert seen.lrs[-1] < 0.1 * 1e-2


# --------------------------------------------------------------------------- learning + selection


def test_lvef_toy_task_beats_predicting_the_training_mean(lvef_run):
    best = lvef_run["metrics_df"].query("stage == 'best'").set_index(["split", "metric"])["value"]
    for split in ("val", "test"):
        assert best[(split, "mae")] < 0.5 * best[(split, "mae_train_mean")], split
    # the reference is really the training mean: recompute it from the tables
    p = lvef_run["predictions_df"]
    val = p[p["split"] == "val"]
    assert best[("val", "mae")] == pytest.approx((val["score"] - val["target"]).abs().mean(), rel=1e-4)


def test_best_checkpoint_is_chosen_on_validation_and_reproduces_the_predictions(lvef_run, cohort):
    m = lvef_run["metrics_df"]
    history = m.query("stage == 'history' and metric == 'mae'")
    assert len(history) == 4 and history["split"].eq("val").all()  # 40 steps, validation every 10
    best_step = int(history.loc[history["value"].idxmin(), "step"])
    assert (m.query("stage == 'best'")["step"] == best_step).all()
    ckpt = torch.load(lvef_run["ckpt"], map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == best_step
    assert ckpt["cinefm"]["run"]["experiment"] == "lvef_random_transfer_100"

    module = FinetuneModule.load_from_checkpoint(lvef_run["ckpt"], map_location="cpu")
    dm = StudyDataModule.from_recipe(resolve_recipe(lvef_run["experiment"], lvef_run["config"]),
                                     splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv,
                                     labels_csv=cohort.labels_csv, num_workers=0)
    dm.setup("test")
    again = predict(module, dm.dataloader("test"), "test").set_index("study_id")
    close_readers(dm)
    written = lvef_run["predictions_df"].query("split == 'test'").set_index("study_id")
    np.testing.assert_allclose(again.loc[written.index, "score"], written["score"], rtol=1e-5)


def test_the_run_logs_the_recipe_it_resolved_from_the_config_and_the_file(lvef_run):
    logged = FinetuneRecipe.from_yaml(lvef_run["ckpt"].parent / "hparams.yaml")
    assert logged == resolve_recipe(lvef_run["experiment"], lvef_run["config"])
    # the config's task section reached the run once: budget, optimizer and schedule as configured
    lvef = lvef_run["config"]["finetune"]["lvef"]
    assert (logged.budget.max_steps, logged.budget.val_every_steps) == (40, lvef["val_every_steps"])
    assert (logged.optimizer.name, logged.lr, logged.optimizer.weight_decay) == ("adamw", lvef["lr"],
                                                                                 lvef["weight_decay"])
    assert logged.scheduler.name == {"constant": "none"}.get(lvef["schedule"], lvef["schedule"])
    ckpt = torch.load(lvef_run["ckpt"], map_location="cpu", weights_only=False)
    assert ckpt["hyper_parameters"]["optimizer"]["lr"] == lvef["lr"] and "lr" not in ckpt["hyper_parameters"]
    module = FinetuneModule.load_from_checkpoint(lvef_run["ckpt"], map_location="cpu")
    assert module.recipe == dataclasses.replace(logged, video={**logged.video, "weights": None})


# --------------------------------------------------------------------------- predictions.csv


def test_predictions_have_one_row_per_val_and_test_study_with_view_attention(lvef_run, cohort):
    p = lvef_run["predictions_df"]
    assert list(p.columns) == PREDICTION_COLUMNS + VIEW_COLUMNS
    for split in ("val", "test"):
        assert sorted(p.loc[p["split"] == split, "study_id"]) == sorted(_downstream(cohort, split)["study_id"])
    assert set(p["split"]) == {"val", "test"} and set(p["task"]) == {"lvef"}
    assert (p["experiment"].eq("lvef_random_transfer_100").all() and p["cohort"].eq("cmr").all()
            and p["init"].eq("random").all() and p["mode"].eq("transfer").all() and p["fraction"].eq(1.0).all())
    truth = cohort.labels.set_index("study_id")["lvef"].astype(float)
    np.testing.assert_allclose(p["target"], truth.loc[p["study_id"]].to_numpy(), rtol=1e-6)
    attn = p[VIEW_COLUMNS]
    np.testing.assert_allclose(attn.sum(axis=1, skipna=True), 1.0, atol=1e-5)
    index = p["study_id"].str[1:].astype(int)
    assert attn["attn_2CH"].isna().eq(index % 3 == 0).all()  # the fixture drops 2CH of every 3rd study
    assert attn["attn_3CH"].isna().eq(index % 4 == 0).all()
    assert (attn[["attn_4CH", "attn_SAX"]] > 0).all().all()


# --------------------------------------------------------------------------- diseases, clip init


def test_disease_model_from_the_contrastive_checkpoint(disease_run, cohort):
    ckpt = torch.load(disease_run["ckpt"], map_location="cpu", weights_only=False)["state_dict"]
    clip = disease_run["clip_state"]
    trunk = [k for k in clip if k.startswith("model.video.")]
    assert trunk and all(torch.equal(ckpt[k], clip[k]) for k in trunk)  # loaded, then frozen
    assert not torch.equal(ckpt["model.video_proj.weight"], clip["model.video_proj.weight"])  # trained
    assert {"model.mil.0.norm.weight", "model.mil.1.norm.weight"} <= set(ckpt)  # a MIL per disease, with
    # the LayerNorm on view embeddings of classification

    p = disease_run["predictions_df"]
    studies = pd.concat([_downstream(cohort, "val"), _downstream(cohort, "test")])["study_id"]
    assert len(p) == 2 * len(studies) and set(p["task"]) == {"hcm", "dcm"}
    assert p.groupby("study_id").size().eq(2).all()
    assert p["score"].between(0, 1).all()
    labels = cohort.labels.set_index("study_id")
    hcm = p[p["task"] == "hcm"].set_index("study_id")
    unknown = labels.loc[hcm.index, "hcm"].eq("")
    assert unknown.any() and hcm["target"].isna().eq(unknown).all()  # uncertain labels stay empty
    # each disease's attention over the study's views sums to 1 (the fixture's views are identical
    # clips, so the shares are uniform; tests/models/test_heads.py checks that they differ per disease)
    attn = p.set_index(["study_id", "task"])[VIEW_COLUMNS]
    np.testing.assert_allclose(attn.sum(axis=1, skipna=True), 1.0, atol=1e-5)


def test_pos_weight_is_negatives_over_positives_of_the_training_split(disease_run, cohort):
    m = disease_run["metrics_df"].query("stage == 'data'").set_index("metric")["value"]
    train = cohort.labels.merge(_downstream(cohort, "train")[["study_id"]])
    for disease in ("hcm", "dcm"):
        known = pd.to_numeric(train[disease].replace("", np.nan)).dropna()
        assert m[f"pos_weight_{disease}"] == pytest.approx((known == 0).sum() / (known == 1).sum())
        assert m[f"n_known_{disease}"] == len(known)


def test_masked_bce_leaves_out_unknown_labels_and_weights_positives():
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5], [-0.7, 1.5]])
    target = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [float("nan"), 0.0]])
    w = torch.tensor([3.0, 0.5])
    expected = []
    for i in range(3):
        for j in range(2):
            y = float(target[i, j])
            if math.isnan(y):
                continue
            p = torch.sigmoid(logits[i, j])
            expected.append(-(w[j] * y * torch.log(p) + (1 - y) * torch.log(1 - p)))
    assert masked_bce_with_logits(logits, target, w) == pytest.approx(float(torch.stack(expected).mean()), rel=1e-5)
    assert masked_bce_with_logits(logits, torch.full_like(target, float("nan")), w) == 0.0


@pytest.mark.filterwarnings("ignore:.*reference is not registered on the model")
def test_view_loss_labels_every_real_view_with_its_study_and_adds_to_the_study_loss():
    config = toy_config()
    video = config["models"]["video"]

    def module(weight: float) -> FinetuneModule:
        torch.manual_seed(0)
        recipe = recipe_for(config, "diseases", projection_dim=16, mil_hidden=8, attention="per_output",
                            view_loss_weight=weight, optimizer=OptimizerSpec("adamw", 1e-3))
        return FinetuneModule(recipe, pos_weight=[2.0, 0.5])

    torch.manual_seed(1)
    batch = {"video": torch.randn(2, 3, 3, video["frames"], video["size"], video["size"]),
             "mask": torch.tensor([[True, True, False], [True, False, False]]),
             "target": torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "study_id": ["a", "b"]}
    plain, weighted = module(0.0), module(0.5)
    with torch.no_grad():
        out = weighted.model(batch["video"], batch["mask"])
        view_bkj = weighted.model.view_logits(out.views)
        # by hand: views (0,0), (0,1) carry study a's labels, view (1,0) study b's; padding is left out
        logits = torch.stack([view_bkj[0, 0], view_bkj[0, 1], view_bkj[1, 0]])
        target = torch.stack([batch["target"][0], batch["target"][0], batch["target"][1]])
        expected = masked_bce_with_logits(logits, target, torch.tensor([2.0, 0.5]))
        view_loss = weighted.view_loss(out.views, batch["mask"], batch["target"])
        assert float(view_loss) == pytest.approx(float(expected), rel=1e-6)
        study_loss = plain.training_step(batch, 0)
        assert float(weighted.training_step(batch, 0)) == pytest.approx(float(study_loss + 0.5 * view_loss),
                                                                       rel=1e-5)
    assert recipe_for(toy_config(finetune={"disease": {"view_loss_weight": 0.25}}),
                      "diseases").view_loss_weight == 0.25
    config["finetune"]["disease"].pop("view_loss_weight", None)  # unset: the method's 0
    assert recipe_for(config, "diseases").view_loss_weight == 0.0


def test_pos_weights_balance_classes_and_note_a_missing_class():
    targets = np.array([[1, 0], [0, 0], [0, np.nan], [1, 0]], dtype=float)
    weights, notes = pos_weights(targets, ["a", "b"])
    assert weights[0] == pytest.approx(1.0) and weights[1] == 1.0
    assert list(notes) == ["b"] and "0 positive" in notes["b"]
    weights, _ = pos_weights(np.array([[1], [0], [0], [0]], dtype=float), ["c"])
    assert weights[0] == pytest.approx(3.0)


# --------------------------------------------------------------------------- fails before training


def test_task_with_all_labels_unknown_fails_before_training(cohort, tmp_path):
    labels = cohort.labels.copy()
    labels["hcm"] = ""
    labels_csv = tmp_path / "labels.csv"
    labels.to_csv(labels_csv, index=False)
    exp = write_experiment(tmp_path / "exp", "hcm_random_transfer_100", task="hcm", init="random",
                           mode="transfer", fraction=1.0, seed=0)
    out = tmp_path / "out"
    with pytest.raises(ExperimentError, match=r"hcm_random_transfer_100: task 'hcm' has no known label"):
        run_finetune(exp, toy_config(), splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv,
                     labels_csv=labels_csv, pretrain_ckpt=None, out_ckpt=out / "best.ckpt",
                     out_predictions=out / "predictions.csv", out_metrics=out / "metrics.csv", threads=1)
    assert not out.exists()  # nothing was trained or written


def test_bad_experiment_file_fails_before_training(cohort, tmp_path):
    exp = write_experiment(tmp_path / "exp", "lvef_random_transfer_100", task="lvef", init="random",
                           mode="transfer", fraction=1.0, seed=0, lr=0.1)
    out = tmp_path / "out"
    with pytest.raises(ExperimentError, match=r"lvef_random_transfer_100\.yaml: unknown key\(s\) \['lr'\]"):
        run_finetune(exp, toy_config(), splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv,
                     labels_csv=cohort.labels_csv, pretrain_ckpt=None, out_ckpt=out / "best.ckpt",
                     out_predictions=out / "predictions.csv", out_metrics=out / "metrics.csv")
    assert not out.exists()


def test_clip_init_without_the_pretraining_checkpoint_fails_early(tmp_path):
    exp = write_experiment(tmp_path, "lvef_clip_finetune_100", task="lvef", init="clip",
                                           mode="finetune", fraction=1.0, seed=0)
    with pytest.raises(ExperimentError, match=r"init 'clip' needs the pre-training checkpoint.*pretrain rule"):
        plan_init(resolve_recipe(exp, toy_config()), tmp_path / "pretrain" / "last.ckpt")


def test_clip_init_with_a_checkpoint_of_another_clip_layout_fails_early(tmp_path):
    exp = write_experiment(tmp_path, "lvef_clip_finetune_100", task="lvef", init="clip",
                                           mode="finetune", fraction=1.0, seed=0)
    ckpt = tmp_path / "last.ckpt"
    write_clip_checkpoint(ckpt, toy_config(data={"motion_gain": 2.0}))
    assert plan_init(resolve_recipe(exp, toy_config(data={"motion_gain": 2.0})), ckpt).effective == "clip"
    with pytest.raises(ConfigError, match=r"laid out differently \(data.motion_gain: checkpoint 2.0, now 0.0\)"):
        plan_init(resolve_recipe(exp, toy_config(data={"motion_gain": 0.0})), ckpt)
    torch.save({"state_dict": {}}, ckpt)  # a plain state dict records no layout: nothing to check
    assert plan_init(resolve_recipe(exp, toy_config(data={"motion_gain": 0.0})), ckpt).effective == "clip"


def test_kinetics_init_needs_weights_unless_the_demo_allows_a_random_stand_in(tmp_path):
    exp = write_experiment(tmp_path, "lvef_kinetics_transfer_100", task="lvef", init="kinetics",
                                           mode="transfer", fraction=1.0, seed=0)
    with pytest.raises(ConfigError, match=r"models\.video\.weights is null.*allow_random_baseline"):
        plan_init(resolve_recipe(exp, toy_config()), None)
    plan = plan_init(resolve_recipe(exp, toy_config(finetune={"allow_random_baseline": True})), None)
    assert plan.effective == "random" and "initialised at random" in plan.note

    # with a weights file, the trunk starts from exactly those tensors
    config = toy_config()
    from cinefm.models.video import build_video_encoder

    torch.manual_seed(11)
    trunk = build_video_encoder(**config["models"]["video"])
    torch.save(trunk.state_dict(), tmp_path / "kinetics.pth")
    config["models"]["video"]["weights"] = str(tmp_path / "kinetics.pth")
    plan = plan_init(resolve_recipe(exp, config), None)
    assert plan.effective == "kinetics"
    module = _module(config, "transfer")
    assert module.hparams.video["weights"] is None  # the path never enters the checkpoint
    init_weights(module, plan, config["models"]["video"])
    for k, v in trunk.state_dict().items():
        assert torch.equal(module.model.video.state_dict()[k], v), k


def test_missing_kinetics_weights_file_is_named(tmp_path):
    exp = write_experiment(tmp_path, "lvef_kinetics_transfer_100", task="lvef", init="kinetics",
                                           mode="transfer", fraction=1.0, seed=0)
    config = toy_config()
    config["models"]["video"]["weights"] = str(tmp_path / "absent.pth")
    plan = plan_init(resolve_recipe(exp, config), None)
    with pytest.raises(ConfigError, match=r"models\.video\.weights: file not found: .*absent\.pth"):
        init_weights(_module(config, "transfer"), plan, config["models"]["video"])


@pytest.fixture(autouse=True, scope="module")
def _cleanup_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_fraction_trains_on_a_seeded_nested_subset(cohort, tmp_path):
    config = toy_config()
    sizes = {}
    for fraction in (0.25, 0.5):
        exp = write_experiment(tmp_path, f"lvef_random_transfer_{int(fraction * 100)}", task="lvef", init="random",
                               mode="transfer", fraction=fraction, seed=0)
        prep = prepare(exp, config, splits_csv=cohort.splits_csv, studies_csv=cohort.studies_csv,
                       labels_csv=cohort.labels_csv, pretrain_ckpt=None)
        sizes[fraction] = set(prep.datamodule.datasets["train"].studies)
        close_readers(prep.datamodule)
        rows = prep.info.table().set_index("metric")
        assert rows.loc["n_train_patients", "value"] == round(fraction * 28)
        assert (rows["fraction_seed"] == config["splits"]["fraction_seed"]).all()
    assert sizes[0.25] < sizes[0.5]
