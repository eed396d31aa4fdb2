"""``cinefm stats`` writes what the stats rule writes, where the rule writes it."""

from cinefm.cli import main


def test_stats_command_writes_tables_to_out_and_figures_to_out_figures(full_results, tmp_path):
    predictions = sorted(str(p) for p in (full_results / "finetune").glob("*/predictions.csv"))
    out = tmp_path / "stats"
    assert main(["stats", "--predictions", *predictions, "--out", str(out)]) == 0
    tables = sorted(p.name for p in out.glob("*.csv"))
    assert tables == sorted(p.name for p in (full_results / "stats").glob("*.csv"))  # same tables as write_stats
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert any(f.startswith("roc_") for f in figures) and any(f.startswith("bland_altman_") for f in figures)
    assert not list(out.glob("*.png"))  # as the rule: no figure beside the tables
