"""The whole phantom DAG on this machine (profiles/local, tiny config): report, rerun, --report.

One run (the session fixture `tiny_run`, ~2 min on 2 cores) feeds every test here:
the config gives every stage data, a second invocation has nothing to do,
`snakemake --report` packs the key figures, and deleting one fine-tuning output
then asking for the stats target reruns exactly that experiment and the stats.
(tests/workflow/test_slurm.py runs the same DAG through sbatch.)
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from .conftest import LocalRun
from .tiny_config import EXPERIMENTS, FULL_RUN_RULES, RERUN_EXPERIMENT


def jobs_in_output(output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job Snakemake started, from its log ("rule x:" blocks)."""
    jobs = []
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n?)*)", output, flags=re.M):
        found = re.search(r"^    wildcards: (.*)$", body, flags=re.M)
        jobs.append((rule, found.group(1) if found else ""))
    return jobs


def snapshot(results: Path) -> dict[str, float]:
    """Modification time of every file under results/ (path relative to results)."""
    return {str(p.relative_to(results)): p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def report_zip(tiny_run: LocalRun) -> Path:
    """`snakemake --report report.zip` on the finished run (before anything is rerun)."""
    path = tiny_run.root / "report.zip"
    tiny_run.snakemake("--report", str(path))
    return path


@dataclass(frozen=True)
class Rerun:
    file_target_dry_run: str  # `-n results/stats/delong.csv` after the deletion
    output: str  # `all_stats` after the deletion
    before: dict[str, float]
    after: dict[str, float]


@pytest.fixture(scope="module")
def rerun(tiny_run: LocalRun, report_zip: Path) -> Rerun:
    """Delete one experiment's predictions.csv, then ask for the stats target (after --report)."""
    before = snapshot(tiny_run.results)
    (tiny_run.results / "finetune" / RERUN_EXPERIMENT / "predictions.csv").unlink()
    dry = tiny_run.snakemake("-n", str(tiny_run.results / "stats" / "delong.csv"))
    proc = tiny_run.snakemake("all_stats")
    return Rerun(dry.stdout + dry.stderr, proc.stdout + proc.stderr, before, snapshot(tiny_run.results))


def test_tiny_config_gives_every_stage_data(tiny_run):
    splits = pd.read_csv(tiny_run.results / "splits" / "splits.csv")
    sizes = splits.groupby(["stage", "split"]).size().to_dict()
    assert sizes[("pretrain", "train")] >= 4 and sizes[("pretrain", "val")] >= 2, sizes
    assert min(sizes[("downstream", s)] for s in ("train", "val", "test")) >= 2, sizes
    labels = pd.read_csv(tiny_run.results / "labels" / "labels.csv").set_index("study_id")
    for split in ("train", "val", "test"):
        studies = splits.loc[(splits.stage == "downstream") & (splits.split == split), "study_id"]
        assert set(labels.loc[studies, "heart_failure"].dropna()) == {0, 1}, split
        if split != "train":
            diseases = labels.loc[studies, ["hcm", "dcm", "prior_mi", "rv_dilation", "pericardial_effusion",
                                            "amyloidosis"]]
            assert sum(set(diseases[d].dropna()) == {0, 1} for d in diseases) >= 2, (split, diseases)
    auroc = pd.read_csv(tiny_run.results / "stats" / "auroc.csv")
    assert auroc["auc"].notna().sum() >= 2, auroc  # heart failure + at least one disease


def test_full_run_executes_every_rule_and_builds_the_report(tiny_run):
    rules = [rule for rule, _ in jobs_in_output(tiny_run.output)]
    assert set(rules) == FULL_RUN_RULES
    assert sorted(w for r, w in jobs_in_output(tiny_run.output) if r == "finetune") == sorted(
        f"experiment={e}" for e in EXPERIMENTS)
    html = (tiny_run.results / "report" / "index.html").read_text()
    # figures embedded from results/stats/figures, with the captions cinefm.report gives them
    assert "ROC: heart failure transfer 100" in html and f"Bland–Altman: {RERUN_EXPERIMENT}" in html


def test_second_invocation_has_nothing_to_do(tiny_run):
    proc = tiny_run.snakemake("-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_snakemake_report_packs_the_key_figures(report_zip):
    with zipfile.ZipFile(report_zip) as zf:
        names = [Path(n).name for n in zf.namelist()]
        page = zf.read(f"{report_zip.stem}/report.html").decode()  # the folder is named after the zip
    for name in ("flow.png", "umap.png", "agreement.png", "index.html", "bland_altman_lvef_clip_transfer_100.png",
                 "roc_heart_failure_transfer_100.png", "auroc.csv", "delong.csv", "lvef_subgroups.csv",
                 "lvef_subgroups.png", "view_attention.csv", "view_attention.png"):
        assert name in names, name
    assert any(n.startswith("roc_") and n != "roc_heart_failure_transfer_100.png" for n in names), names
    for category in ("Ingestion", "Pre-training", "Evaluation", "ROC curves", "Bland-Altman", "LVEF subgroups",
                     "View attention", "Report"):
        assert category in page, category
    assert "Exclusion flow of the DICOM ingestion" in page  # a caption (workflow/report/flow.rst)


def test_a_file_target_alone_does_not_remake_a_deleted_intermediate(rerun):
    # Snakemake's rule (snakemake/snakemake#1978): why the stats target is the rule all_stats
    assert "Nothing to be done" in rerun.file_target_dry_run


def test_deleting_one_finetune_output_reruns_exactly_that_job_and_the_stats(rerun):
    ran = [job for job in jobs_in_output(rerun.output) if job[0] != "all_stats"]
    assert sorted(ran) == [("finetune", f"experiment={RERUN_EXPERIMENT}"), ("stats", "")]
    changed = {p for p in rerun.after if rerun.after[p] != rerun.before.get(p)}
    assert {p.split("/")[0] for p in changed} == {"finetune", "stats"}, sorted(changed)
    assert all(p.startswith(f"finetune/{RERUN_EXPERIMENT}/") for p in changed if p.startswith("finetune/"))
    assert f"finetune/{RERUN_EXPERIMENT}/predictions.csv" in changed
    assert "stats/delong.csv" in changed and "stats/auroc.csv" in changed
