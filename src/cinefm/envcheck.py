"""``cinefm envcheck``: every rule run in a virtualenv built from its own conda env's pip section.

A rule names its conda env (``conda: env("dicom")`` -> ``envs/dicom.yaml``). On a cluster,
``snakemake --software-deployment-method conda`` builds that env and runs the rule's script with its
python. Two things can hide a missing package there: Snakemake appends its own ``sys.path`` (its
site-packages, with every package of the driver's env) to each script's path as a fall-back
(``snakemake.script.PythonScript.generate_preamble``), and conda channels are not reachable here.
The check therefore:

1. builds one venv per env file with the system's ``python3.11`` (no ``--system-site-packages``),
   ``pip install``-ing the pinned lines of its pip section; cinefm itself comes from this checkout, put on
   the script's path as ``-e ../[groups]`` would (so checks of two checkouts can share the cache). A venv is cached under ``~/.cache/cinefm/envs``
   (``$CINEFM_ENV_CACHE``) by the hash of its pins and the interpreter's version, so a second check
   builds nothing; the torch wheels go into one shared layer that each torch env hard-links
   (``cp -al``), so two torch envs cost the disk one torch;
2. runs a real Snakemake run (the tiny DAG, or any config and targets) in which each rule's script is
   executed by its env's interpreter in isolated mode (``python -I``: no ``PYTHONPATH``, no user site,
   no fall-back path) with a ``snakemake`` object rebuilt from plain values (``input``, ``output``,
   ``params``, ``log``, ``wildcards``, ``threads``, ``resources``, ``config``, ``rule``), so the script
   sees exactly what its env installs;
3. reports each failing rule with its env and, for a missing import, the module
   (``ModuleNotFoundError``), and exits non-zero.

Snakemake's script preamble: snakemake/script/__init__.py (PythonScript.generate_preamble, v9.27);
venv: https://docs.python.org/3/library/venv.html; ``-I``: https://docs.python.org/3/using/cmdline.html#cmdoption-I.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from cinefm.config import REPO_ROOT

log = logging.getLogger(__name__)

ENVS_DIR = REPO_ROOT / "envs"
RULES_DIR = REPO_ROOT / "workflow" / "rules"
SNAKEFILE = REPO_ROOT / "Snakefile"
# pinned lines whose wheels lie in one shared, hard-linked layer (the local torch build)
LAYER_PACKAGES = ("torch",)
_MISSING = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")


class EnvCheckError(RuntimeError):
    """An env that cannot be built, or a rule that failed in its env."""


@dataclass(frozen=True)
class EnvSpec:
    """One conda env file: its name, its pinned pip lines and the cinefm extras it installs."""

    name: str
    path: Path
    pins: tuple[str, ...]
    extras: tuple[str, ...]

    def without(self, packages: tuple[str, ...]) -> EnvSpec:
        """The same env less the named packages (the test that a missing package fails the check)."""
        drop = {p.lower() for p in packages}
        pins = tuple(p for p in self.pins if _pin_name(p) not in drop)
        return EnvSpec(self.name, self.path, pins, self.extras)


def _pin_name(pin: str) -> str:
    return re.split(r"[=<>!~\[ ]", pin, maxsplit=1)[0].strip().lower()


def load_env(path: str | os.PathLike) -> EnvSpec:
    """Read ``envs/<name>.yaml``: its ``pip:`` lines, pinned (``==``) or the ``-e ../[extras]`` of cinefm."""
    path = Path(path)
    doc = yaml.safe_load(path.read_text())
    try:
        pip = next(d["pip"] for d in doc["dependencies"] if isinstance(d, dict) and "pip" in d)
    except (KeyError, StopIteration, TypeError):
        raise EnvCheckError(f"{path}: no `pip:` section under dependencies") from None
    pins, extras = [], ()
    for line in pip:
        line = str(line).strip()
        m = re.fullmatch(r"-e \.\./?(?:\[([a-z0-9_,\-]+)\])?", line)
        if m:
            extras = tuple(m.group(1).split(",")) if m.group(1) else ()
        elif "==" in line and not line.startswith("-"):
            pins.append(line)
        else:
            raise EnvCheckError(f"{path}: pip line {line!r} is neither a `pkg==version` pin nor `-e ../[extras]`")
    return EnvSpec(path.stem, path, tuple(pins), extras)


def load_envs(envs_dir: str | os.PathLike = ENVS_DIR) -> dict[str, EnvSpec]:
    return {p.stem: load_env(p) for p in sorted(Path(envs_dir).glob("*.yaml"))}


def rule_envs(rules_dir: str | os.PathLike = RULES_DIR) -> dict[str, str]:
    """Rule name -> env name, read from the rule blocks of ``workflow/rules/*.smk``. A rule named in a
    loop (``name: f"{_cohort}_phantom"``, ``name: _cohort``) is keyed by that f-string (``{_cohort}``);
    :func:`env_of` matches it."""
    out: dict[str, str] = {}
    for smk in sorted(Path(rules_dir).glob("*.smk")):
        blocks = re.split(r"^\s*rule(?: (\w+))?:", smk.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            if name is None:
                m = re.match(r'\s*name:\s*\n\s*(?:f?"([^"]+)"|(\w+)\s*\n)', body)
                if not m:
                    continue
                name = m.group(1) or f"{{{m.group(2)}}}"  # a bare variable: any name
            m = re.search(r'conda:\s*\n\s*env\("([a-z_]+)"\)', body)
            if m:
                out[name] = m.group(1)
    return out


def env_of(rule: str, rules: dict[str, str]) -> str | None:
    """The env of ``rule``: by name, else by a looped rule's f-string name (``{...}`` standing for a word)."""
    if rule in rules:
        return rules[rule]
    for pattern, env in rules.items():
        if "{" in pattern and re.fullmatch(re.sub(r"\\\{[^}]*\\\}", r"\\w+", re.escape(pattern)), rule):
            return env
    return None


def cache_root() -> Path:
    return Path(os.environ.get("CINEFM_ENV_CACHE") or Path.home() / ".cache" / "cinefm" / "envs")


def find_python(python: str | None = None) -> str:
    """The interpreter the venvs are built with: ``python`` or ``python3.11`` on PATH (conda's python=3.11)."""
    exe = shutil.which(python or "python3.11")
    if not exe:
        raise EnvCheckError(f"{python or 'python3.11'} not found on PATH: the envs pin python=3.11")
    return exe


def _python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], check=True,
                          capture_output=True, text=True).stdout.strip()


def _key(python_version: str, pins: list[str] | tuple[str, ...]) -> str:
    text = "\n".join([f"python {python_version}", *sorted(pins)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pip(venv: Path, args: list[str], what: str) -> None:
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
           "--no-input", "--quiet", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvCheckError(f"{what}: pip install failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}"
                            f"\n{proc.stderr[-3000:]}")


def _new_venv(python: str, where: Path, what: str) -> None:
    proc = subprocess.run([python, "-m", "venv", str(where)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvCheckError(f"{what}: {python} -m venv failed:\n{proc.stderr}")


def _publish(tmp: Path, target: Path, pins: list[str] | tuple[str, ...]) -> Path:
    (tmp / "cinefm-env.json").write_text(json.dumps({"pins": sorted(pins)}, indent=1) + "\n")
    try:
        tmp.rename(target)  # atomic: another check that built the same venv meanwhile wins
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _layer(python: str, version: str, pins: list[str], cache: Path) -> Path:
    """A venv with only the layer packages (torch), built once and hard-linked into each env that pins it."""
    target = cache / f"layer-{_key(version, pins)}"
    if (target / "cinefm-env.json").is_file():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    _new_venv(python, tmp, f"layer {pins}")
    _pip(tmp, pins, f"layer {' '.join(pins)}")
    return _publish(tmp, target, pins)


def build_env(spec: EnvSpec, python: str | None = None, cache: str | os.PathLike | None = None) -> Path:
    """The cached venv of ``spec`` (built when absent); returns its folder.

    Venvs live in ``cache/<hash of python version + pins>``: an edit of the env file's pins builds
    a new one, the same pins in two env files share one. A venv is complete only once renamed into
    place, so an interrupted build leaves nothing that looks usable.
    """
    python = find_python(python)
    cache = Path(cache) if cache else cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    version = _python_version(python)
    target = cache / _key(version, spec.pins)
    if (target / "cinefm-env.json").is_file():
        return target
    start = time.monotonic()
    layer_pins = [p for p in spec.pins if _pin_name(p) in LAYER_PACKAGES]
    log.info("building the venv of envs/%s (%d pins) in %s", spec.path.name, len(spec.pins), target)
    layer = _layer(python, version, layer_pins, cache) if layer_pins else None
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    if layer:  # hard links: the torch files are shared, pip adds the rest beside them
        subprocess.run(["cp", "-al", f"{layer}/.", str(tmp)], check=True)
        (tmp / "cinefm-env.json").unlink()
    else:
        _new_venv(python, tmp, f"envs/{spec.path.name}")
    _pip(tmp, list(spec.pins), f"envs/{spec.path.name}")
    built = _publish(tmp, target, spec.pins)
    log.info("envs/%s: venv ready in %.0f s", spec.path.name, time.monotonic() - start)
    return built


def interpreter_of(venv: Path) -> Path:
    return venv / "bin" / "python"


# --- the Snakemake run: each rule's script by its env's python -------------------------------------

_PREAMBLE = '''\
######## cinefm envcheck preamble (the snakemake object from plain values) ########
import sys as _s, pickle as _p
_s.path.insert(0, {src!r})  # this checkout's cinefm, as `pip install -e ../` puts it on the path
class _Named(list):
    def __init__(self, items, names):
        list.__init__(self, items)
        self.__dict__.update(names)
    def get(self, name, default=None):
        return self.__dict__.get(name, default)
    def keys(self):
        return self.__dict__.keys()
    def items(self):
        return self.__dict__.items()
class _Snakemake:
    def __init__(self, d):
        for k in ("input", "output", "params", "log", "wildcards", "resources"):
            setattr(self, k, _Named(*d[k]))
        self.threads, self.config, self.rule, self.scriptdir = d["threads"], d["config"], d["rule"], d["scriptdir"]
snakemake = _Snakemake(_p.loads({data!r}))
del _s, _p
######## end of preamble ########
'''


def _plain(value):
    """Snakemake's values as builtins (its IO strings as str, its named lists as list), for unpickling
    in an env without Snakemake."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def _named(nl) -> tuple[list, dict]:
    items = [_plain(v) for v in nl]
    names = {name: _plain(getattr(nl, name)) for name in nl._names}
    return items, names


def _patch_snakemake(spec: dict) -> None:
    """Make Snakemake run every Python ``script:`` with its rule's env interpreter, isolated; an env's
    venv is built (or found in the cache) when its first rule runs."""
    import pickle
    import threading

    from snakemake.exceptions import WorkflowError
    from snakemake.script import PythonScript

    rules, failures = spec["rules"], Path(spec["failures"])
    envs = {name: EnvSpec(name, Path(e["path"]), tuple(e["pins"]), tuple(e["extras"]))
            for name, e in spec["envs"].items()}
    lock, interpreters = threading.Lock(), {}

    def interpreter(env: str) -> str:
        with lock:  # jobs of one env wait for its one build
            if env not in interpreters:
                interpreters[env] = str(interpreter_of(build_env(envs[env], spec["python"], spec["cache"])))
            return interpreters[env]

    def get_preamble(self) -> str:
        data = {k: _named(getattr(self, k)) for k in ("input", "output", "params", "log", "wildcards")}
        data["resources"] = _named(self.resources)
        data.update(threads=self.threads, config=_plain(self.config), rule=self.rulename,
                    scriptdir=os.path.dirname(self.path.get_path_or_uri(secret_free=True)))
        return _PREAMBLE.format(data=pickle.dumps(data, protocol=4), src=spec["src"])

    def execute_script(self, fname, edit=False) -> None:
        env = env_of(self.rulename, rules)
        if env not in envs:
            raise WorkflowError(f"envcheck: rule {self.rulename} names no env file in envs/ ({env})")
        python = interpreter(env)
        err = Path(f"{fname}.stderr")
        try:  # through Snakemake's shell(): its benchmark records the script's process
            self._execute_cmd('PATH={bindir:q}:"$PATH" {python:q} -I {fname:q} 2> {err:q}',
                              bindir=str(Path(python).parent), python=python, fname=fname, err=str(err))
        except subprocess.CalledProcessError as e:
            stderr = err.read_text(errors="replace") if err.exists() else ""
            missing = _MISSING.findall(stderr)
            record = {"rule": self.rulename, "env": env, "python": python, "returncode": e.returncode,
                      "missing_module": missing[-1] if missing else None, "stderr_tail": stderr[-2000:]}
            (failures / f"{self.rulename}-{time.monotonic_ns()}.json").write_text(json.dumps(record))
            what = f"missing module {missing[-1]!r}" if missing else f"exit status {e.returncode}"
            raise WorkflowError(f"envcheck: rule {self.rulename} failed in env {env} ({python}): {what}") from None
        finally:
            if err.exists():
                sys.stderr.write(err.read_text(errors="replace"))
                err.unlink()

    PythonScript.get_preamble = get_preamble
    PythonScript.execute_script = execute_script


def _snakemake_entry(argv: list[str]) -> int:
    """``python -m cinefm.envcheck SPEC.json SNAKEMAKE_ARGS...``: Snakemake with the patched script runner."""
    _patch_snakemake(json.loads(Path(argv[0]).read_text()))
    from snakemake.cli import main

    try:
        main(argv[1:])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@dataclass(frozen=True)
class RuleFailure:
    rule: str
    env: str
    missing_module: str | None
    detail: str

    def __str__(self) -> str:
        what = f"missing module {self.missing_module!r}" if self.missing_module else self.detail
        return f"rule {self.rule} (env envs/{self.env}.yaml): {what}"


@dataclass(frozen=True)
class CheckResult:
    returncode: int
    failures: list[RuleFailure]
    output: str
    rules_run: list[str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.failures


def run_check(configfile: str | os.PathLike, workdir: str | os.PathLike, targets: list[str] | None = None,
              *, envs: dict[str, EnvSpec] | None = None, python: str | None = None,
              cache: str | os.PathLike | None = None, cores: int = 2,
              snakemake_args: list[str] | None = None) -> CheckResult:
    """Build the env of every rule (cached) and run the DAG of ``configfile`` in ``workdir`` with each
    rule's script in its env. ``envs`` replaces env specs (a test drops a package from one)."""
    envs = {**load_envs(), **(envs or {})}
    rules = rule_envs()
    unknown = sorted({e for e in rules.values() if e not in envs})
    if unknown:
        raise EnvCheckError(f"rules name envs with no file in envs/: {', '.join(unknown)}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    failures_dir = Path(tempfile.mkdtemp(prefix="envcheck-failures-", dir=workdir))
    spec = workdir / "envcheck-spec.json"
    spec.write_text(json.dumps({
        "rules": rules, "failures": str(failures_dir), "python": find_python(python), "src": str(REPO_ROOT / "src"),
        "cache": str(Path(cache) if cache else cache_root()),
        "envs": {n: {"path": str(e.path), "pins": list(e.pins), "extras": list(e.extras)} for n, e in envs.items()},
    }))
    cmd = [sys.executable, "-m", "cinefm.envcheck", str(spec), "--snakefile", str(SNAKEFILE),
           "--configfile", str(configfile), "--directory", str(workdir), "--cores", str(cores),
           "--keep-going", "--printshellcmds", *(snakemake_args or []), *(targets or [])]
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH")]))
    log.info("running the DAG of %s with each rule in its env (%s)", configfile, workdir)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    failures = []
    for f in sorted(failures_dir.glob("*.json")):
        r = json.loads(f.read_text())
        tail = r["stderr_tail"].strip().splitlines()
        failures.append(RuleFailure(r["rule"], r["env"], r["missing_module"],
                                    tail[-1] if tail else f"exit status {r['returncode']}"))
    shutil.rmtree(failures_dir, ignore_errors=True)
    ran = sorted(set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout + proc.stderr, flags=re.M)))
    return CheckResult(proc.returncode, failures, proc.stdout + proc.stderr, ran)


if __name__ == "__main__":
    sys.exit(_snakemake_entry(sys.argv[1:]))
