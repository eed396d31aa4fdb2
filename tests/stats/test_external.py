"""External validation tables: per cohort, the internal statistics and paired tests between inits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinefm.stats import bland_altman, delong_test, roc_auc_ci
from cinefm.stats.external import COLUMNS, DELONG_COLUMNS, write_external_stats

CONFIG = {"stats": {"ci_level": 0.95, "bootstrap": 50, "bootstrap_seed": 1, "sensitivity_target": 0.9,
                    "specificity_target": 0.9}, "labels": {"heart_failure_lvef": 40}}


def write_predictions(path: Path, cohort: str, experiment: str, init: str, task: str, target, score) -> Path:
    n = len(target)
    df = pd.DataFrame({"experiment": experiment, "cohort": "cmr", "init": init, "mode": "transfer", "fraction": 1.0,
                       "test_cohort": cohort, "study_id": [f"S{i:03d}" for i in range(n)],
                       "patient_id": [f"P{i:03d}" for i in range(n)], "split": "test", "task": task,
                       "target": target, "score": score})
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


@pytest.fixture()
def external_run(tmp_path):
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(15), np.zeros(25)]
    lvef = rng.uniform(15, 70, 30)
    paths = [
        write_predictions(tmp_path / "acdc/dcm_clip", "acdc", "dcm_clip_transfer_100", "clip", "dcm", y,
                          y + rng.normal(0, 0.8, 40)),
        write_predictions(tmp_path / "acdc/dcm_kin", "acdc", "dcm_kinetics_transfer_100", "kinetics", "dcm", y,
                          y + rng.normal(0, 1.5, 40)),
        write_predictions(tmp_path / "kaggle/lvef_clip", "kaggle_dsb", "lvef_clip_transfer_100", "clip", "lvef",
                          lvef, lvef + rng.normal(2, 5, 30)),
    ]
    empty = tmp_path / "kaggle/none.csv"
    pd.DataFrame(columns=["experiment", "test_cohort"]).to_csv(empty, index=False)  # a model without a reference
    out = tmp_path / "stats"
    table = write_external_stats([*paths, empty], out / "external.csv", out / "external_delong.csv",
                                 out / "figures", CONFIG)
    return out, table, y, lvef, paths


def test_external_table_holds_each_cohorts_statistics_as_the_stats_functions_give_them(external_run):
    out, table, y, lvef, paths = external_run
    written = pd.read_csv(out / "external.csv")
    assert list(written.columns) == COLUMNS
    assert set(written["cohort"]) == {"acdc", "kaggle_dsb"}
    dcm = pd.read_csv(paths[0])
    auc = roc_auc_ci(dcm["target"], dcm["score"])
    row = written[(written["experiment"] == "dcm_clip_transfer_100") & (written["metric"] == "auroc")].iloc[0]
    assert (row["cohort"], row["task"], row["n"]) == ("acdc", "dcm", 40)
    assert row[["value", "ci_low", "ci_high"]].tolist() == pytest.approx([auc.auc, auc.ci_low, auc.ci_high])
    k = pd.read_csv(paths[2])
    kag = written[written["cohort"] == "kaggle_dsb"].set_index("metric")
    assert kag.loc["mae", "value"] == pytest.approx(np.mean(np.abs(k["score"] - k["target"])))
    assert kag.loc["rmse", "value"] == pytest.approx(np.sqrt(np.mean((k["score"] - k["target"]) ** 2)))
    ba = bland_altman(k["score"], k["target"])
    assert kag.loc["bland_altman_bias", "value"] == pytest.approx(ba.bias)
    assert kag.loc["bland_altman_loa_high", "value"] == pytest.approx(ba.loa_high)
    hf = roc_auc_ci((k["target"] < 40).astype(int), k["score"], direction=">")
    assert kag.loc["auroc", "task"] == "heart_failure" and kag.loc["auroc", "value"] == pytest.approx(hf.auc)


def test_inits_are_paired_per_cohort_on_the_same_units(external_run):
    out, _, y, _, paths = external_run
    delong = pd.read_csv(out / "external_delong.csv")
    assert list(delong.columns) == DELONG_COLUMNS and len(delong) == 1  # Kaggle holds one init only
    a, b = pd.read_csv(paths[0]), pd.read_csv(paths[1])
    t = delong_test(a["target"], a["score"], b["score"], paired=True)
    row = delong.iloc[0]
    assert (row["cohort"], row["experiment_a"], row["experiment_b"]) == (
        "acdc", "dcm_clip_transfer_100", "dcm_kinetics_transfer_100")
    assert (row["p_value"], row["difference"]) == pytest.approx((t.p_value, t.difference))


def test_figures_are_written_per_cohort(external_run):
    out = external_run[0] / "figures"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "acdc/roc_dcm_transfer_100.png", "kaggle_dsb/bland_altman_lvef_clip_transfer_100.png",
        "kaggle_dsb/roc_heart_failure_transfer_100.png"]


def test_report_shows_the_external_validation_tables_and_each_cohorts_figures(external_run, tmp_path):
    from cinefm.report.html import external_validation_section

    out = external_run[0]
    results = tmp_path / "results"
    (results / "stats").mkdir(parents=True)
    for name in ("external.csv", "external_delong.csv"):
        (results / "stats" / name).write_bytes((out / name).read_bytes())
    (out / "figures").rename(results / "stats" / "external_figures")
    body = external_validation_section(results, {"external": {"evaluate": True}}).body
    assert "kaggle_dsb" in body and "acdc" in body and "dcm_kinetics_transfer_100" in body
    assert "Heart failure" in body or "heart_failure" in body
    assert body.count("<img") == 3 and "p (DeLong)" in body
    absent = external_validation_section(tmp_path / "none", {"external": {"evaluate": True}}).body
    assert "Not available" in absent and "external_stats" in absent
