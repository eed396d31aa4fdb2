import copy

import pytest
import yaml

from cinefm.config import (
    DEFAULT_CONFIG,
    REPO_ROOT,
    ConfigError,
    deep_merge,
    load_config,
    validate_config,
)


def test_default_and_paper_configs_are_valid():
    load_config(DEFAULT_CONFIG)
    load_config(REPO_ROOT / "config" / "paper.yaml")


def _sub(d: dict, expected: dict) -> bool:
    return {k: d.get(k) for k in expected} == expected


def test_paper_config_holds_the_methods_numbers():
    paper = load_config(REPO_ROOT / "config" / "paper.yaml")
    pre = paper["pretrain"]
    assert (pre["batch_size"], pre["epochs"], pre["lr"]) == (32, 600, 4.8e-5)
    assert (pre["weight_decay"], pre["eps"], pre["lr_milestones"], pre["lr_gamma"]) == (1e-6, 1e-8, [300], 0.1)
    assert (pre["checkpoint_every"], pre["flood_level"], pre["sentences_per_step"]) == (10, 0.05, 5)
    assert _sub(paper["models"]["video"], {"name": "mvit_v1_b", "frames": 16, "size": 224})
    assert paper["models"]["text"]["freeze_layers"] == 6
    assert paper["models"]["text"]["layers"] == 12 and paper["models"]["text"]["hidden"] == 768
    assert paper["models"]["projection_dim"] == 512
    assert paper["splits"]["pretrain_fraction"] == 0.75
    assert paper["splits"]["downstream"] == {"train": 0.5, "val": 0.25, "test": 0.25}
    assert _sub(paper["finetune"]["lvef"], {"lr": 1e-4, "weight_decay": 0.01, "max_steps": 100000, "sax_fraction": 0.5})
    assert _sub(paper["finetune"]["disease"], {"weight_decay": 5e-4, "epochs": 24, "attention": "per_disease",
                                               "sax_fraction": 1.0})
    assert paper["finetune"]["augment"] is True  # the method fine-tunes with AugMix
    assert paper["labels"]["heart_failure_lvef"] == 40


def test_unknown_key_is_named_in_the_error():
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["ingest"]["shardz"] = 3
    with pytest.raises(ConfigError, match=r"config\.ingest: .*'shardz'"):
        validate_config(cfg)


def test_wrong_value_is_named_in_the_error():
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["pretrain"]["lr"] = -1
    with pytest.raises(ConfigError, match=r"config\.pretrain\.lr: -1"):
        validate_config(cfg)


def test_deep_merge_overrides_nested_keys_without_touching_inputs():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    before = copy.deepcopy(base)
    out = deep_merge(base, {"a": {"c": 5}})
    assert out == {"a": {"b": 1, "c": 5}, "d": 3}
    assert base == before


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_differences_name_every_leaf_that_differs_or_is_set_on_one_side_only():
    from cinefm.config import ABSENT, differences, flatten

    assert flatten({"a": {"b": 1, "c": {}}, "d": [1, 2]}) == {"a.b": 1, "d": [1, 2]}
    ours = {"a": {"b": 1, "c": 2, "e": None}}
    reference = {"a": {"b": 1, "c": 3, "f": "x"}}
    assert differences(ours, reference) == [("a.c", 2, 3), ("a.e", None, ABSENT), ("a.f", ABSENT, "x")]
    assert differences(reference, reference) == []
