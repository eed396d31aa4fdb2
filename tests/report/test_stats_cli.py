"""``cinefm stats`` writes what the stats rule writes, where the rule writes it."""

import yaml

from cinefm.cli import main
from cinefm.config import DEFAULT_CONFIG


def test_stats_command_writes_tables_to_out_and_figures_to_out_figures(full_results, tmp_path):
    predictions = sorted(str(p) for p in (full_results / "finetune").glob("*/predictions.csv"))
    out = tmp_path / "stats"
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["labels"]["diseases"] = ["hcm", "dcm"]  # the labels the fixture has
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cohort = ["--config", str(tmp_path / "config.yaml"), "--labels", str(full_results / "labels" / "labels.csv"),
              "--splits", str(full_results / "splits" / "splits.csv"),
              "--fractions", str(full_results / "splits" / "train_fractions.csv")]
    assert main(["stats", "--predictions", *predictions, "--out", str(out), *cohort]) == 0
    tables = sorted(p.name for p in out.glob("*.csv"))
    assert tables == sorted(p.name for p in (full_results / "stats").glob("*.csv"))  # same tables as write_stats
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert any(f.startswith("roc_") for f in figures) and any(f.startswith("bland_altman_") for f in figures)
    assert "lvef_subgroups.csv" in tables and "lvef_subgroups.png" in figures
    assert "view_attention.csv" in tables and "view_attention.png" in figures
    assert not list(out.glob("*.png"))  # as the rule: no figure beside the tables
