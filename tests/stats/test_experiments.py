"""write_stats on real predictions.csv files: every table and figure, checked against the pure functions."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cinefm.config import REPO_ROOT
from cinefm.stats import delong_test, operating_points, regression_metrics, roc_auc_ci, write_stats
from cinefm.stats.experiments import StatsSettings, parse_experiment_name

CONFIG = {
    "stats": {"ci_level": 0.95, "bootstrap": 50, "bootstrap_seed": 3, "sensitivity_target": 0.9,
              "specificity_target": 0.8},
    "labels": {"heart_failure_lvef": 40},
}


def _identity(name: str) -> dict:
    """The identity columns a finetune run writes for the experiment ``name`` (canonically shaped)."""
    _, init, mode, percent = parse_experiment_name(name)
    return {"experiment": name, "cohort": "cmr", "init": init, "mode": mode, "fraction": int(percent) / 100}


def _predictions(rng, task, study_ids, target, score, name) -> pd.DataFrame:
    n = len(study_ids)
    split = np.where(np.arange(n) < n // 4, "train", "test")
    return pd.DataFrame({**_identity(name), "study_id": study_ids, "split": split, "task": task, "target": target,
                         "score": score, "attn_4CH": rng.random(n), "attn_SAX": rng.random(n)})


@pytest.fixture(scope="module")
def stats_run(tmp_path_factory):
    rng = np.random.default_rng(5)
    root = tmp_path_factory.mktemp("finetune")
    n = 120
    ids = [f"S{i:012x}" for i in range(n)]
    y = (rng.random(n) < 0.35).astype(float)
    y[[3, 50]] = np.nan  # uncertain labels
    lvef = rng.uniform(15, 70, n)
    specs = {
        "hcm_clip_transfer_100": ("hcm", y, rng.normal(size=n) + 1.5 * np.nan_to_num(y)),
        "hcm_kinetics_transfer_100": ("hcm", y, rng.normal(size=n) + 0.5 * np.nan_to_num(y)),
        "prior_mi_clip_linear_25": ("prior_mi", np.zeros(n), rng.random(n)),  # no case in the test split
        "lvef_clip_transfer_100": ("lvef", lvef, lvef + rng.normal(1, 4, n)),
        "lvef_kinetics_transfer_100": ("lvef", lvef, lvef + rng.normal(-2, 9, n)),
    }
    paths = []
    for name, (task, target, score) in specs.items():
        d = root / name
        d.mkdir()
        _predictions(rng, task, ids, target, score, name).to_csv(d / "predictions.csv", index=False)
        paths.append(d / "predictions.csv")
    out = tmp_path_factory.mktemp("stats")
    (out / "roc_removed_experiment.png").write_bytes(b"stale")
    written = write_stats(paths, out, CONFIG)
    return out, written, {k: pd.read_csv(p) for k, p in zip(specs, paths, strict=True)}


def _test_rows(df):
    return df[df["split"] == "test"]


def test_every_table_and_figure_is_written(stats_run):
    out, written, _ = stats_run
    names = sorted(p.name for p in written)
    for f in ("auroc.csv", "delong.csv", "thresholds.csv", "regression.csv",
              "bland_altman_lvef_clip_transfer_100.png", "bland_altman_lvef_kinetics_transfer_100.png",
              "roc_hcm_transfer_100.png", "roc_heart_failure_transfer_100.png"):
        assert f in names
        assert (out / f).stat().st_size > 0
    assert not any(n.startswith("roc_prior_mi") for n in names)  # one class: no curve
    assert not (out / "roc_removed_experiment.png").exists()  # stale figure of an earlier run


def test_auroc_rows_equal_roc_auc_ci_on_the_test_split(stats_run):
    out, _, preds = stats_run
    auroc = pd.read_csv(out / "auroc.csv").set_index("experiment")
    t = _test_rows(preds["hcm_clip_transfer_100"])
    r = roc_auc_ci(t["target"], t["score"])
    row = auroc.loc["hcm_clip_transfer_100"]
    assert (row.auc, row.ci_low, row.ci_high, row.n_cases, row.n) == pytest.approx(
        (r.auc, r.ci_low, r.ci_high, r.n_cases, r.n_cases + r.n_controls))
    assert (row.task, row.init, row["mode"], str(row.fraction)) == ("hcm", "clip", "transfer", "100")
    hf = auroc.loc["lvef_clip_transfer_100"]
    t = _test_rows(preds["lvef_clip_transfer_100"])
    ref = roc_auc_ci((t["target"] < 40).astype(int), t["score"], direction=">")
    assert hf.task == "heart_failure" and hf.direction == ">" and hf.auc == pytest.approx(ref.auc)
    mi = auroc.loc["prior_mi_clip_linear_25"]
    assert np.isnan(mi.auc) and "only one class" in mi.note


def test_delong_pairs_pretrained_with_baseline_of_the_same_task_mode_and_fraction(stats_run):
    out, _, preds = stats_run
    d = pd.read_csv(out / "delong.csv")
    assert sorted(d["experiment_a"]) == ["hcm_clip_transfer_100", "lvef_clip_transfer_100"]
    row = d.set_index("experiment_a").loc["hcm_clip_transfer_100"]
    assert row.experiment_b == "hcm_kinetics_transfer_100"
    a, b = _test_rows(preds["hcm_clip_transfer_100"]), _test_rows(preds["hcm_kinetics_transfer_100"])
    t = delong_test(a["target"], a["score"], b["score"])
    assert (row.statistic, row.p_value, row.ci_low, row.ci_high, row.difference) == pytest.approx(
        (t.statistic, t.p_value, t.ci_low, t.ci_high, t.auc_a - t.auc_b))
    assert row.n == len(a)


def test_thresholds_and_regression_use_the_configured_targets_and_bootstrap(stats_run):
    out, _, preds = stats_run
    th = pd.read_csv(out / "thresholds.csv")
    hcm = th[th.experiment == "hcm_kinetics_transfer_100"].set_index("point")
    assert list(hcm.index) == ["youden", "sensitivity_0.9", "specificity_0.8"]
    t = _test_rows(preds["hcm_kinetics_transfer_100"])
    ref = operating_points(t["target"], t["score"], specificity_target=0.8)
    assert hcm.loc["specificity_0.8", "threshold"] == pytest.approx(ref.loc["specificity_0.8", "threshold"])
    reg = pd.read_csv(out / "regression.csv")
    clip = reg[reg.experiment == "lvef_clip_transfer_100"].set_index("metric")
    t = _test_rows(preds["lvef_clip_transfer_100"])
    m = regression_metrics(t["target"], t["score"], n_bootstrap=50, seed=3).set_index("metric")
    assert clip.loc["mae", ["value", "ci_low", "ci_high"]].tolist() == pytest.approx(
        m.loc["mae", ["value", "ci_low", "ci_high"]].tolist())
    assert clip.loc["bland_altman_bias", "value"] == pytest.approx((t["score"] - t["target"]).mean())


def test_experiment_names_are_split_from_the_right():
    assert parse_experiment_name("pericardial_effusion_clip_linear_10") == ("pericardial_effusion", "clip",
                                                                            "linear", "10")
    assert parse_experiment_name("custom") == ("custom", None, None, None)


def test_missing_test_split_and_columns_are_reported_with_the_file(tmp_path):
    d = tmp_path / "hcm_clip_transfer_100"
    d.mkdir()
    pd.DataFrame({**_identity(d.name), "study_id": ["a"], "split": ["train"], "task": ["hcm"], "target": [1],
                  "score": [0.2]}).to_csv(d / "predictions.csv", index=False)
    with pytest.raises(ValueError, match=r"predictions.csv: no rows with split == 'test'"):
        write_stats([d / "predictions.csv"], tmp_path / "out", CONFIG)
    pd.DataFrame({"study_id": ["a"], "split": ["test"]}).to_csv(d / "predictions.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['task', 'target', 'score'\]"):
        write_stats([d / "predictions.csv"], tmp_path / "out", CONFIG)


def test_default_config_feeds_every_stats_setting():
    cfg = yaml.safe_load(Path(REPO_ROOT / "config" / "config.yaml").read_text())
    s = StatsSettings.from_config(cfg)
    assert (s.ci_level, s.sensitivity_target, s.specificity_target, s.heart_failure_lvef) == (0.95, 0.9, 0.9, 40)


def test_a_multi_disease_run_becomes_one_experiment_per_disease_paired_by_disease(tmp_path):
    rng = np.random.default_rng(9)
    n = 80
    ids = [f"S{i:012x}" for i in range(n)]
    labels = {task: (rng.random(n) < 0.4).astype(float) for task in ("hcm", "dcm")}
    paths = []
    for init, strength in (("clip", 2.0), ("kinetics", 0.3)):
        frames = []
        for task, y in labels.items():
            frames.append(_predictions(rng, task, ids, y, rng.normal(size=n) + strength * y,
                                       f"diseases_{init}_transfer_100"))
        d = tmp_path / f"diseases_{init}_transfer_100"
        d.mkdir()
        pd.concat(frames).to_csv(d / "predictions.csv", index=False)
        paths.append(d / "predictions.csv")
    out = tmp_path / "stats"
    write_stats(paths, out, CONFIG)
    auroc = pd.read_csv(out / "auroc.csv")
    assert sorted(auroc["experiment"]) == ["diseases_clip_transfer_100/dcm", "diseases_clip_transfer_100/hcm",
                                           "diseases_kinetics_transfer_100/dcm",
                                           "diseases_kinetics_transfer_100/hcm"]
    delong = pd.read_csv(out / "delong.csv")
    assert sorted(delong["task"]) == ["dcm", "hcm"]
    for _, row in delong.iterrows():
        assert row["experiment_a"].endswith("/" + row["task"]) and row["experiment_b"].endswith("/" + row["task"])


def test_experiment_identity_comes_from_the_file_not_the_folder_name(tmp_path):
    rng = np.random.default_rng(4)
    n = 60
    ids = [f"S{i:012x}" for i in range(n)]
    y = (rng.random(n) < 0.4).astype(float)
    paths = []
    for folder, name, strength in (("run_a", "hcm_clip_finetune_25", 2.0), ("run_b", "hcm_kinetics_finetune_25", 0.3)):
        d = tmp_path / folder
        d.mkdir()
        _predictions(rng, "hcm", ids, y, rng.normal(size=n) + strength * y, name).to_csv(d / "predictions.csv",
                                                                                       index=False)
        paths.append(d / "predictions.csv")
    out = tmp_path / "stats"
    write_stats(paths, out, CONFIG)
    auroc = pd.read_csv(out / "auroc.csv", dtype={"fraction": str}).set_index("experiment")
    assert list(auroc.index) == ["hcm_clip_finetune_25", "hcm_kinetics_finetune_25"]
    assert list(auroc["init"]) == ["clip", "kinetics"] and set(auroc["mode"]) == {"finetune"}
    assert set(auroc["fraction"]) == {"25"}
    delong = pd.read_csv(out / "delong.csv")  # paired by the identity: same task, mode and fraction
    assert (delong["experiment_a"].tolist(), delong["experiment_b"].tolist()) == (["hcm_clip_finetune_25"],
                                                                                  ["hcm_kinetics_finetune_25"])
    assert (out / "roc_hcm_finetune_25.png").is_file()
    pd.read_csv(paths[0]).drop(columns=["init"]).to_csv(paths[0], index=False)
    with pytest.raises(ValueError, match=r"run_a/predictions.csv: missing identity column\(s\) \['init'\]"):
        write_stats(paths, out, CONFIG)


def test_operating_points_are_chosen_on_validation_and_reported_on_test(tmp_path):
    rng = np.random.default_rng(8)
    n = 160
    y = (rng.random(n) < 0.4).astype(float)
    name = "hcm_clip_transfer_100"
    split = np.where(np.arange(n) < n // 2, "val", "test")
    d = tmp_path / name
    d.mkdir()
    pd.DataFrame({**_identity(name), "study_id": [f"S{i}" for i in range(n)], "split": split, "task": "hcm",
                  "target": y, "score": rng.normal(size=n) + y}).to_csv(d / "predictions.csv", index=False)
    write_stats([d / "predictions.csv"], tmp_path / "stats", CONFIG)
    th = pd.read_csv(tmp_path / "stats" / "thresholds.csv")
    assert set(th["chosen_on"]) == {"val"} and list(th["split"]) == ["val", "test"] * 3
    preds = pd.read_csv(d / "predictions.csv")
    val = preds[preds.split == "val"]
    ref = operating_points(val["target"], val["score"], specificity_target=0.8)
    for point in ref.index:
        rows = th[th.point == point].set_index("split")
        assert rows.loc["val", "threshold"] == rows.loc["test", "threshold"] == pytest.approx(ref.loc[point, "threshold"])
