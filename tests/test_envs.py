"""Every rule's conda env pins the same versions as pyproject.toml."""

import re
import tomllib

import yaml

from cinefm.config import REPO_ROOT
from cinefm.envcheck import load_envs, rule_envs


def _meta() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _pyproject_pins() -> dict[str, str]:
    meta = _meta()
    reqs = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    pins = {}
    for r in reqs:
        if r.startswith("cinefm["):  # `all`: the groups above, by name
            continue
        name, _, version = r.partition("==")
        assert version, f"pyproject.toml: {r!r} is not pinned with =="
        assert pins.setdefault(name.lower(), version) == version, f"pyproject.toml: {name} pinned twice, differently"
        pins[name.lower()] = version
    return pins


def test_every_env_file_pins_what_pyproject_pins():
    pins = _pyproject_pins()
    env_files = sorted((REPO_ROOT / "envs").glob("*.yaml"))
    assert env_files, "envs/ holds no conda env files"
    for f in env_files:
        env = yaml.safe_load(f.read_text())
        deps = env["dependencies"]
        assert any(str(d).startswith("python=3.11") for d in deps), f"{f.name}: python=3.11 missing"
        pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
        assert any(str(r).startswith("-e ../") for r in pip), f"{f.name}: does not install cinefm itself (-e ../)"
        for req in pip:
            m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==(\S+)", req)
            if req.startswith("-"):
                continue
            assert m, f"{f.name}: {req!r} is not pinned with =="
            name = re.sub(r"\[.*\]", "", m.group(1)).lower()
            assert name in pins, f"{f.name}: {name} is not a dependency in pyproject.toml"
            assert pins[name] == m.group(2), f"{f.name}: {name}=={m.group(2)} but pyproject pins {pins[name]}"


def test_every_rule_declares_a_conda_env_that_exists():
    for smk in (REPO_ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        for name in re.findall(r'env\("([a-z_]+)"\)', text):
            assert (REPO_ROOT / "envs" / f"{name}.yaml").is_file(), f"{smk.name}: envs/{name}.yaml missing"
        n_rules = len(re.findall(r"^rule \w+:", text, flags=re.M))
        n_conda = len(re.findall(r"^\s+conda:", text, flags=re.M))
        assert n_conda >= n_rules - text.count("localrule: True"), f"{smk.name}: a rule lacks conda:"


def test_each_env_pins_exactly_the_base_and_its_groups():
    """An env's pins are cinefm's base plus the optional groups its `-e ../[groups]` names, no more, no less."""
    meta = _meta()
    groups = meta["optional-dependencies"]
    for spec in load_envs().values():
        unknown = [g for g in spec.extras if g not in groups]
        assert not unknown, f"{spec.path.name}: -e ../[{','.join(spec.extras)}] names unknown groups {unknown}"
        want = set(meta["dependencies"]) | {r for g in spec.extras for r in groups[g]}
        assert set(spec.pins) == want, (f"{spec.path.name}: pins {sorted(set(spec.pins) - want)} beyond "
                                        f"its groups, lacks {sorted(want - set(spec.pins))}")


def test_the_light_rules_do_not_pull_the_heavy_packages():
    """The DICOM, phantom and statistics rules need no torch; statistics no transformers; run_config and the
    split tables nothing beyond the base."""
    envs, rules = load_envs(), rule_envs()
    names = {e: {_name(p) for p in spec.pins} for e, spec in envs.items()}
    for rule in ("phantom", "ingest_scan", "ingest_extract", "stats", "report", "echonet"):
        assert "torch" not in names[rules[rule]], f"rule {rule}: env {rules[rule]} pulls torch"
        assert "transformers" not in names[rules[rule]], f"rule {rule}: env {rules[rule]} pulls transformers"
    for rule in ("run_config", "splits", "ukb_splits"):
        assert envs[rules[rule]].extras == (), f"rule {rule}: env {rules[rule]} is more than the base"
    base = {_name(r) for r in _meta()["dependencies"]}
    assert base <= {"numpy", "pandas", "pyyaml", "jsonschema", "rich", "tqdm"}, f"the base grew: {sorted(base)}"


def test_every_rule_of_the_workflow_maps_to_an_env():
    rules = rule_envs()
    for smk in (REPO_ROOT / "workflow" / "rules").glob("*.smk"):
        for name in re.findall(r"^\s*rule (\w+):", smk.read_text(), flags=re.M):
            if name not in ("all", "all_stats"):
                assert name in rules, f"{smk.name}: rule {name} has no env(...) the env check can read"


def _name(pin: str) -> str:
    return pin.partition("==")[0].lower()
