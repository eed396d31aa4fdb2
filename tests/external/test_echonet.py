"""EchoNet-Dynamic adapter on a release the session fixture writes in the distributed format."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pandas as pd
import pytest

from cinefm.dicom.extract import h5_relpath
from cinefm.external.echonet import read_avi_gray, run_echonet
from cinefm.privacy import ENV_VAR, pseudonymize
from cinefm.splits import SplitFractions, assign_splits

from .conftest import ENTRIES, KEY, LEVEL0, STEP, UNLISTED

NAMES = [e.name for e in ENTRIES]


def _by_name(files: pd.DataFrame) -> pd.DataFrame:
    return files.set_index("file_name")


def test_every_filelist_row_gets_the_right_status(converted):
    _, files = converted
    assert list(files["file_name"]) == NAMES  # one row per FileList row, .avi suffix or not
    status = _by_name(files)["status"].to_dict()
    assert status == {
        NAMES[0]: "ok", NAMES[1]: "ok", NAMES[2]: "ok", NAMES[3]: "ok",
        NAMES[4]: "unreadable", NAMES[5]: "inconsistent", NAMES[6]: "missing",
    }
    reasons = _by_name(files)["reason"]
    assert reasons[NAMES[4]].startswith("unreadable:")
    assert "decoded 26 frames" in reasons[NAMES[5]] and "NumberOfFrames 40" in reasons[NAMES[5]]
    assert reasons[NAMES[6]] == "missing: no AVI of this name under Videos/"
    assert _by_name(files).loc[NAMES[6], "relpath"] == f"Videos/{NAMES[6]}.avi"


def test_quarantined_videos_have_no_h5_and_are_counted_in_flow(converted):
    out, files = converted
    h5s = sorted(p.relative_to(out / "h5").as_posix() for p in (out / "h5").glob("*/*.h5"))
    ok = files[files["status"] == "ok"]
    assert h5s == sorted(ok["h5_relpath"])
    flow = pd.read_csv(out / "flow.csv", keep_default_na=False)
    vids = flow[flow["level"] == "videos"]
    count = {(s, st, r): int(n) for s, st, r, n in vids[["stage", "status", "reason", "count"]].itertuples(index=False)}
    assert count[("input", "", "")] == 7
    assert count[("kept", "ok", "")] == 4
    assert count[("excluded", "unreadable", "unreadable")] == 1
    assert count[("excluded", "inconsistent", "inconsistent")] == 1
    assert count[("excluded", "missing", "missing")] == 1
    assert count[("unlisted", "", "not_in_filelist")] == 1  # UNLISTED AVI has no FileList row


def test_h5_frames_match_the_decoded_avi(converted, release):
    out, files = converted
    for name in NAMES[:3]:
        row = _by_name(files).loc[name]
        with h5py.File(out / "h5" / row["h5_relpath"], "r") as h5:
            assert list(h5.attrs["views"]) == ["A4C"] and h5.attrs["schema_version"] == "1"
            assert h5.attrs["patient_id"] == row["patient_id"] and h5.attrs["study_id"] == row["study_id"]
            data = h5["A4C"][()]
            attrs = dict(h5["A4C"].attrs)
        written = release.videos[name]
        assert data.shape == (1, *written.shape) and data.dtype == np.uint8
        decoded, _ = read_avi_gray(release.root / "Videos" / f"{name}.avi")
        np.testing.assert_array_equal(data[0], decoded)  # same decoder, no resize: bit-exact
        err = np.abs(data[0].astype(int) - written.astype(int))
        assert err.mean() < 2.0 and err.max() <= 12  # MJPEG q=2 tolerance against the source frames
        means = data[0].reshape(len(written), -1).mean(axis=1)  # frame order kept
        np.testing.assert_allclose(means, LEVEL0 + STEP * np.arange(len(written)), atol=1.5)
        assert attrs["fps"] == 50.0 and attrs["frame_time_ms"][0] == pytest.approx(20.0)
        assert attrs["ef"] == next(e.ef for e in ENTRIES if e.name == name)
        assert tuple(attrs["original_size"][0]) == (112, 112)


def test_non_square_video_is_resized_and_padded_to_frame_size(converted, release):
    out, files = converted
    row = _by_name(files).loc[NAMES[3]]
    with h5py.File(out / "h5" / row["h5_relpath"], "r") as h5:
        data = h5["A4C"][0]
        assert tuple(h5["A4C"].attrs["original_size"][0]) == (96, 128)
    assert data.shape == (22, 112, 112)
    # 96x128 -> 84x112 keeps the aspect; 14 rows of zero padding above and below
    assert data[:, :14].max() == 0 and data[:, -14:].max() == 0
    inner = data[:, 14:-14].reshape(22, -1).mean(axis=1)
    np.testing.assert_allclose(inner, release.videos[NAMES[3]].reshape(22, -1).mean(axis=1), atol=2.0)


def test_release_split_and_ef_are_carried_to_studies_and_labels(converted):
    out, files = converted
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
    labels = pd.read_csv(out / "labels.csv", keep_default_na=False)
    expected_split = {e.name: {"TRAIN": "train", "VAL": "val", "TEST": "test"}[e.split] for e in ENTRIES}
    ids = _by_name(files)
    for e in ENTRIES:
        s = studies[studies["study_id"] == ids.loc[e.name, "study_id"]].iloc[0]
        assert s["split"] == expected_split[e.name]
        assert s["status"] == ("written" if ids.loc[e.name, "status"] == "ok" else "failed")
    ok = [e for e in ENTRIES if ids.loc[e.name, "status"] == "ok"]
    assert len(labels) == len(ok)
    lab = labels.set_index("study_id")
    for e in ok:
        assert lab.loc[ids.loc[e.name, "study_id"], "lvef"] == pytest.approx(e.ef)
    assert set(studies.loc[studies["status"] == "written", "frames"]) == {"A4C:24", "A4C:30", "A4C:20", "A4C:22"}


def test_studies_csv_plugs_into_splits_as_an_external_cohort(converted):
    out, _ = converted
    studies = pd.read_csv(out / "studies.csv", dtype=str, keep_default_na=False)
    internal = pd.DataFrame({"patient_id": ["Pa", "Pb"], "study_id": ["Sa", "Sb"]})
    splits = assign_splits(internal, "phantom", 1, SplitFractions(),
                           external={"echonet": studies[studies["status"] != "failed"]})
    echo = splits[splits["cohort"] == "echonet"]
    assert len(echo) == 4 and set(echo["stage"]) == {"external"}


def test_ids_are_keyed_pseudonyms_and_release_names_do_not_leak(converted):
    out, files = converted
    for name, row in _by_name(files).iterrows():
        assert row["patient_id"] == pseudonymize(name, KEY, "patient")
        assert row["study_id"] == pseudonymize(name, KEY, "study")
    text = (out / "studies.csv").read_text() + (out / "labels.csv").read_text()
    assert not any(n in text for n in NAMES)
    for p in (out / "h5").glob("*/*.h5"):
        assert not any(n.encode() in p.read_bytes() for n in NAMES)


def test_volume_tracings_are_validated_and_traced_frames_recorded(converted):
    out, files = converted
    issues = pd.read_csv(out / "tracings_issues.csv", keep_default_na=False)
    codes = {r.split(":")[0] for r in issues["reason"]}
    assert codes == {"frame_out_of_range", "not_numeric", "unknown_file"}
    assert list(issues["row"]) == [10, 11, 12]  # CSV line numbers (header = line 1)
    assert _by_name(files).loc[NAMES[0], "traced_frames"] == "3;17"
    row = _by_name(files).loc[NAMES[0]]
    with h5py.File(out / "h5" / row["h5_relpath"], "r") as h5:
        assert list(h5["A4C"].attrs["traced_frames"]) == [3, 17]


def test_rerun_keeps_unchanged_files_and_drops_a_video_that_became_corrupt(release, tmp_path):
    import shutil

    root = tmp_path / "release"
    shutil.copytree(release.root, root)
    out = tmp_path / "out"
    run_echonet(root, out, key=KEY, frame_size=112)
    studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
    target = studies[studies["status"] == "written"].iloc[0]
    h5 = out / "h5" / target["h5_relpath"]
    mtime = h5.stat().st_mtime_ns
    run_echonet(root, out, key=KEY, frame_size=112)
    again = pd.read_csv(out / "studies.csv", keep_default_na=False)
    assert set(again.loc[again["status"] != "failed", "status"]) == {"unchanged"}
    assert h5.stat().st_mtime_ns == mtime
    (root / "Videos" / f"{NAMES[0]}.avi").write_bytes(b"not a video")
    files = run_echonet(root, out, key=KEY, frame_size=112)
    assert files.set_index("file_name").loc[NAMES[0], "status"] == "unreadable"
    assert not h5.exists() if target["study_id"] == pseudonymize(NAMES[0], KEY, "study") else True
    assert not (out / "h5" / h5_relpath(pseudonymize(NAMES[0], KEY, "patient"),
                                        pseudonymize(NAMES[0], KEY, "study"))).exists()


def test_cli_needs_a_key_and_with_one_matches_the_library(release, converted, tmp_path, monkeypatch, capsys):
    from cinefm.cli import main
    from cinefm.privacy import PrivacyError

    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(PrivacyError, match=ENV_VAR):
        main(["echonet", "--root", str(release.root), "--out", str(tmp_path / "nokey")])
    monkeypatch.setenv(ENV_VAR, KEY.decode())
    rc = main(["echonet", "--root", str(release.root), "--out", str(tmp_path / "cli"), "--jobs", "2",
               "--frame-size", "112"])
    assert rc == 0
    cli_files = pd.read_csv(tmp_path / "cli" / "files.csv", keep_default_na=False)
    lib_files = pd.read_csv(converted[0] / "files.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(cli_files, lib_files)
    assert "unreadable" in capsys.readouterr().out


def test_filelist_without_required_column_names_the_file_and_column(tmp_path):
    from cinefm.external.echonet import EchoNetError

    (tmp_path / "Videos").mkdir()
    pd.DataFrame({"FileName": ["a"], "EF": [50]}).to_csv(tmp_path / "FileList.csv", index=False)
    with pytest.raises(EchoNetError, match=r"FileList\.csv: missing column\(s\) \['ESV'"):
        run_echonet(tmp_path, tmp_path / "out", key=KEY)
    assert UNLISTED and not os.path.exists(tmp_path / "out" / "files.csv")


def test_h5_files_come_from_the_ingestion_writer_with_the_configured_compression(release, tmp_path):
    from cinefm.config import load_config
    from cinefm.data.h5 import scan_series

    stored = {}
    for compression in ("gzip", "none"):
        out = tmp_path / compression
        run_echonet(release.root, out, key=KEY, frame_size=112, compression=compression)
        studies = pd.read_csv(out / "studies.csv", keep_default_na=False)
        path = out / "h5" / studies.loc[studies["status"] == "written", "h5_relpath"].iloc[0]
        with h5py.File(path, "r") as h5:
            ds = h5["A4C"]
            assert ds.compression == (None if compression == "none" else "gzip")
            assert ds.chunks == ds.shape  # one slice per chunk, as ingestion writes
            for attr in ("series_ids", "pixel_spacing_mm", "original_size", "frame_time_ms", "intensity_window"):
                assert attr in ds.attrs, attr  # the ingestion layout's dataset attributes
            assert list(h5.attrs["views"]) == ["A4C"] and h5.attrs["source_digest"].endswith(
                "" if compression == "gzip" else ":none")
            stored[compression] = ds[()]
        written = studies.loc[studies["status"] == "written"]
        readable = written.assign(h5=[str(out / "h5" / r) for r in written["h5_relpath"]])
        assert len(scan_series(readable)) > 0  # the loader reads them
    np.testing.assert_array_equal(stored["gzip"], stored["none"])
    assert load_config()["ingest"]["compression"] == "none"  # what the workflow passes (config ingest.compression)
