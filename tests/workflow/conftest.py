import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cinefm.config import REPO_ROOT

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
    status = subprocess.run([str(SLURM_CLUSTER_SCRIPT), "status"], capture_output=True, text=True)
    if status.returncode == 0:
        yield  # someone else's cluster (e.g. started by hand): use it, leave it running
        return
    if os.geteuid() != 0:
        pytest.fail("SLURM is installed but the test cluster is not running and starting it needs "
                    f"root: run `sudo {SLURM_CLUSTER_SCRIPT} start` first", pytrace=False)
    start = subprocess.run([str(SLURM_CLUSTER_SCRIPT), "start"], capture_output=True, text=True,
                           timeout=180)
    if start.returncode != 0:
        subprocess.run([str(SLURM_CLUSTER_SCRIPT), "stop"], capture_output=True, text=True)
        pytest.fail(f"{SLURM_CLUSTER_SCRIPT} start failed (rc={start.returncode}):\n"
                    f"{start.stdout}\n{start.stderr}", pytrace=False)
    try:
        yield
    finally:
        subprocess.run([str(SLURM_CLUSTER_SCRIPT), "stop"], capture_output=True, text=True)
