"""Phantom EchoNet-Dynamic release → adapter → Perceiver IO and R(2+1)D EF regression → statistics → report.

The acceptance test of the echo comparison: on a synthetic release whose EF is known (the
LV cavity of every video empties by its EF), both encoders, trained on CPU at tiny clip shapes
for a few hundred steps through the same code as the ``echonet_finetune`` rule, predict the
TEST videos' EF with a lower MAE than predicting the training mean.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinefm.config import DEFAULT_CONFIG, load_config
from cinefm.external.echonet import run_echonet
from cinefm.phantom.echo import FILELIST_COLUMNS, generate_echonet
from cinefm.report.html import build_report
from cinefm.stats.echo import write_echo_stats
from cinefm.train.finetune import run_finetune
from cinefm.train.recipe import FinetuneRecipe, resolve_recipe

EXPERIMENTS = Path(DEFAULT_CONFIG).parent / "experiments" / "echonet"
KEY = b"echo-phantom-test-key-0123456789"
CONFIG = load_config(DEFAULT_CONFIG)  # the demo's phantom release and CPU-sized recipes (external.echonet)
PHANTOM = {k: v for k, v in CONFIG["external"]["echonet"]["phantom"].items() if k != "enabled"}
VIDEOS = PHANTOM["videos"]


@pytest.fixture(scope="session")
def echo_phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("echo_phantom")
    generate_echonet(root, **PHANTOM)
    return root


@pytest.fixture(scope="session")
def echo_converted(echo_phantom, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("echo_phantom_out")
    run_echonet(echo_phantom, out, key=KEY, frame_size=32, jobs=1)
    return out


@pytest.fixture(scope="session")
def echo_runs(echo_converted, tmp_path_factory) -> dict[str, dict]:
    """Both encoders trained on the converted phantom with the demo config's recipe overrides."""
    runs = {}
    for encoder in ("perceiver_io", "r2plus1d_18"):
        out = tmp_path_factory.mktemp(f"echonet_{encoder}_lvef")
        t0 = time.perf_counter()
        run_finetune(EXPERIMENTS / f"echonet_{encoder}_lvef.yaml", CONFIG, splits_csv=None,
                     studies_csv=echo_converted / "studies.csv", labels_csv=echo_converted / "labels.csv",
                     pretrain_ckpt=None, out_ckpt=out / "best.ckpt", out_predictions=out / "predictions.csv",
                     out_metrics=out / "metrics.csv", threads=2)
        runs[encoder] = {"dir": out, "seconds": time.perf_counter() - t0,
                         "metrics": pd.read_csv(out / "metrics.csv"), "predictions": pd.read_csv(out / "predictions.csv")}
    return runs


def _best(metrics: pd.DataFrame, split: str, name: str) -> float:
    row = metrics[(metrics["stage"] == "best") & (metrics["split"] == split) & (metrics["metric"] == name)]
    return float(row["value"].iloc[0])


def test_phantom_release_has_the_distributed_layout(echo_phantom):
    filelist = pd.read_csv(echo_phantom / "FileList.csv")
    assert list(filelist.columns) == FILELIST_COLUMNS
    assert filelist["FileName"].str.fullmatch(r"0X[0-9A-F]{16}").all()
    np.testing.assert_allclose(filelist["EF"], 100 * (filelist["EDV"] - filelist["ESV"]) / filelist["EDV"])
    assert set(filelist["Split"]) == {"TRAIN", "VAL", "TEST"}
    assert filelist["EF"].min() < 40 < filelist["EF"].max()  # HFrEF cases and controls
    tracings = pd.read_csv(echo_phantom / "VolumeTracings.csv")
    assert list(tracings.columns) == ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]
    per_video = tracings.groupby("FileName")["Frame"].agg(["nunique", "size"])
    assert (per_video["nunique"] == 2).all() and (per_video["size"] == 42).all()  # ES + ED, axis + 20 chords
    assert tracings["FileName"].str.endswith(".avi").all()


def test_tracings_give_the_listed_volumes_by_the_method_of_discs(echo_phantom):
    """Disc volumes Σ π (d/2)² h from the 20 chords (h = axis length / 20) match FileList ESV/EDV."""
    filelist = pd.read_csv(echo_phantom / "FileList.csv").set_index("FileName")
    tracings = pd.read_csv(echo_phantom / "VolumeTracings.csv")
    cm_per_px = 0.14
    for name, rows in list(tracings.groupby("FileName"))[:6]:
        volumes = []
        for _, frame in rows.groupby("Frame"):
            axis, chords = frame.iloc[0], frame.iloc[1:]
            length = math.hypot(axis.X2 - axis.X1, axis.Y2 - axis.Y1) * cm_per_px
            d = np.hypot(chords.X2 - chords.X1, chords.Y2 - chords.Y1) * cm_per_px
            volumes.append(float(np.sum(np.pi * (d / 2) ** 2 * length / len(chords))))
        listed = filelist.loc[name.removesuffix(".avi")]
        assert min(volumes) == pytest.approx(listed.ESV, rel=0.1)
        assert max(volumes) == pytest.approx(listed.EDV, rel=0.1)


def test_adapter_flags_the_injected_faults(echo_phantom, echo_converted):
    faults = pd.read_csv(echo_phantom / "faults.csv", keep_default_na=False)
    files = pd.read_csv(echo_converted / "files.csv").set_index("file_name")
    for row in faults.itertuples():
        if row.expected_status:
            assert files.loc[row.file_name, "status"] == row.expected_status, row.fault
        else:  # the unlisted AVI: counted in the flow, never converted
            assert row.file_name not in files.index
    assert (files["status"] == "ok").sum() == VIDEOS
    flow = pd.read_csv(echo_converted / "flow.csv")
    assert int(flow.loc[flow["stage"] == "unlisted", "count"].iloc[0]) == 1


@pytest.mark.slow
def test_both_encoders_beat_the_mean_predictor(echo_runs):
    for encoder, run in echo_runs.items():
        m, preds = run["metrics"], run["predictions"]
        mae, mean_mae = _best(m, "test", "mae"), _best(m, "test", "mae_train_mean")
        n_test = int((preds["split"] == "test").sum())
        print(f"{encoder}: test MAE {mae:.2f} vs mean predictor {mean_mae:.2f} (n = {n_test}, {run['seconds']:.0f} s)")
        assert mae < mean_mae, f"{encoder}: test MAE {mae:.2f} is not below the mean predictor's {mean_mae:.2f}"
        assert n_test == VIDEOS - round(PHANTOM['splits'][0] * VIDEOS) - round(PHANTOM['splits'][1] * VIDEOS)
        assert set(preds["split"]) == {"val", "test"} and preds["attn_A4C"].eq(1.0).all()


@pytest.mark.slow
def test_echo_statistics_and_report_compare_the_encoders(echo_runs, tmp_path):
    config = {**CONFIG, "stats": {**CONFIG["stats"], "bootstrap": 200}}
    # the stats stage names experiments by their folder: give them the rule's names
    named = []
    for encoder, run in echo_runs.items():
        folder = tmp_path / "finetune" / f"echonet_{encoder}_lvef"
        folder.mkdir(parents=True)
        for f in ("predictions.csv", "metrics.csv"):
            (folder / f).write_bytes((run["dir"] / f).read_bytes())
        named.append(folder / "predictions.csv")
    write_echo_stats(named, tmp_path / "stats" / "echonet", config)
    comparison = pd.read_csv(tmp_path / "stats" / "echonet" / "comparison.csv")
    assert list(comparison[["experiment_a", "experiment_b"]].iloc[0]) == ["echonet_perceiver_io_lvef",
                                                                           "echonet_r2plus1d_18_lvef"]
    row = comparison.iloc[0]
    assert row["difference"] == pytest.approx(row["mae_a"] - row["mae_b"])
    assert row["ci_low"] <= row["difference"] <= row["ci_high"] and 0 <= row["p_value"] <= 1
    regression = pd.read_csv(tmp_path / "stats" / "echonet" / "regression.csv")
    for name in ("echonet_perceiver_io_lvef", "echonet_r2plus1d_18_lvef"):
        r = regression[regression["experiment"] == name].set_index("metric")["value"]
        assert {"mae", "rmse", "r2", "bland_altman_bias"} <= set(r.index)
        assert r["mae"] < r["mae_mean_predictor"]
    auroc = pd.read_csv(tmp_path / "stats" / "echonet" / "auroc.csv")
    assert set(auroc["task"]) == {"heart_failure"} and auroc["auc"].notna().all()
    html = build_report(tmp_path, tmp_path / "report" / "index.html", {"echonet": True}).read_text()
    assert "Paired comparison of absolute errors" in html and "p (Wilcoxon)" in html
    assert html.count("<img") >= 3  # two Bland–Altman plots and the HFrEF ROC curves


def test_each_run_logs_the_recipe_resolved_from_config_file_and_cohort_overrides(echo_runs):
    overrides = CONFIG["external"]["echonet"]["finetune"]["overrides"]
    for encoder, run in echo_runs.items():
        logged = FinetuneRecipe.from_yaml(run["dir"] / "hparams.yaml")
        assert logged == resolve_recipe(EXPERIMENTS / f"echonet_{encoder}_lvef.yaml", CONFIG)
        # the three layers: the file's encoder and view, the demo's overrides over the file's recipe
        own = {**overrides, **(overrides.get("by_encoder") or {}).get(encoder, {})}
        assert (logged.cohort, logged.video["name"], logged.data.view) == ("echonet", encoder, "A4C")
        assert (logged.budget.epochs, logged.data.batch_size) == (own["epochs"], own["batch_size"])
        assert logged.clip.frames == {**overrides.get("clip", {}), **own.get("clip", {})}.get("frames",
                                                                                            logged.clip.frames)
        predictions = run["predictions"]
        assert set(predictions["experiment"]) == {f"echonet_{encoder}_lvef"} and set(predictions["cohort"]) == {"echonet"}
