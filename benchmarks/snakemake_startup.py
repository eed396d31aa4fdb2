"""Snakemake's start-up with SLURM's client installed but no controller: as is, and with
the controller-less SLURM_CONF the test suite gives its non-SLURM runs (tests/conftest.py).

snakemake-executor-plugin-slurm (2.8.0) runs ``scontrol show config`` whenever Snakemake
starts; without a reachable slurmctld, scontrol retries for SLURM's MessageTimeout
(default 10 s). Prints, per command, the best wall time and the CPU time of the child
over the repeats, both ways, and the ratio (as is / controller-less).

    .venv/bin/python benchmarks/snakemake_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import NO_CONTROLLER_CONF  # noqa: E402  (tests/ holds the one copy of the conf)

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
ONE_RULE = 'rule all:\n    output: "x.txt"\n    shell: "touch {output}"\n'


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not shutil.which("scontrol"):
        sys.exit("SLURM's client (scontrol) is not installed: Snakemake starts without the wait anyway")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "Snakefile").write_text(ONE_RULE)
        conf = root / "slurm.conf"
        conf.write_text(NO_CONTROLLER_CONF)
        as_is = dict(os.environ)
        fast = dict(os.environ, SLURM_CONF=str(conf))
        reached = subprocess.run(["scontrol", "ping"], env=as_is, capture_output=True, text=True, timeout=60)
        if "UP" in reached.stdout:
            print("warning: a SLURM controller answers here, so the as-is runs do not wait:\n" + reached.stdout)
        commands = {"snakemake --version": [SNAKEMAKE, "--version"],
                    "snakemake -n (one rule)": [SNAKEMAKE, "-n", "--cores", "1"]}
        print(f"{'command':<26} {'as is: wall / CPU s':>20} {'controller-less: wall / CPU s':>30} {'ratio':>6}")
        for name, cmd in commands.items():
            slow = [timed(cmd, as_is, root) for _ in range(args.repeats)]
            quick = [timed(cmd, fast, root) for _ in range(args.repeats)]
            (sw, sc), (qw, qc) = min(slow), min(quick)
            print(f"{name:<26} {sw:>11.2f} / {sc:>5.2f} {qw:>21.2f} / {qc:>5.2f} {sw / qw:>6.1f}")


if __name__ == "__main__":
    main()
