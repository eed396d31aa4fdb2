"""Experiment files with their own recipe (EchoNet-Dynamic): schema keys, checks, config overrides, optimizers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from cinefm.config import DEFAULT_CONFIG, ConfigError, load_config
from cinefm.train.experiments import ExperimentError, load_experiment, parse_experiment
from cinefm.train.optim import build_optimization
from cinefm.train.recipe import FinetuneRecipe, resolve_recipe

ECHO = Path(DEFAULT_CONFIG).parent / "experiments" / "echonet"
BASE = {"task": "lvef", "init": "random", "mode": "transfer", "fraction": 1.0, "seed": 0}


def test_echonet_files_carry_echonets_published_recipe():
    for encoder in ("perceiver_io", "r2plus1d_18"):
        exp = load_experiment(ECHO / f"echonet_{encoder}_lvef.yaml", ["hcm"])
        assert (exp.cohort, exp.split_source, exp.view, exp.encoder) == ("echonet", "release", "A4C", encoder)
        assert (exp.clip.frames, exp.clip.period, exp.clip.size) == (32, 2, 112)
        assert (exp.optimizer.name, exp.optimizer.lr, exp.optimizer.momentum, exp.optimizer.weight_decay) == \
            ("sgd", 1e-4, 0.9, 1e-4)
        assert (exp.scheduler.step_size, exp.scheduler.gamma, exp.batch_size, exp.epochs) == (15, 0.1, 20, 45)


def test_mri_experiments_keep_their_defaults():
    exp = load_experiment(Path(DEFAULT_CONFIG).parent / "experiments" / "lvef_clip_transfer_100.yaml", ["hcm"])
    assert (exp.cohort, exp.split_source, exp.encoder, exp.optimizer, exp.epochs) == ("cmr", "hash", None, None, None)


@pytest.mark.parametrize("doc, name, message", [
    ({**BASE, "cohort": "echonet", "split_source": "hash"}, "echonet_x_lvef", "split_source: release"),
    ({**BASE, "view": "4CH"}, "lvef_random_transfer_100", "external cohorts only"),
    ({**BASE, "clip": {"frames": 8, "size": 32, "period": 2}}, "lvef_random_transfer_100", "external cohorts only"),
    ({**BASE, "cohort": "echonet"}, "lvef_random_transfer_100", "must be named echonet_"),
    ({**BASE, "optimizer": {"name": "rmsprop", "lr": 0.1}}, "x", "optimizer.name"),
    ({**BASE, "epochs": 0}, "x", "epochs"),
])
def test_recipe_keys_that_cannot_be_honoured_fail_early(doc, name, message):
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(doc, name, f"{name}.yaml", ["hcm"])


def test_config_overrides_shrink_the_recipe_and_set_the_encoder():
    config = load_config(DEFAULT_CONFIG)
    config["external"]["echonet"]["finetune"]["overrides"] = {
        "epochs": 3, "batch_size": 2, "clip": {"frames": 8, "size": 32}, "optimizer": {"lr": 0.01}}
    config["external"]["echonet"]["finetune"]["weights"] = {"r2plus1d_18": "/w/r2plus1d.pth"}
    eff = resolve_recipe(ECHO / "echonet_r2plus1d_18_lvef.yaml", config)
    assert (eff.budget.epochs, eff.data.batch_size, eff.clip.frames, eff.clip.period, eff.clip.size) == \
        (3, 2, 8, 2, 32)
    assert (eff.optimizer.name, eff.optimizer.lr, eff.optimizer.momentum) == ("sgd", 0.01, 0.9)  # merged
    video = eff.video
    assert (video["name"], video["frames"], video["size"], video["weights"]) == ("r2plus1d_18", 8, 32, "/w/r2plus1d.pth")
    assert eff.data.batch_size == 2 and config["models"]["video"]["name"] == "mvit_small"  # not mutated
    assert (eff.budget.epochs, eff.budget.max_steps, eff.lr, eff.optimizer.weight_decay) == (3, -1, 0.01, 1e-4)


def test_sgd_with_step_schedule_decays_the_lr_every_step_size_epochs():
    config = load_config(DEFAULT_CONFIG)
    config["external"]["echonet"]["finetune"]["overrides"] = {}  # the file's own recipe, as paper.yaml
    recipe = resolve_recipe(ECHO / "echonet_perceiver_io_lvef.yaml", config)
    p = torch.nn.Parameter(torch.zeros(2))
    out = build_optimization([p], recipe.optimizer.as_dict(), recipe.scheduler.as_dict())
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.SGD) and out["lr_scheduler"]["interval"] == "epoch"
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 1e-4
    lrs = []
    for _ in range(31):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[14] == pytest.approx(1e-4) and lrs[15] == pytest.approx(1e-5) and lrs[30] == pytest.approx(1e-6)
    assert isinstance(build_optimization([p], {"name": "adamw", "lr": 1e-3}), torch.optim.AdamW)


def test_experiment_schema_lists_every_recipe_key():
    schema = yaml.safe_load((Path(DEFAULT_CONFIG).parents[1] / "workflow/schemas/experiment.schema.yaml").read_text())
    doc = yaml.safe_load((ECHO / "echonet_perceiver_io_lvef.yaml").read_text())
    assert set(doc) <= set(schema["properties"]) and "cohort" not in schema["required"]


def test_by_encoder_overrides_apply_over_the_common_ones_for_that_encoder_only():
    overrides = {"epochs": 5, "clip": {"frames": 8, "period": 4, "size": 32}, "optimizer": {"name": "adamw", "lr": 3e-4},
                 "by_encoder": {"r2plus1d_18": {"epochs": 9, "clip": {"size": 16}, "optimizer": {"lr": 1e-3}}}}
    config = load_config(DEFAULT_CONFIG)
    config["external"]["echonet"]["finetune"]["overrides"] = overrides
    r2p1d = resolve_recipe(ECHO / "echonet_r2plus1d_18_lvef.yaml", config)
    perceiver = resolve_recipe(ECHO / "echonet_perceiver_io_lvef.yaml", config)
    assert (r2p1d.budget.epochs, r2p1d.clip.size, r2p1d.clip.frames, r2p1d.optimizer.name, r2p1d.optimizer.lr) == \
        (9, 16, 8, "adamw", 1e-3)
    assert (perceiver.budget.epochs, perceiver.clip.size, perceiver.optimizer.lr) == (5, 32, 3e-4)


def test_recipe_layers_config_then_file_then_cohort_overrides_and_round_trips_through_yaml(tmp_path):
    config = load_config(DEFAULT_CONFIG)
    fin = config["finetune"]
    mri = resolve_recipe(Path(DEFAULT_CONFIG).parent / "experiments" / "disease_clip_transfer_100.yaml", config)
    # 1. the config's task section: nothing in the file overrides it
    assert (mri.lr, mri.optimizer.weight_decay, mri.budget.epochs) == (fin["disease"]["lr"],
                                                                       fin["disease"]["weight_decay"],
                                                                       fin["disease"]["epochs"])
    assert mri.tasks == tuple(config["labels"]["diseases"]) and mri.data.batch_size == fin["batch_size"]
    assert mri.data.augmix == config["data"]["augmix"] and mri.attention == "per_output"
    # 2. the file: EchoNet's recipe replaces the config's optimizer, schedule and budget
    config["external"]["echonet"]["finetune"]["overrides"] = {}
    echo = resolve_recipe(ECHO / "echonet_r2plus1d_18_lvef.yaml", config)
    assert (echo.optimizer.name, echo.lr, echo.scheduler.name, echo.budget.epochs, echo.budget.max_steps) == \
        ("sgd", 1e-4, "step", 45, -1)
    assert (echo.data.batch_size, echo.clip.period, echo.data.view, echo.data.augmix) == (20, 2, "A4C", None)
    # 3. the cohort's overrides, over the file
    config["external"]["echonet"]["finetune"]["overrides"] = {"epochs": 2, "optimizer": {"lr": 0.5}}
    small = resolve_recipe(ECHO / "echonet_r2plus1d_18_lvef.yaml", config)
    assert (small.budget.epochs, small.lr, small.optimizer.name) == (2, 0.5, "sgd")
    # plain data: the YAML a run logs reads back to the same recipe
    small.to_yaml(tmp_path / "hparams.yaml")
    assert FinetuneRecipe.from_yaml(tmp_path / "hparams.yaml") == small
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['colour'\]"):
        FinetuneRecipe.from_dict({**small.to_dict(), "colour": "red"})


def test_unset_task_keys_take_the_schema_defaults_of_the_method():
    config = load_config(DEFAULT_CONFIG)
    for key in ("schedule", "warmup_fraction", "attention", "view_loss_weight", "sax_fraction", "augment"):
        config["finetune"]["disease"].pop(key)
    config["finetune"].pop("augment")
    recipe = resolve_recipe(Path(DEFAULT_CONFIG).parent / "experiments" / "disease_clip_transfer_100.yaml", config)
    assert (recipe.scheduler.name, recipe.scheduler.warmup_fraction, recipe.attention, recipe.view_loss_weight,
            recipe.data.sax_fraction, recipe.data.augmix) == ("none", 0.0, "per_output", 0.0, 1.0, None)


def test_the_sections_the_finetune_rule_passes_resolve_the_same_recipe_as_the_whole_config():
    config = load_config(DEFAULT_CONFIG)
    echo = config["external"]["echonet"]["finetune"]
    subset = {**{k: config[k] for k in ("labels", "splits", "data", "models")},  # common.smk finetune_config()
              "pretrain": {"run": config["pretrain"]["run"]},
              "finetune": {k: v for k, v in config["finetune"].items() if k not in ("select", "experiments")},
              "external": {"echonet": {"finetune": {"weights": echo["weights"], "overrides": echo["overrides"]}}}}
    for path in (Path(DEFAULT_CONFIG).parent / "experiments" / "disease_kinetics_transfer_100.yaml",
                 ECHO / "echonet_r2plus1d_18_lvef.yaml"):
        assert resolve_recipe(path, subset) == resolve_recipe(path, config)
    subset["finetune"]["lvef"]["lr"] = "fast"
    with pytest.raises(ConfigError, match=r"config.finetune.lvef.lr: 'fast' is not of type 'number'"):
        resolve_recipe(ECHO / "echonet_r2plus1d_18_lvef.yaml", subset)


def test_per_disease_run_of_a_diseases_file_is_a_one_output_model_named_for_its_disease():
    config = load_config(DEFAULT_CONFIG)
    path = DEFAULT_CONFIG.parent / "experiments" / "disease_clip_finetune_10.yaml"
    whole = resolve_recipe(path, config)
    one = resolve_recipe(path, config, disease="rv_dilation")
    assert whole.tasks == tuple(config["labels"]["diseases"]) and whole.experiment == "disease_clip_finetune_10"
    assert (one.experiment, one.task, one.tasks) == ("rv_dilation_clip_finetune_10", "rv_dilation", ("rv_dilation",))
    # everything but the identity and the outputs is the file's multi-label recipe
    assert (one.init, one.mode, one.fraction, one.optimizer, one.budget) == (
        whole.init, whole.mode, whole.fraction, whole.optimizer, whole.budget)
    with pytest.raises(ExperimentError, match="'heart_failure' is not one of config labels.diseases"):
        resolve_recipe(path, config, disease="heart_failure")
    lvef = DEFAULT_CONFIG.parent / "experiments" / "lvef_clip_finetune_10.yaml"
    with pytest.raises(ExperimentError, match="only a 'task: diseases' file has one run per disease"):
        resolve_recipe(lvef, config, disease="hcm")
