"""``cinefm phantom`` writes the cohort with the options of a config file."""

from __future__ import annotations

import pandas as pd
import yaml

from cinefm.cli import main
from cinefm.config import REPO_ROOT


def test_cli_writes_the_cohort_using_the_config_phantom_section(tmp_path, capsys):
    cfg = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    cfg["phantom"].update(studies_per_patient=[1, 1], frames=[20, 20], sax_slices=[8, 8], faults=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["phantom", "--out", str(out), "--patients", "2", "--seed", "3", "--config", str(path)]) == 0
    truth = pd.read_csv(out / "truth.csv")
    assert len(truth) == 2
    assert set(pd.read_csv(out / "faults.csv").fault) == {"non_cine"}  # no injected faults
    assert "truth" in capsys.readouterr().out
