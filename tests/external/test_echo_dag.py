"""The DAG with EchoNet configured: phantom release → adapter → one fine-tuning job per echo experiment → stats → report."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from cinefm.config import REPO_ROOT


def _dry_run(tmp_path: Path, enabled: bool) -> dict[str, int]:
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    config["finetune"]["experiments"] = str(REPO_ROOT / "config" / "experiments")
    config["ingest"]["views"] = str(REPO_ROOT / "config" / "views.yaml")
    config["labels"]["vocabulary"] = str(REPO_ROOT / "config" / "labels.yaml")
    config["external"]["echonet"]["phantom"]["enabled"] = enabled
    config["external"]["echonet"]["finetune"]["experiments"] = str(REPO_ROOT / "config" / "experiments" / "echonet")
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).parent / "snakemake"
    out = subprocess.run([str(snakemake), "-n", "--snakefile", str(REPO_ROOT / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = out.stdout[out.stdout.index("Job stats:"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def test_echonet_phantom_adds_the_echo_jobs_and_feeds_the_report(tmp_path):
    on = _dry_run(tmp_path / "on", enabled=True)
    off = _dry_run(tmp_path / "off", enabled=False)
    assert {k: on[k] for k in ("echonet_phantom", "echonet", "echonet_finetune", "echonet_stats")} == \
        {"echonet_phantom": 1, "echonet": 1, "echonet_finetune": 2, "echonet_stats": 1}
    assert not {"echonet_phantom", "echonet", "echonet_finetune", "echonet_stats"} & set(off)
    assert on["total"] == off["total"] + 5 and on["report"] == off["report"] == 1
