"""Every rule's conda env pins the same versions as pyproject.toml."""

import re
import tomllib

import yaml

from cinefm.config import REPO_ROOT


def _pyproject_pins() -> dict[str, str]:
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + [r for extra in meta["optional-dependencies"].values() for r in extra]
    pins = {}
    for r in reqs:
        name, _, version = r.partition("==")
        assert version, f"pyproject.toml: {r!r} is not pinned with =="
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
        assert "-e ../" in pip, f"{f.name}: does not install cinefm itself (-e ../)"
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
