"""Experiment files: schema, names, the committed grid, and the DAG refusing a bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cinefm.config import DEFAULT_CONFIG, REPO_ROOT, load_config
from cinefm.train.experiments import (
    ExperimentError,
    expected_name,
    experiment_paths,
    fraction_label,
    load_experiment,
)

from .finetune_cohort import write_experiment

DISEASES = ["hcm", "dcm", "prior_mi"]
GOOD = {"task": "lvef", "init": "clip", "mode": "transfer", "fraction": 1.0, "seed": 0}


def test_unknown_key_is_named_with_the_file(tmp_path):
    path = write_experiment(tmp_path, "lvef_clip_transfer_100", **GOOD, max_steps=10)
    with pytest.raises(ExperimentError, match=r"lvef_clip_transfer_100\.yaml: unknown key\(s\) \['max_steps'\]"):
        load_experiment(path, DISEASES)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("mode", "fine", r"key 'mode': 'fine' is not one of"),
    ("fraction", 0, r"key 'fraction': 0 is less than or equal to the minimum"),
    ("init", "imagenet", r"key 'init': 'imagenet' is not one of"),
    ("task", "hfpef", r"key 'task': 'hfpef' is not one of \['lvef', 'diseases', 'hcm'"),
])
def test_bad_values_are_named_with_their_key(tmp_path, key, value, message):
    path = write_experiment(tmp_path, "my_setup", **{**GOOD, key: value})
    with pytest.raises(ExperimentError, match=rf"my_setup\.yaml: {message}"):
        load_experiment(path, DISEASES)


def test_missing_key_is_named(tmp_path):
    path = write_experiment(tmp_path, "lvef_clip_transfer_100", **{k: v for k, v in GOOD.items() if k != "seed"})
    with pytest.raises(ExperimentError, match=r"missing key\(s\) \['seed'\]"):
        load_experiment(path, DISEASES)


def test_a_name_that_contradicts_the_file_is_refused(tmp_path):
    path = write_experiment(tmp_path, "lvef_clip_transfer_100", **{**GOOD, "init": "kinetics"})
    with pytest.raises(ExperimentError, match=r"rename the file to lvef_kinetics_transfer_100\.yaml"):
        load_experiment(path, DISEASES)
    path = write_experiment(tmp_path, "disease_clip_transfer_25", **{**GOOD, "task": "diseases", "fraction": 0.25})
    exp = load_experiment(path, DISEASES)
    assert exp.tasks(DISEASES) == DISEASES and exp.kind == "classification"
    assert load_experiment(write_experiment(tmp_path, "hcm_clip_transfer_100", **{**GOOD, "task": "hcm"}),
                           DISEASES).tasks(DISEASES) == ["hcm"]


def test_fraction_labels_and_names():
    assert [fraction_label(f) for f in (1.0, 0.5, 0.25, 0.1, 0.025)] == ["100", "50", "25", "10", "2.5"]
    assert expected_name("diseases", "kinetics", "finetune", 0.1) == "disease_kinetics_finetune_10"


def test_committed_experiments_are_valid_and_the_demo_selects_four():
    for config_file in (DEFAULT_CONFIG, REPO_ROOT / "config" / "paper.yaml"):
        cfg = load_config(config_file)
        fin = cfg["finetune"]
        paths = experiment_paths(REPO_ROOT / fin["experiments"], fin["select"])
        experiments = [load_experiment(p, cfg["labels"]["diseases"]) for p in paths]
        assert len({e.name for e in experiments}) == len(experiments)
        if fin["select"] is not None:  # the demo: pre-trained vs baseline, LVEF and all diseases
            assert len(experiments) == 4
            assert {(e.task, e.init) for e in experiments} == {(t, i) for t in ("lvef", "diseases")
                                                               for i in ("clip", "kinetics")}
        else:  # the paper's grid: both inits, both modes, four fractions, both task families
            grid = {(e.task, e.init, e.mode, e.fraction) for e in experiments}
            assert {(t, i, m, f) for t in ("lvef", "diseases") for i in ("clip", "kinetics")
                    for m in ("finetune", "transfer") for f in (0.1, 0.25, 0.5, 1.0)} <= grid
    with pytest.raises(ExperimentError, match=r"finetune\.select: no file nope\.yaml"):
        experiment_paths(REPO_ROOT / "config" / "experiments", ["nope"])


def test_dry_run_refuses_a_bad_experiment_file_naming_file_and_key(tmp_path):
    experiments = tmp_path / "experiments"
    write_experiment(experiments, "lvef_clip_transfer_100", **GOOD)
    write_experiment(experiments, "lvef_kinetics_transfer_100", **{**GOOD, "init": "kinetics"}, lr=0.5)
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["results"] = str(tmp_path / "results")
    cfg["finetune"].update(experiments=str(experiments), select=None)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(snakemake), "-n", "--cores", "1", "--configfile", str(configfile)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "lvef_kinetics_transfer_100.yaml" in out and "unknown key(s) ['lr']" in out
