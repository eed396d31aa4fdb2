"""Dry-run the whole DAG with the demo config edited by a test; return the job counts per rule."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from cinefm.config import REPO_ROOT


def dry_run_jobs(tmp_path: Path, edit: Callable[[dict], None]) -> dict[str, int]:
    """``snakemake -n`` on config/config.yaml (repository paths made absolute, then ``edit``ed)."""
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    config["finetune"]["experiments"] = str(REPO_ROOT / "config" / "experiments")
    config["ingest"]["views"] = str(REPO_ROOT / "config" / "views.yaml")
    config["labels"]["vocabulary"] = str(REPO_ROOT / "config" / "labels.yaml")
    config["external"]["echonet"]["finetune"]["experiments"] = str(REPO_ROOT / "config" / "experiments" / "echonet")
    edit(config)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).parent / "snakemake"
    out = subprocess.run([str(snakemake), "-n", "--snakefile", str(REPO_ROOT / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = out.stdout[out.stdout.index("Job stats:"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
