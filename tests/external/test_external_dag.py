"""UKB/ACDC/Kaggle in the workflow: one rule per enabled cohort (plus its synthetic release), flow in the report;
a second DICOM site: the main cohort's rules once per site, tested by every run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cinefm.report.html import external_flow_section

from .dag import dry_run_jobs

COHORT_RULES = {"ukb", "ukb_phantom", "acdc", "acdc_phantom", "kaggle", "kaggle_phantom"}
# demo runs: LVEF and diseases, init clip and kinetics; ACDC has both references, Kaggle LVEF only
DEMO_RUNS = 4
EXTERNAL_TESTS = DEMO_RUNS + 2


SITE_RULES = {"site_phantom", "site_ingest_list", "site_ingest_merge", "site_ingest_flow", "site_reports",
              "site_labels", "site_agreement"}
SITE_SHARDS = 2  # site_ingest_scan and site_ingest_extract jobs


def _dry_run(tmp_path: Path, enabled: bool, site: bool = False) -> dict[str, int]:
    def edit(config: dict) -> None:
        config["external"]["echonet"]["phantom"]["enabled"] = False
        for cohort in ("ukb", "acdc", "kaggle"):
            config["external"][cohort]["enabled"] = enabled
        config["finetune"]["lvef"]["cohort"] = "ukb" if enabled else "reports"
        sites = config["external"]["sites"]
        config["external"]["sites"] = {}
        if site:  # the demo's synthetic site, with annotators (site_agreement) and two shards
            config["external"]["sites"]["b"] = {**sites["b"], "shards": SITE_SHARDS}
            config["external"]["sites"]["b"]["phantom"]["human_label_fraction"] = 0.5

    return dry_run_jobs(tmp_path, edit)


@pytest.fixture(scope="module")
def off(tmp_path_factory) -> dict[str, int]:
    """Job counts without UKB/ACDC/Kaggle and without a second site."""
    return _dry_run(tmp_path_factory.mktemp("off"), enabled=False)


def test_enabled_cohorts_add_one_adapter_and_one_release_job_each(tmp_path, off):
    on = _dry_run(tmp_path / "on", enabled=True)
    assert {k: on.get(k) for k in COHORT_RULES} == dict.fromkeys(COHORT_RULES, 1)
    assert not COHORT_RULES & set(off)
    # + the UK Biobank LVEF split, one external test per (cohort, run with a reference there), the tables
    assert (on["ukb_splits"], on["external_test"], on["external_stats"]) == (1, EXTERNAL_TESTS, 1)
    assert not {"ukb_splits", "external_test", "external_stats"} & set(off)
    assert on["total"] == off["total"] + 6 + 1 + EXTERNAL_TESTS + 1 and on["report"] == off["report"] == 1
    assert on["finetune"] == off["finetune"] == DEMO_RUNS


def test_a_second_site_runs_the_main_cohorts_rules_once_per_site_and_is_tested_by_every_run(tmp_path, off):
    on = _dry_run(tmp_path / "site", enabled=False, site=True)
    assert {k: on.get(k) for k in SITE_RULES} == dict.fromkeys(SITE_RULES, 1)
    assert on["site_ingest_scan"] == on["site_ingest_extract"] == SITE_SHARDS
    assert not {r for r in on if r.startswith("site_")} & set(off)
    # every trained model on the site (its reports give every task), then the tables; the main cohort's own
    # ingestion, reports and labels jobs are untouched
    assert (on["external_test"], on["external_stats"]) == (DEMO_RUNS, 1)
    for rule in ("ingest_scan", "ingest_extract", "reports", "labels", "agreement", "splits", "finetune"):
        assert on[rule] == off[rule], rule
    assert on["total"] == off["total"] + len(SITE_RULES) + 2 * SITE_SHARDS + DEMO_RUNS + 1


def test_report_shows_each_cohorts_flow(tmp_path):
    config = {"external": {"acdc": {"enabled": True}, "ukb": {"enabled": False}}}
    absent = external_flow_section(tmp_path, config)
    assert "Not available" in absent.body and "external/acdc/flow.csv" in absent.body
    (tmp_path / "external" / "acdc").mkdir(parents=True)
    pd.DataFrame([("folders", "input", "", "", 9), ("folders", "excluded", "corrupt", "corrupt_gzip", 1)],
                 columns=["level", "stage", "status", "reason", "count"]).to_csv(
        tmp_path / "external" / "acdc" / "flow.csv", index=False)
    shown = external_flow_section(tmp_path, config).body
    assert "<h3>ACDC</h3>" in shown and "corrupt_gzip" in shown and "UK Biobank" not in shown
    assert "No external cohort" in external_flow_section(tmp_path / "none", {}).body
