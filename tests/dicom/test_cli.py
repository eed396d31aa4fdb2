"""``cinefm ingest``: same outputs as the rules, privacy enforced, no PHI in any output."""

import os
import stat

import pandas as pd
import pytest

from cinefm.cli import main
from cinefm.privacy import ENV_VAR, PrivacyError

PHI = ("Doe^Jane", "Jane", "MRN-778899", "19610304", "ACC-1001", "ACC-1002", "20230514")


def test_cli_writes_the_outputs_and_no_phi(archive, tmp_path, monkeypatch, as_text):
    monkeypatch.delenv(ENV_VAR, raising=False)
    out = tmp_path / "out"
    id_map = tmp_path / "secure" / "id_map.csv"
    assert main(["ingest", "--dicom-root", str(archive.root), "--out", str(out), "--phantom",
                 "--id-map", str(id_map)]) == 0
    for rel in ("ingest/files.parquet", "ingest/flow.csv", "ingest/flow.png", "ingest/studies.csv"):
        assert (out / rel).is_file()
    assert len(list((out / "h5").glob("*/*.h5"))) == 2
    leaks = {str(p.relative_to(out)): s for p in out.rglob("*") if p.is_file() for s in PHI if s in as_text(p)}
    assert not leaks
    assert stat.S_IMODE(os.stat(id_map).st_mode) == 0o600
    assert "MRN-778899" in id_map.read_text()


def test_real_data_without_a_key_stops(archive, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(PrivacyError, match=ENV_VAR):
        main(["ingest", "--dicom-root", str(archive.root), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o" / "h5").exists()


def test_a_site_key_gives_other_pseudonyms(archive, tmp_path, monkeypatch, ingested):
    monkeypatch.setenv(ENV_VAR, "a-site-secret-of-enough-length")
    assert main(["ingest", "--dicom-root", str(archive.root), "--out", str(tmp_path / "o")]) == 0
    ours = pd.read_parquet(tmp_path / "o" / "ingest" / "files.parquet")
    demo = pd.read_parquet(ingested / "ingest" / "files.parquet")
    assert not set(ours["patient_id"].dropna()) & set(demo["patient_id"].dropna())
    pd.testing.assert_series_equal(ours["status"], demo["status"])
