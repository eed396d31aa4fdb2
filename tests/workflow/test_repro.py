"""cinefm repro on the tiny DAG: every non-training rule rerun gives byte-identical outputs, and a changed
output is reported as different.

The run of the session fixture `tiny_run` is copied (hard links; its Snakemake metadata too) so that the
checks here never touch the folder the other workflow tests read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cinefm import repro

from .conftest import LocalRun


def _copy_run(run: LocalRun, dest: Path) -> Path:
    """``run`` copied to ``dest`` (files hard-linked, times kept); returns the copy's config file."""
    shutil.copytree(run.root, dest, copy_function=os.link, symlinks=True,
                    ignore=shutil.ignore_patterns("repro"))
    for root, _, _ in os.walk(run.root):  # folders keep their times (Snakemake compares them)
        target = dest / Path(root).relative_to(run.root)
        if target.exists():
            shutil.copystat(root, target)
    # a text output naming the run's folder (config.yaml, the report's header) names the copy's, as if run there
    old, new = str(run.root).encode(), str(dest).encode()
    for f in (dest / "results").rglob("*"):
        if f.suffix in repro.TEXT_SUFFIXES and f.is_file() and old in (data := f.read_bytes()):
            times = f.stat()
            f.unlink()  # a hard link: the session's run keeps its file
            f.write_bytes(data.replace(old, new))
            os.utime(f, ns=(times.st_atime_ns, times.st_mtime_ns))
    config = yaml.safe_load(run.configfile.read_text())
    config["results"] = str(dest / "results")
    path = dest / "config.yaml"
    path.unlink()
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def copied_run(tiny_run: LocalRun, tmp_path_factory) -> tuple[Path, Path]:
    dest = tmp_path_factory.mktemp("repro") / "run"
    return dest, _copy_run(tiny_run, dest)


@pytest.mark.slow
def test_every_deterministic_output_is_identical(copied_run):
    root, config = copied_run
    table = repro.repro(config, root)
    report = root / "results" / "repro" / "report.csv"
    assert report.is_file()
    assert list(pd.read_csv(report).columns) == repro.REPORT_COLUMNS
    assert not set(table["rule"]) & set(repro.TRAINING_RULES)
    assert {"phantom", "ingest_extract", "labels", "splits", "stats", "report", "run_config"} <= set(table["rule"])
    differ = table[~table["identical"]]
    assert differ.empty, differ.to_string()
    assert not (root / "results" / "repro" / "work").exists()
    page = (root / "results" / "report" / "index.html").read_text()
    assert 'id="repro"' in page and f"{len(table)} of {len(table)} outputs identical" in page


@pytest.mark.slow
def test_a_changed_output_is_reported_as_different(copied_run):
    root, config = copied_run
    splits = root / "results" / "splits" / "splits.csv"
    text = splits.read_text()
    splits.unlink()  # a hard link: the original run keeps its file
    lines = text.splitlines(keepends=True)
    splits.write_text("".join([lines[0], lines[2], lines[1], *lines[3:]]))  # two rows swapped
    os.utime(splits, ns=(0, (root / "results" / "splits" / "train_fractions.csv").stat().st_mtime_ns))
    table = repro.repro(config, root, ["splits"])
    row = table.set_index("output").loc["splits/splits.csv"]
    assert not row["identical"] and row["difference"].startswith("line 2:"), row.to_dict()
    assert table.set_index("output").loc["splits/train_fractions.csv", "identical"]
    with pytest.raises(repro.ReproError, match="rules \\['nonesuch'\\] wrote nothing"):
        repro.repro(config, root, ["nonesuch"])
