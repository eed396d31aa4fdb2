"""``cinefm envcheck`` and ``cinefm repro``: the reproducibility checks of a checkout and of a run."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import tempfile
import time
from pathlib import Path

from cinefm.config import REPO_ROOT

log = logging.getLogger(__name__)

TINY_CONFIG = REPO_ROOT / "tests" / "workflow" / "tiny_config.py"


def write_tiny_config(root: Path) -> Path:
    """The test suite's tiny config (tests/workflow/tiny_config.py) written under ``root``."""
    spec = importlib.util.spec_from_file_location("_cinefm_tiny_config", TINY_CONFIG)
    if spec is None or not TINY_CONFIG.is_file():
        raise FileNotFoundError(f"{TINY_CONFIG} is missing: --tiny needs a checkout with its tests")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tiny_config(root)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("envcheck", help="run every rule in a venv built from its own envs/*.yaml (cached)",
                       description="Build one virtualenv per conda env file from its pip section (python3.11, "
                       "cached by the pins' hash under ~/.cache/cinefm/envs or $CINEFM_ENV_CACHE) and run a "
                       "Snakemake DAG with each rule's script executed by its env's interpreter in isolation. "
                       "Fails naming the rule, its env and the missing module.")
    p.add_argument("--configfile", type=Path, help="the run's config (default with --tiny: the tests' tiny DAG)")
    p.add_argument("--tiny", action="store_true", help="the tests' tiny phantom DAG (tests/workflow/tiny_config.py)")
    p.add_argument("--workdir", type=Path, help="Snakemake's working directory (default: a temporary folder)")
    p.add_argument("--python", default=None, help="the interpreter the venvs are built with (default python3.11)")
    p.add_argument("--cache", type=Path, default=None, help="venv cache folder")
    p.add_argument("--build-only", action="store_true", help="build (or find) the venvs, run nothing")
    p.add_argument("--without", action="append", default=[], metavar="ENV:PACKAGE",
                   help="leave PACKAGE out of ENV's venv (to see the check fail)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("targets", nargs="*", help="Snakemake targets (default: the whole DAG)")
    p.set_defaults(func=_envcheck)

    r = sub.add_parser("repro", help="rerun rules of a finished run in a scratch folder and compare the outputs",
                       description="Rerun the chosen rules (default: every non-training rule) of the run in "
                       "--directory into <results>/repro/work, compare each output with the original (sha256; "
                       "training tables within a tolerance) and write <results>/repro/report.csv.")
    r.add_argument("--configfile", type=Path, required=True, help="the run's config file")
    r.add_argument("--directory", type=Path, default=Path("."), help="the run's working directory (default .)")
    r.add_argument("--rules", nargs="+", default=None, help="rules to rerun (default: all but training)")
    r.add_argument("--atol", type=float, default=None, help="absolute tolerance of training tables")
    r.add_argument("--rtol", type=float, default=None, help="relative tolerance of training tables")
    r.add_argument("--keep", action="store_true", help="keep the scratch folder")
    r.add_argument("--cores", type=int, default=2)
    r.set_defaults(func=_repro)


def _envcheck(args: argparse.Namespace) -> int:
    from cinefm import envcheck

    envs = envcheck.load_envs()
    overrides = {}
    for item in args.without:
        env, _, pkg = item.partition(":")
        if env not in envs or not pkg:
            raise SystemExit(f"--without {item!r}: expected ENV:PACKAGE with ENV one of {', '.join(envs)}")
        overrides[env] = (overrides.get(env) or envs[env]).without((pkg,))
    if args.build_only:
        for name in sorted(set(envcheck.rule_envs().values())):
            start = time.monotonic()
            venv = envcheck.build_env(overrides.get(name, envs[name]), args.python, args.cache)
            print(f"envs/{name}.yaml: {venv} ({time.monotonic() - start:.0f} s)")
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cinefm-envcheck-"))
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = args.configfile or (write_tiny_config(workdir) if args.tiny else None)
    if configfile is None:
        raise SystemExit("envcheck: give --configfile CONFIG or --tiny")
    result = envcheck.run_check(configfile, workdir, args.targets, envs=overrides, python=args.python,
                                cache=args.cache, cores=args.cores)
    if result.ok:
        print(f"envcheck: every rule ran in its own env ({', '.join(result.rules_run)}); workdir {workdir}")
        return 0
    for failure in result.failures:
        print(f"envcheck: FAILED {failure}", file=sys.stderr)
    if not result.failures:
        print(result.output[-4000:], file=sys.stderr)
    print(f"envcheck: failed (Snakemake exit {result.returncode}); workdir {workdir}", file=sys.stderr)
    return 1


def _repro(args: argparse.Namespace) -> int:
    from cinefm import repro

    kwargs = {k: v for k, v in (("atol", args.atol), ("rtol", args.rtol)) if v is not None}
    table = repro.repro(args.configfile, args.directory, args.rules, cores=args.cores, keep=args.keep, **kwargs)
    differ = table[~table["identical"].astype(bool)]
    print(f"repro: {len(table) - len(differ)} of {len(table)} outputs identical")
    for row in differ.itertuples():
        print(f"  DIFFERS {row.rule}: {row.output}: {row.difference}")
    return 1 if len(differ) else 0
