"""cinefm envcheck: env files read, venvs built from their pip sections (cached), rules run in them.

The real check runs two rules of the tiny DAG, each in a venv built from its own env file with the
system's python3.11 and nothing else: `phantom` (envs/phantom.yaml) and `run_config` (envs/base.yaml);
then `run_config` again with pyyaml taken out of its env, which must fail naming rule, env and module.
The venvs live in the shared cache (~/.cache/cinefm/envs), so only the first run pays for them (~2 min).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cinefm import envcheck
from cinefm.checks_cli import write_tiny_config
from cinefm.cli import main


def test_load_env_reads_pins_and_the_groups_of_cinefm(tmp_path):
    spec = envcheck.load_env(envcheck.ENVS_DIR / "external.yaml")
    assert spec.extras == ("dicom", "external")
    assert "nibabel==5.4.2" in spec.pins and not any("torch" in p for p in spec.pins)
    assert "pydicom==3.0.2" not in spec.without(("pydicom",)).pins
    bad = tmp_path / "bad.yaml"
    bad.write_text("dependencies:\n  - python=3.11\n  - pip:\n      - numpy>=2\n")
    with pytest.raises(envcheck.EnvCheckError, match=r"bad.yaml: pip line 'numpy>=2'"):
        envcheck.load_env(bad)


def test_rules_map_to_their_env_files():
    rules = envcheck.rule_envs()
    assert rules["ingest_scan"] == "dicom" and rules["pretrain"] == "train" and rules["stats"] == "stats"
    assert rules["run_config"] == "base" and rules["phantom"] == "phantom"
    assert envcheck.env_of("kaggle_phantom", rules) == "external" == envcheck.env_of("acdc", rules)
    assert set(rules.values()) <= set(envcheck.load_envs())


def test_the_same_pins_share_one_venv_and_a_new_pin_gets_its_own():
    spec = envcheck.load_env(envcheck.ENVS_DIR / "base.yaml")
    assert envcheck._key("3.11.7", spec.pins) == envcheck._key("3.11.7", tuple(reversed(spec.pins)))
    assert envcheck._key("3.11.7", spec.pins) != envcheck._key("3.11.7", spec.without(("tqdm",)).pins)
    assert envcheck._key("3.11.7", spec.pins) != envcheck._key("3.12.1", spec.pins)


@pytest.fixture(scope="module")
def python311():
    if not shutil.which("python3.11"):
        pytest.fail("python3.11 is not on PATH: the env check builds the envs' venvs with it", pytrace=False)
    return "python3.11"


@pytest.mark.slow
def test_rules_run_in_their_own_envs_and_a_missing_package_fails(tmp_path, python311):
    root = tmp_path / "ok"
    root.mkdir()
    config = write_tiny_config(root)
    targets = [str(root / "results" / "phantom" / "faults.csv"), str(root / "results" / "config.yaml")]
    result = envcheck.run_check(config, root, targets, python=python311)
    assert result.ok, result.output[-3000:]
    assert {"phantom", "run_config"} <= set(result.rules_run)
    assert (root / "results" / "phantom" / "faults.csv").is_file() and (root / "results" / "config.yaml").is_file()
    # the venvs are isolated: no torch where the phantom rule runs, and this checkout's cinefm on its path
    venv = envcheck.build_env(envcheck.load_env(envcheck.ENVS_DIR / "phantom.yaml"), python311)
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not (site / "torch").exists() and not (site / "cinefm").exists()
    assert json.loads((venv / "cinefm-env.json").read_text())["pins"]

    broken = tmp_path / "broken"
    broken.mkdir()
    config = write_tiny_config(broken)
    base = envcheck.load_env(envcheck.ENVS_DIR / "base.yaml").without(("pyyaml",))
    result = envcheck.run_check(config, broken, [str(broken / "results" / "config.yaml")],
                                envs={"base": base}, python=python311)
    assert not result.ok
    assert [str(f) for f in result.failures] == ["rule run_config (env envs/base.yaml): missing module 'yaml'"]
    assert not (broken / "results" / "config.yaml").exists()


@pytest.mark.slow
def test_cli_names_the_rule_env_and_module(tmp_path, capsys, python311):
    target = str(tmp_path / "results" / "config.yaml")
    rc = main(["envcheck", "--tiny", "--workdir", str(tmp_path), "--without", "base:pyyaml", target])
    err = capsys.readouterr().err
    assert rc == 1
    assert "FAILED rule run_config (env envs/base.yaml): missing module 'yaml'" in err
    assert Path(tmp_path / "config.yaml").is_file()
