"""UK Biobank adapter on its synthetic release: zips + manifests as delivered -> HDF5, statuses, joined LVEF."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from cinefm.external.release import Preprocess
from cinefm.external.ukb import ExternalError, classify_series, read_lvef, read_manifest, run_ukb
from cinefm.phantom.releases import generate_ukb

from .release_checks import KEY, assert_no_phi, h5_shapes, mtimes, tables

PRE = Preprocess(frame_size=24, min_frames=4)


@pytest.fixture(scope="module")
def ukb(tmp_path_factory):
    root = tmp_path_factory.mktemp("ukb_release")
    release = generate_ukb(root, participants=2, seed=3, size=24, slices=4, frames=8)
    out = tmp_path_factory.mktemp("ukb_out")
    run_ukb(release["root"], out, key=KEY, lvef=release["lvef"], pre=PRE)
    return release, out, pd.read_csv(release["truth"], dtype={"eid": str}, keep_default_na=False)


def test_every_good_study_lands_with_its_views_slices_and_frames(ukb):
    release, out, truth = ukb
    t = tables(out)
    files = t["files"].assign(eid=t["files"]["source_id"].str.split("_").str[0])
    for row in truth.itertuples():
        mine = files[files["eid"] == row.eid]
        assert set(mine["study_id"]) and len(set(mine["study_id"])) == 1
        study = t["studies"][t["studies"]["study_id"] == mine["study_id"].iloc[0]].iloc[0]
        shapes = h5_shapes(out, study["h5_relpath"])
        assert set(shapes) == set(row.views.split(";")), row
        for shape in shapes.values():
            assert shape[1:] == (row.frames, PRE.frame_size, PRE.frame_size)
        if "SAX" in shapes:
            assert shapes["SAX"][0] == row.sax_slices  # b1..b4, the repeat of b2 counted once
        for lax in ("2CH", "3CH", "4CH"):
            if lax in shapes:
                assert shapes[lax][0] == 1


def test_inline_series_are_skipped_and_repeated_slices_keep_the_latest(ukb):
    _, out, truth = ukb
    series = tables(out)["series"]
    assert (series.loc[series["series"] == "CINE_segmented_SAX_InlineVF", "status"] == "skipped").all()
    good = series[series["study_id"].isin(series.loc[series["series"].str.endswith("#2"), "study_id"])]
    assert good["study_id"].nunique() == (truth["fault"] == "").sum()  # the good participants' b2 is repeated
    for _, g in good.groupby("study_id"):
        b2 = g[g["series"].str.startswith("CINE_segmented_SAX_b2")].set_index("series")["status"]
        assert b2.to_dict() == {"CINE_segmented_SAX_b2#1": "repeat", "CINE_segmented_SAX_b2#2": "kept"}
    assert set(good.loc[good["series"].str.startswith("CINE_segmented_LAX"), "unit"].astype(str)) == {"20208"}


def test_each_faulty_zip_gets_its_status_and_reason(ukb):
    _, out, truth = ukb
    files = tables(out)["files"]
    for row in truth.itertuples():
        for field, want in (("20209", row.sax_status), ("20208", row.lax_status)):
            got = files[files["source_id"] == f"{row.eid}_{field}_2_0"].iloc[0]
            assert got["status"] == want, (row.fault, field, got["reason"])
    reasons = dict(zip(files["status"], files["reason"].str.split(":").str[0], strict=True))
    assert reasons["corrupt"] == "corrupt_zip"
    assert reasons["inconsistent"] == "manifest_absent_files"
    assert reasons["no_cine"] == "no_cine"
    flow = tables(out)["flow"]
    assert int(flow.query("level == 'zips' and stage == 'input'")["count"].iloc[0]) == 2 * len(truth)


def test_lvef_and_volumes_are_joined_from_the_table(ukb):
    _, out, truth = ukb
    t = tables(out)
    files = t["files"].assign(eid=t["files"]["source_id"].str.split("_").str[0]).drop_duplicates("eid")
    labels = t["labels"].merge(files[["study_id", "eid"]], on="study_id").merge(truth, on="eid", suffixes=("", "_t"))
    assert len(labels) == len(truth)
    for col in ("lvef", "edv_ml", "esv_ml"):
        np.testing.assert_allclose(labels[col].astype(float), labels[f"{col}_t"].astype(float), atol=0.1)


def test_no_phi_or_eid_outside_the_id_map(ukb):
    _, out, truth = ukb
    assert_no_phi(out, list(truth["eid"]))


def test_rerun_rewrites_nothing(ukb):
    release, out, truth = ukb
    before, files_before = mtimes(out), tables(out)["files"]
    run_ukb(release["root"], out, key=KEY, lvef=release["lvef"], pre=PRE)
    assert mtimes(out) == before
    pd.testing.assert_frame_equal(tables(out)["files"], files_before)
    assert set(tables(out)["studies"]["status"]) <= {"unchanged", "failed"}


def test_manifest_quirks_are_read_as_ukb_writes_them():
    text = ("filename,patientid,studyid,aet,host,date,time,size,series discription\n"
            "a.dcm,123,1,UKBB,h,Aug 30, 2015,10:15:00,100,CINE_segmented_SAX_b1\n")
    df = read_manifest(text)
    assert df.loc[0, "series discription"] == "CINE_segmented_SAX_b1" and df.loc[0, "filename"] == "a.dcm"
    assert df.attrs["skipped_lines"] == 0
    assert read_manifest(text + "b.dcm,1,2,3,4,5,6,7,8,9,10\n").attrs["skipped_lines"] == 1
    assert classify_series("CINE_segmented_SAX_InlineVF")[0] == "" and classify_series("CINE_segmented_LAX_3Ch")[0] == "3CH"


def test_unreadable_inputs_raise_naming_the_file(tmp_path):
    bad = tmp_path / "lvef.csv"
    bad.write_text("id,ef\n1,50\n")
    with pytest.raises(ExternalError, match="eid"):
        read_lvef(bad)
    showcase = tmp_path / "showcase.csv"
    showcase.write_text("eid,22420-2.0,22421-2.0,22422-2.0\n7,55.5,120,54\n")
    assert read_lvef(showcase)[("7", "2")] == {"lvef": 55.5, "edv_ml": 120.0, "esv_ml": 54.0}
    with pytest.raises(ExternalError, match="not a folder"):
        run_ukb(tmp_path / "absent", tmp_path / "out", key=KEY)
    (tmp_path / "zips").mkdir()
    (tmp_path / "zips" / "1_20209_2_0.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    files = run_ukb(tmp_path / "zips", tmp_path / "out", key=KEY, pre=PRE)
    assert files["status"].tolist() == ["corrupt"]
    with zipfile.ZipFile(tmp_path / "zips" / "2_20209_2_0.zip", "w") as zf:
        zf.writestr("manifest.csv", "filename,series discription\nx.dcm,CINE_segmented_SAX_b1\n")
    files = run_ukb(tmp_path / "zips", tmp_path / "out", key=KEY, pre=PRE)
    assert files.set_index("source_id").loc["2_20209_2_0", "status"] == "inconsistent"


def test_a_zip_without_manifest_takes_its_series_from_the_headers(ukb, tmp_path):
    release, _, truth = ukb
    good = truth[truth["fault"] == ""].iloc[0]
    (tmp_path / "zips").mkdir()
    for field in ("20209", "20208"):
        src = release["root"] / f"{good.eid}_{field}_2_0.zip"
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp_path / "zips" / src.name, "w") as zout:
            for name in zin.namelist():
                if not name.startswith("manifest."):
                    zout.writestr(name, zin.read(name))
    files = run_ukb(tmp_path / "zips", tmp_path / "out", key=KEY, pre=PRE)
    assert files["status"].tolist() == ["ok", "ok"]
    assert files["reason"].str.startswith("no_manifest").all()
    shapes = h5_shapes(tmp_path / "out", files["h5_relpath"].iloc[0])
    assert set(shapes) == {"SAX", "2CH", "3CH", "4CH"} and shapes["SAX"][0] == good.sax_slices
