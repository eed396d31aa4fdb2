import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cinefm.config import REPO_ROOT

from .tiny_config import write_tiny_config

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.fixture(scope="session")
def snakemake():
    """Run snakemake on the project's Snakefile; returns the CompletedProcess."""

    def run(*args: str, cwd: Path = REPO_ROOT, check: bool = False) -> subprocess.CompletedProcess:
        cmd = [SNAKEMAKE, "--snakefile", str(REPO_ROOT / "Snakefile"), *args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run


# --- a real single-node SLURM (tools/slurm-test-cluster.sh, recipe shared/recipes/slurm.md) ---
SLURM_CLUSTER_SCRIPT = REPO_ROOT / "tools" / "slurm-test-cluster.sh"
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol")


def real_slurm_env(**extra: str) -> dict[str, str]:
    """This process's environment without any SLURM_* variable (tests/conftest.py sets a
    controller-less SLURM_CONF for the other tests), plus `extra`: what a real cluster's
    clients, daemons and Snakemake runs get."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(extra)
    return env


def _missing_slurm_binaries() -> list[str]:
    return [b for b in SLURM_BINARIES if not (shutil.which(b) or Path("/usr/sbin", b).exists())]


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running test cluster (partitions cpu, a100, b200; fake GPUs), stopped at the end if we started it.

    Skips only when the SLURM packages are missing; a cluster that is installed
    but does not come up fails the test with the daemons' log tails.
    """
    missing = _missing_slurm_binaries()
    if missing:
        pytest.skip(f"SLURM is not installed (missing: {', '.join(missing)}); "
                    "install it as root with tools/install-system-deps.sh")
    env = real_slurm_env()
    status = subprocess.run([str(SLURM_CLUSTER_SCRIPT), "status"], capture_output=True, text=True, env=env)
    if status.returncode == 0:
        yield  # someone else's cluster (e.g. started by hand): use it, leave it running
        return
    if os.geteuid() != 0:
        pytest.fail("SLURM is installed but the test cluster is not running and starting it needs "
                    f"root: run `sudo {SLURM_CLUSTER_SCRIPT} start` first", pytrace=False)
    start = subprocess.run([str(SLURM_CLUSTER_SCRIPT), "start"], capture_output=True, text=True,
                           timeout=180, env=env)
    if start.returncode != 0:
        subprocess.run([str(SLURM_CLUSTER_SCRIPT), "stop"], capture_output=True, text=True, env=env)
        pytest.fail(f"{SLURM_CLUSTER_SCRIPT} start failed (rc={start.returncode}):\n"
                    f"{start.stdout}\n{start.stderr}", pytrace=False)
    try:
        yield
    finally:
        subprocess.run([str(SLURM_CLUSTER_SCRIPT), "stop"], capture_output=True, text=True, env=env)


# --- the whole phantom DAG at its smallest, run once on this machine (tests/workflow/tiny_config.py) ---
LOCAL_PROFILE = REPO_ROOT / "profiles" / "local"
SNAKEMAKE_ENV = {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass(frozen=True)
class LocalRun:
    """A Snakemake working directory: `root/config.yaml`, `root/results/`, `root/.snakemake/`."""

    root: Path
    configfile: Path
    output: str  # Snakemake's stdout + stderr of the full run
    seconds: float

    @property
    def results(self) -> Path:
        return self.root / "results"

    def snakemake(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Snakemake on this working directory with the local profile (options and targets in `args`)."""
        # --configfile first: it takes every word up to the next option (a target would be read as a file)
        cmd = [SNAKEMAKE, "--configfile", str(self.configfile), "--snakefile", str(REPO_ROOT / "Snakefile"),
               "--directory", str(self.root), "--profile", str(LOCAL_PROFILE), "--cores", "2", *args]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True,
                              env={**os.environ, **SNAKEMAKE_ENV})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> LocalRun:
    """The whole phantom DAG (tiny config) run to results/report/index.html with profiles/local."""
    root = tmp_path_factory.mktemp("tiny_run")
    run = LocalRun(root, write_tiny_config(root), "", 0.0)
    start = time.monotonic()
    proc = run.snakemake()
    return LocalRun(root, run.configfile, proc.stdout + proc.stderr, time.monotonic() - start)
