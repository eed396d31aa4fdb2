"""Exclusion flow: counts add up at every level and every exclusion has its reason."""

import pandas as pd

from cinefm.dicom.flow import reason_code


def test_counts_add_up_at_every_level(ingested):
    flow = pd.read_csv(ingested / "ingest" / "flow.csv", keep_default_na=False)
    for level, part in flow.groupby("level"):
        n_in = part.loc[part["stage"].eq("input"), "count"].sum()
        n_out = part.loc[part["stage"].isin(["excluded", "kept"]), "count"].sum()
        assert n_in == n_out, level
    kept = flow[flow["stage"].eq("kept")].set_index("level")["count"]
    assert kept["studies"] == 2 and kept["patients"] == 1


def test_every_file_exclusion_is_counted_by_status_and_reason(ingested, archive):
    flow = pd.read_csv(ingested / "ingest" / "flow.csv", keep_default_na=False)
    files = flow[flow["level"].eq("files")]
    assert files.loc[files["stage"].eq("input"), "count"].item() == len(archive.truth)
    got = files[files["stage"].eq("excluded")].groupby("status")["count"].sum().to_dict()
    want = pd.Series(archive.truth).value_counts().drop("ok").to_dict()
    assert got == want
    reasons = set(files["reason"])
    assert {"truncated", "duplicate_content", "duplicate_sop", "missing_frame", "matrix", "exclude_pattern"} <= reasons


def test_series_and_study_levels_name_their_exclusions(ingested):
    flow = pd.read_csv(ingested / "ingest" / "flow.csv", keep_default_na=False)
    series = flow[flow["level"].eq("series") & flow["stage"].eq("excluded")]
    assert set(series["status"]) == {"not_cine", "inconsistent"}
    views = flow[flow["stage"].eq("view")].set_index("status")["count"].to_dict()
    assert views == {"4CH": 1, "3CH": 0, "2CH": 1, "SAX": 2}


def test_flow_png_is_written(ingested):
    assert (ingested / "ingest" / "flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reason_code_is_the_text_before_the_colon():
    assert reason_code("missing_frame: trigger times jump") == "missing_frame"
    assert reason_code(None) == "" and reason_code("") == ""
