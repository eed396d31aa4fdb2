"""Echo statistics: HFrEF operating points are chosen on the release's VAL videos and applied to TEST."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cinefm.config import load_config
from cinefm.stats.echo import write_echo_stats
from cinefm.stats.experiments import TABLE_COLUMNS


def _predictions(folder, name: str, seed: int, noise: float, n_val: int = 40, n_test: int = 60):
    """An echo run's predictions.csv: EF targets with a share < 40 %, predictions = target + noise."""
    truth, rng = np.random.default_rng(0), np.random.default_rng(seed)  # one release: the same targets
    rows = []
    for split, n in (("val", n_val), ("test", n_test)):
        ef = np.concatenate([truth.uniform(15, 39, n // 3), truth.uniform(41, 75, n - n // 3)])
        for i, (t, p) in enumerate(zip(ef, ef + rng.normal(0, noise, n), strict=True)):
            rows.append({"experiment": name, "cohort": "echonet", "init": "kinetics", "mode": "transfer",
                         "fraction": 1.0, "study_id": f"{split}{i:03d}", "split": split, "task": "lvef",
                         "target": t, "score": p})
    path = folder / name / "predictions.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def config():
    cfg = load_config()
    cfg["stats"]["bootstrap"] = 50
    return cfg


def test_operating_points_are_chosen_on_val_and_applied_unchanged_to_test(tmp_path, config):
    paths = [_predictions(tmp_path, "echonet_a_lvef", 1, 4.0), _predictions(tmp_path, "echonet_b_lvef", 2, 9.0)]
    write_echo_stats(paths, tmp_path / "stats", config)
    t = pd.read_csv(tmp_path / "stats" / "thresholds.csv")
    assert list(t.columns) == TABLE_COLUMNS["thresholds.csv"]
    assert set(t["experiment"]) == {"echonet_a_lvef", "echonet_b_lvef"}
    assert set(t["chosen_on"]) == {"val"} and set(t["split"]) == {"val", "test"}
    assert set(t["task"]) == {"heart_failure"}
    for (_, point), rows in t.groupby(["experiment", "point"]):
        assert rows["threshold"].nunique() == 1, f"{point}: the test row must reuse the val threshold"
    # the sensitivity target is met on val (where the point was chosen)
    sens = t[(t["point"] == "sensitivity_target") & (t["split"] == "val")]["sensitivity"]
    assert (sens >= config["stats"]["sensitivity_target"]).all()


def test_without_val_rows_the_points_are_chosen_on_test_and_say_so(tmp_path, config):
    path = _predictions(tmp_path, "echonet_a_lvef", 1, 4.0)
    df = pd.read_csv(path)
    df[df["split"] == "test"].to_csv(path, index=False)
    write_echo_stats([path], tmp_path / "stats", config)
    t = pd.read_csv(tmp_path / "stats" / "thresholds.csv")
    assert set(t["chosen_on"]) == {"test"} and set(t["split"]) == {"test"}
