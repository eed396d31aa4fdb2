"""Kaggle Data Science Bowl adapter on its synthetic release: the set's quirks, faults, volumes and splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cinefm.external.kaggle import ExternalError, run_kaggle
from cinefm.external.release import Preprocess
from cinefm.phantom.releases import PHI_ID, generate_kaggle

from .release_checks import KEY, assert_no_phi, h5_shapes, mtimes, tables

PRE = Preprocess(frame_size=24, min_frames=4)


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    root = tmp_path_factory.mktemp("kaggle_release")
    release = generate_kaggle(root, studies=3, seed=2, size=24, slices=6, frames=8)
    out = tmp_path_factory.mktemp("kaggle_out")
    run_kaggle(release["root"], out, key=KEY, pre=PRE)
    truth = pd.read_csv(release["truth"], dtype={"Id": str}, keep_default_na=False)
    return release, out, truth


def test_every_good_study_lands_with_its_slices_frames_and_split(kaggle):
    _, out, truth = kaggle
    files = tables(out)["files"]
    first = files[files["status"] != "duplicate"].drop_duplicates("source_id").set_index("source_id")
    for row in truth[truth["status"] == "ok"].itertuples():
        f = first.loc[row.Id]
        assert f["split"] == row.split
        shapes = h5_shapes(out, f["h5_relpath"])
        assert shapes == {"SAX": (row.sax_slices, row.frames, 24, 24), "2CH": (1, row.frames, 24, 24),
                          "4CH": (1, row.frames, 24, 24)}
    assert {"train", "val", "test"} <= set(first["split"])  # validate/validate/ (doubled nesting) read too


def test_the_sets_quirks_get_a_status_per_series_and_notes(kaggle):
    _, out, truth = kaggle
    t = tables(out)
    quirky = truth[truth["series"].str.contains("matrix")].iloc[0]
    sid = t["files"].set_index("source_id").loc[quirky.Id, "study_id"]
    got = t["series"][(t["series"]["study_id"] == sid) & (t["series"]["view"] == "SAX")]
    want = dict(kv.split("=") for kv in quirky.series.split(";"))
    assert dict(zip(got["series"], got["status"], strict=True)) == want
    reason = t["studies"].set_index("study_id").loc[sid, "reason"]
    assert "missing_slices" in reason and f"frames_resampled: to {quirky.frames} frames" in reason


def test_each_fault_gets_its_status(kaggle):
    _, out, truth = kaggle
    files = tables(out)["files"]
    for row in truth[truth["status"] != "ok"].itertuples():
        assert files.set_index("source_id").loc[row.Id, "status"] == row.status, row
    no_dicom = truth[truth["fault"] == "no_dicom"].iloc[0]
    assert "no_dicom" in files.set_index("source_id").loc[no_dicom.Id, "reason"]
    dup = truth[truth["fault"] == "duplicate"].iloc[0]
    assert sorted(files.loc[files["source_id"] == dup.Id, "status"]) == ["duplicate", "ok"]


def test_lvef_is_diastole_minus_systole_over_diastole(kaggle):
    _, out, truth = kaggle
    t = tables(out)
    ids = t["files"][t["files"]["status"] == "ok"][["source_id", "study_id"]]
    labels = t["labels"].merge(ids, on="study_id").merge(truth, left_on="source_id", right_on="Id")
    assert len(labels) == (truth["status"] == "ok").sum()
    np.testing.assert_allclose(labels["lvef_x"].astype(float), labels["lvef_y"].astype(float), atol=0.1)
    np.testing.assert_allclose(labels["edv_ml"].astype(float), labels["diastole"].astype(float), atol=0.1)
    assert set(labels["split_x"]) >= {"test"}  # test volumes come from solution.csv


def test_no_phi_in_any_output(kaggle):
    _, out, _ = kaggle
    assert_no_phi(out, [PHI_ID])


def test_rerun_rewrites_nothing(kaggle):
    release, out, _ = kaggle
    before = mtimes(out)
    run_kaggle(release["root"], out, key=KEY, pre=PRE)
    assert mtimes(out) == before


def test_a_folder_that_is_not_the_download_is_named_in_the_error(tmp_path):
    with pytest.raises(ExternalError, match="train/, validate/, test/"):
        run_kaggle(tmp_path, tmp_path / "out", key=KEY)


def test_worker_processes_give_the_same_outputs(kaggle, tmp_path):
    release, out, _ = kaggle
    run_kaggle(release["root"], tmp_path, key=KEY, pre=PRE, jobs=2)
    for name in ("files", "series", "studies", "labels", "flow"):
        a, b = tables(out)[name], tables(tmp_path)[name]
        if name == "studies":
            a, b = a.drop(columns="status"), b.drop(columns="status")  # unchanged vs written
        pd.testing.assert_frame_equal(a, b)
    assert mtimes(tmp_path).keys() == mtimes(out).keys()


def test_the_training_data_reader_reads_the_studies_as_ingested_ones(kaggle):
    from cinefm.data.h5 import H5Reader, scan_series

    _, out, truth = kaggle
    studies = tables(out)["studies"].query("status != 'failed'")
    series = scan_series(studies.assign(h5=[str(out / "h5" / r) for r in studies["h5_relpath"]]))
    assert set(series["view"]) == {"SAX", "2CH", "4CH"}
    assert len(series) == truth.loc[truth["status"] == "ok", "sax_slices"].sum() + 2 * len(studies)
    clip = H5Reader().read(series["h5"].iloc[0], series["view"].iloc[0], 0)
    assert clip.shape == (8, 24, 24) and clip.dtype == np.uint8
