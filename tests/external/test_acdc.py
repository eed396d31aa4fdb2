"""ACDC adapter on its synthetic release: NIfTI + Info.cfg as distributed -> HDF5, volumes from masks, diseases."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

from cinefm.external.acdc import ExternalError, run_acdc
from cinefm.external.release import Preprocess
from cinefm.phantom.releases import generate_acdc

from .release_checks import KEY, assert_no_phi, h5_shapes, mtimes, tables

PRE = Preprocess(frame_size=24, min_frames=4)


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    root = tmp_path_factory.mktemp("acdc_release")
    release = generate_acdc(root, patients=5, seed=4, size=24, slices=4, frames=8)
    out = tmp_path_factory.mktemp("acdc_out")
    run_acdc(release["root"], out, key=KEY, pre=PRE)
    truth = pd.read_csv(release["truth"], keep_default_na=False)
    files = tables(out)["files"].merge(truth, left_on="source_id", right_on="patient", suffixes=("", "_t"))
    assert len(files) == len(truth)
    return release, out, files


def test_every_good_patient_lands_with_its_slices_and_frames(acdc):
    _, out, files = acdc
    ok = files[files["status_t"] == "ok"]
    assert len(ok) == 5
    for row in ok.itertuples():
        assert h5_shapes(out, row.h5_relpath) == {"SAX": (row.slices, row.frames, PRE.frame_size, PRE.frame_size)}
        with h5py.File(out / "h5" / row.h5_relpath, "r") as h5:
            assert (h5["SAX"].attrs["ed_frame"], h5["SAX"].attrs["es_frame"]) == (row.ed - 1, row.es - 1)
            assert h5["SAX"].dtype == np.uint8 and h5["SAX"][:].max() == 255  # ingestion's intensity window
        assert {"train": "training", "test": "testing"}[row.split] == row.split_t


def test_each_fault_gets_its_status(acdc):
    _, _, files = acdc
    assert files["status"].tolist() == files["status_t"].tolist()
    codes = dict(zip(files["fault"], files["reason"].str.split(":").str[0], strict=True))
    assert codes == {"": "", "corrupt_gzip": "corrupt_gzip", "wrong_header": "nifti_header",
                     "nbframe_mismatch": "frames", "missing_4d": "missing"}


def test_volumes_from_the_lv_cavity_masks_equal_the_truth(acdc):
    _, out, files = acdc
    truth = files[["study_id", "lvef", "edv_ml", "esv_ml"]]
    labels = tables(out)["labels"].merge(truth, on="study_id", suffixes=("", "_t"))
    assert len(labels) == 5
    for col in ("lvef", "edv_ml", "esv_ml"):
        np.testing.assert_allclose(labels[col].astype(float), labels[f"{col}_t"].astype(float), atol=0.5)


def test_groups_map_to_disease_keys(acdc):
    _, out, files = acdc
    labels = tables(out)["labels"].merge(files[["study_id", "group"]], on="study_id")
    want = {"NOR": set(), "DCM": {"dcm"}, "HCM": {"hcm"}, "MINF": {"prior_mi"}, "RV": {"rv_dilation"}}
    for r in labels.itertuples():
        assert {k for k in ("dcm", "hcm", "prior_mi", "rv_dilation") if int(getattr(r, k)) == 1} == want[r.group]


def test_no_phi_or_patient_number_outside_the_id_map(acdc):
    _, out, files = acdc
    assert_no_phi(out, list(files["source_id"]))


def test_rerun_rewrites_nothing_and_a_removed_patient_leaves_no_file(acdc, tmp_path):
    release, out, _ = acdc
    before = mtimes(out)
    run_acdc(release["root"], out, key=KEY, pre=PRE)
    assert mtimes(out) == before
    root2, out2 = tmp_path / "release", tmp_path / "out"
    shutil.copytree(release["root"], root2)
    shutil.copytree(out, out2)
    shutil.rmtree(root2 / "training" / "patient001")
    files = run_acdc(root2, out2, key=KEY, pre=PRE)
    assert "patient001" not in set(files["source_id"])
    assert len(mtimes(out2)) == len(before) - 1


def test_a_folder_that_is_not_acdc_is_named_in_the_error(tmp_path):
    with pytest.raises(ExternalError, match="training/ or testing/"):
        run_acdc(tmp_path, tmp_path / "out", key=KEY)


def test_a_testing_patient_without_group_has_unknown_diseases_but_volumes(acdc, tmp_path):
    release, _, files = acdc
    pid = files.loc[files["status_t"] == "ok", "source_id"].iloc[0]
    src = next((release["root"]).glob(f"*/{pid}"))
    dst = tmp_path / "testing" / pid
    shutil.copytree(src, dst)
    info = dst / "Info.cfg"
    info.write_text("".join(line + "\n" for line in info.read_text().splitlines() if not line.startswith("Group")))
    run_acdc(tmp_path, tmp_path / "out", key=KEY, pre=PRE)
    labels = tables(tmp_path / "out")["labels"]
    assert len(labels) == 1 and labels.loc[0, "split"] == "test"
    assert (labels.loc[0, ["dcm", "hcm", "prior_mi", "rv_dilation"]] == "").all()
    assert float(labels.loc[0, "edv_ml"]) > 0


def test_the_cli_writes_a_release_and_converts_it(tmp_path, monkeypatch, capsys):
    from cinefm.cli import main

    monkeypatch.setenv("CINEFM_PSEUDONYM_KEY", KEY.decode())
    assert main(["phantom-acdc", "--out", str(tmp_path / "rel"), "--patients", "2", "--no-faults"]) == 0
    assert main(["acdc", "--root", str(tmp_path / "rel"), "--out", str(tmp_path / "out")]) == 0
    files = tables(tmp_path / "out")["files"]
    assert files["status"].tolist() == ["ok", "ok"]
    assert "ok" in capsys.readouterr().out
