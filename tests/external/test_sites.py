"""A second DICOM site through the real rules: the synthetic site (another seed, mostly Philips) goes through the
main cohort's ingestion, reports and labels rules (``use rule ... with:``, workflow/rules/sites.smk), its patients
are test-only, and ``external_test`` predicts it with a trained model exactly as ``cinefm evaluate-external``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cinefm.cli import main
from cinefm.config import REPO_ROOT
from cinefm.report.html import external_flow_section, external_validation_section
from cinefm.splits import LeakageError, check_leakage
from cinefm.stats.external import write_external_stats
from workflow.tiny_config import tiny_config

from .test_evaluate import save_model

SITE = "t"
COHORT = f"site_{SITE}"
RUN = "disease_random_transfer_100"  # save_model's diseases recipe
SITE_RULES = ["site_phantom", "site_ingest_list", "site_ingest_scan", "site_ingest_merge", "site_ingest_extract",
              "site_ingest_flow", "site_reports", "site_labels", "site_agreement"]


def _snakemake(root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(REPO_ROOT / "Snakefile"),
           "--directory", str(root), "--configfile", str(root / "config.yaml"), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def site_run(tmp_path_factory):
    """The tiny config with one small synthetic site (4 patients, Philips only, annotators), run by the site rules;
    then a trained model (random weights, saved as best.ckpt is) tested on it by the external_test rule."""
    root = tmp_path_factory.mktemp("site")
    cfg = tiny_config(root / "results")
    cfg["external"]["sites"] = {SITE: {
        "dicom_root": None, "reports_csv": None, "shards": 1,
        "phantom": {"patients": 4, "seed": 31, "studies_per_patient": [1, 1], "frames": [10, 10],
                    "sax_slices": [4, 4], "human_label_fraction": 0.5, "vendor_weights": {"philips": 1.0}}}}
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    results = root / "results"
    site = results / "sites" / SITE
    _snakemake(root, str(site / "labels" / "agreement.csv"), str(site / "ingest" / "studies.csv"))
    # the splits rule's table for the site: its studies test-only (stage external), next to a training patient
    studies = pd.read_csv(site / "ingest" / "studies.csv", dtype=str)
    splits = pd.concat([
        pd.DataFrame([("T000", "ST000", "phantom", "downstream", "train")],
                     columns=["patient_id", "study_id", "cohort", "stage", "split"]),
        studies[["patient_id", "study_id"]].assign(cohort=COHORT, stage="external", split="test")])
    (results / "splits").mkdir()
    splits.to_csv(results / "splits" / "splits.csv", index=False)
    (results / "finetune" / RUN).mkdir(parents=True)
    save_model(results / "finetune" / RUN / "best.ckpt", "diseases")
    target = results / "external_test" / COHORT / RUN / "predictions.csv"
    # splits.csv and best.ckpt stand for the main cohort's branch: up to date, only external_test runs
    proc = _snakemake(root, str(target))
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stderr[proc.stderr.index("Job stats:"):], flags=re.M))
    assert jobs == {"external_test": "1", "total": "1"}, jobs
    return root, results, site, target, proc


@pytest.mark.slow
def test_the_site_goes_through_the_main_cohorts_rules_with_its_own_vendor_mix(site_run):
    root, results, site, _, _ = site_run
    for rule in SITE_RULES:  # log and benchmark of every site job, under the site's name
        name = rule.removeprefix("site_")
        bench = root / "logs" / "benchmarks" / "sites" / SITE / (f"{name}_0.tsv" if name in (
            "ingest_scan", "ingest_extract") else f"{name}.tsv")
        assert bench.is_file(), rule
    truth = pd.read_csv(site / "phantom" / "truth.csv")
    assert set(truth["vendor"]) == {"philips"} and len(truth) == 4
    studies = pd.read_csv(site / "ingest" / "studies.csv", dtype=str)
    assert len(studies) == 4 and set(studies["vendor"]) == {"philips"}
    assert (site / "h5").is_dir() and not (results / "h5").exists()  # the site's own HDF5 tree
    for pid in studies["patient_id"]:  # pseudonymized with the project's keyed hash, no MRN
        assert pid.startswith("P") and pid not in set(truth["patient_id"].astype(str))
    labels = pd.read_csv(site / "labels" / "labels.csv", dtype=str)
    assert set(labels["study_id"]) == set(studies["study_id"]) and "lvef" in labels.columns
    assert (site / "labels" / "agreement.csv").is_file() and (site / "text" / "reports.json").is_file()
    flow = pd.read_csv(site / "ingest" / "flow.csv")
    assert flow.query("level == 'studies' and stage == 'kept'")["count"].sum() == 4
    section = external_flow_section(results, {"external": {"sites": {SITE: {}}}}).body
    assert f"Site {SITE}" in section and "exclude_pattern" in section


@pytest.mark.slow
def test_external_test_of_the_site_gives_site_rows_and_equals_the_cli(site_run, tmp_path):
    root, results, site, target, _ = site_run
    pred = pd.read_csv(target, dtype={"study_id": str})
    studies = pd.read_csv(site / "ingest" / "studies.csv", dtype=str)
    assert set(pred["test_cohort"]) == {f"site:{SITE}"} and set(pred["split"]) == {"test"}
    assert set(pred["study_id"]) == set(studies["study_id"])  # every site study, nothing else
    assert pred["task"].nunique() >= 2  # the diseases the site's reports give a reference for
    # external.csv: one AUROC row per disease task, cohort site:<name>
    stats = tmp_path / "stats"
    config = yaml.safe_load((root / "config.yaml").read_text())
    table = write_external_stats([target], stats / "external.csv", stats / "external_delong.csv",
                                 stats / "external_figures", config)
    rows = table[table["cohort"] == f"site:{SITE}"]
    assert set(rows["task"]) == set(pred["task"]) and set(rows["metric"]) == {"auroc"}
    assert (rows["n"] == len(studies)).all()
    assert f"site:{SITE}" in external_validation_section(tmp_path, config).body  # the report's rows
    # the CLI: the same code path, the same file (same threads as the rule's job)
    run = results / "finetune" / RUN
    out = tmp_path / "cli.csv"
    assert main(["evaluate-external", "--run", str(run), "--cohort", str(site), "--splits",
                 str(results / "splits" / "splits.csv"), "--out", str(out), "--threads", "2"]) == 0
    assert out.read_bytes() == target.read_bytes()
    # without a splits table every study of the folder is a test unit: here the same ones
    bare = tmp_path / "bare.csv"
    assert main(["evaluate-external", "--run", str(run / "best.ckpt"), "--cohort", str(site), "--out", str(bare),
                 "--threads", "2"]) == 0
    assert bare.read_bytes() == target.read_bytes()


@pytest.mark.slow
def test_the_leakage_check_catches_a_site_patient_in_training(site_run):
    _, results, _, _, _ = site_run
    splits = pd.read_csv(results / "splits" / "splits.csv", dtype=str)
    check_leakage(splits)  # as written: the site is test-only
    leaked = splits[splits["cohort"] == COHORT].iloc[0]
    planted = pd.concat([splits, pd.DataFrame([{"patient_id": leaked["patient_id"], "study_id": "S_other",
                                                "cohort": "phantom", "stage": "downstream", "split": "train"}])])
    with pytest.raises(LeakageError, match=leaked["patient_id"]):
        check_leakage(planted)


def test_a_cohort_folder_that_is_neither_layout_fails_naming_what_it_needs(tmp_path):
    from cinefm.data.h5 import DataError
    from cinefm.external.evaluate import folder_tables

    with pytest.raises(DataError, match="ingest/studies.csv"):
        folder_tables(tmp_path)
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "studies.csv").write_text("patient_id,study_id,h5_relpath\n")
    with pytest.raises(DataError, match="labels/labels.csv"):
        folder_tables(tmp_path)
