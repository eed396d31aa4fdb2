"""The label stage as a table and as the `cinefm labels` contract."""

import pandas as pd

from cinefm.cli import main
from cinefm.labels.table import label_reports


def test_cli_contract_columns_and_rules_labels(reports_csv, reports, tmp_path, capsys):
    out = tmp_path / "labels.csv"
    assert main(["labels", "--reports", str(reports_csv), "--out", str(out), "--backend", "rules"]) == 0
    assert "5 studies" in capsys.readouterr().out
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    diseases = ["hcm", "dcm", "prior_mi", "rv_dilation", "pericardial_effusion", "amyloidosis"]
    assert list(df.columns) == ["study_id", "patient_id", *diseases, "lvef", "heart_failure", "backend",
                                "model", "cue_set", "notes"]
    assert set(df["model"]) == {"negex+sections"} and set(df["cue_set"]) != {""}
    assert df["cue_set"].iloc[0].startswith("labels.yaml@")
    for sid, (_, expected, lvef) in reports.items():
        row = df.set_index("study_id").loc[sid]
        for d in diseases:
            want = expected.get(d, 0)
            assert row[d] == ("" if want is None else str(want)), (sid, d)
        assert row["lvef"] == ("" if lvef is None else str(lvef))
        assert row["heart_failure"] == ("" if lvef is None else str(int(lvef < 40)))
    assert "hedged" in df.set_index("study_id").loc["S02", "notes"]


def test_bad_rows_are_named_counted_and_skipped(tmp_path, labels_cfg, caplog):
    path = tmp_path / "in.csv"
    path.write_bytes(b'study_id,report_text\nS1,"HCM. LVEF 70%."\nS2,\nS1,"No HCM."\nS3,"DCM",extra\n'
                     b'S4,"Cardiac amylo\xefdosis."\n')
    out = label_reports(path, tmp_path / "out.csv", dict(labels_cfg, backend="rules"))
    assert list(out["study_id"]) == ["S1", "S4"]
    assert out.set_index("study_id").loc["S1", "hcm"] == 1
    for row, reason in [(2, "empty_report"), (3, "duplicate"), (4, "malformed"), (5, "non_utf8")]:
        assert f"in.csv row {row}: {reason}" in caplog.text
    assert "'empty_report': 1" in caplog.text


def test_reports_of_unknown_studies_are_counted_and_dropped(reports_csv, tmp_path, labels_cfg, caplog):
    out = label_reports(reports_csv, tmp_path / "out.csv", labels_cfg, known_studies={"S01", "S02"})
    assert list(out["study_id"]) == ["S01", "S02"]
    assert "'unknown_study': 3" in caplog.text
