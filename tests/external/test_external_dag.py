"""UKB/ACDC/Kaggle in the workflow: one rule per enabled cohort (plus its synthetic release), flow in the report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cinefm.report.html import external_flow_section

from .dag import dry_run_jobs

COHORT_RULES = {"ukb", "ukb_phantom", "acdc", "acdc_phantom", "kaggle", "kaggle_phantom"}
# demo runs: LVEF and diseases, init clip and kinetics; ACDC has both references, Kaggle LVEF only
DEMO_RUNS = 4
EXTERNAL_TESTS = DEMO_RUNS + 2


def _dry_run(tmp_path: Path, enabled: bool) -> dict[str, int]:
    def edit(config: dict) -> None:
        config["external"]["echonet"]["phantom"]["enabled"] = False
        for cohort in ("ukb", "acdc", "kaggle"):
            config["external"][cohort]["enabled"] = enabled
        config["finetune"]["lvef"]["cohort"] = "ukb" if enabled else "reports"

    return dry_run_jobs(tmp_path, edit)


def test_enabled_cohorts_add_one_adapter_and_one_release_job_each(tmp_path):
    on = _dry_run(tmp_path / "on", enabled=True)
    off = _dry_run(tmp_path / "off", enabled=False)
    assert {k: on.get(k) for k in COHORT_RULES} == dict.fromkeys(COHORT_RULES, 1)
    assert not COHORT_RULES & set(off)
    # + the UK Biobank LVEF split, one external test per (cohort, run with a reference there), the tables
    assert (on["ukb_splits"], on["external_test"], on["external_stats"]) == (1, EXTERNAL_TESTS, 1)
    assert not {"ukb_splits", "external_test", "external_stats"} & set(off)
    assert on["total"] == off["total"] + 6 + 1 + EXTERNAL_TESTS + 1 and on["report"] == off["report"] == 1
    assert on["finetune"] == off["finetune"] == DEMO_RUNS


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
