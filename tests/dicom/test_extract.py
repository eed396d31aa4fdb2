"""Per-study HDF5: layout, frame/slice order, atomic writes, idempotent reruns."""

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from cinefm.dicom.assemble import ViewVolume
from cinefm.dicom.extract import SCHEMA_VERSION, extract_shard, write_study_h5
from cinefm.privacy import PHANTOM_KEY, pseudonymize

PATIENT = pseudonymize("MRN-778899", PHANTOM_KEY, "patient")
STUDY1 = pseudonymize("ACC-1001", PHANTOM_KEY, "study")
STUDY2 = pseudonymize("ACC-1002", PHANTOM_KEY, "study")


def _means(ds) -> np.ndarray:
    """Mean of the central 8x8 block of each (slice, frame): orders the phantom's levels."""
    return ds[:, :, 12:20, 12:20].astype(float).mean(axis=(2, 3))


def test_layout_follows_the_architecture(ingested):
    with h5py.File(ingested / "h5" / PATIENT / f"{STUDY1}.h5") as h5:
        assert h5.attrs["patient_id"] == PATIENT and h5.attrs["study_id"] == STUDY1
        assert h5.attrs["schema_version"] == SCHEMA_VERSION
        assert sorted(h5) == ["4CH", "SAX"]
        sax = h5["SAX"]
        assert sax.dtype == np.uint8 and sax.shape == (3, 12, 32, 32) and sax.chunks == (1, 12, 32, 32)
        for name in ("series_ids", "pixel_spacing_mm", "frame_time_ms", "slice_locations_mm", "vendor",
                     "original_size"):
            assert name in sax.attrs
        assert sax.attrs["pixel_spacing_mm"].shape == (3, 2) and sax.attrs["vendor"] == "siemens"
        np.testing.assert_array_equal(sax.attrs["original_size"], [[24, 20]] * 3)
        assert sax.attrs["pixel_spacing_mm"][0, 0] == pytest.approx(24 * 1.5 / 32)


def test_frames_follow_trigger_time_and_slices_the_normal(ingested):
    with h5py.File(ingested / "h5" / PATIENT / f"{STUDY1}.h5") as h5:
        m = _means(h5["SAX"])
        locs = h5["SAX"].attrs["slice_locations_mm"]
        assert np.all(np.diff(locs) > 0)
        assert np.all(np.diff(m[:, 0]) > 0)  # slice level 100 + 20 k rises along the normal
        assert np.all(np.diff(m[[0, 2]], axis=1) > 0)  # frames rise with trigger time
        assert len(set(h5["SAX"].attrs["series_ids"])) == 3
        assert np.all(np.diff(_means(h5["4CH"])[0]) > 0)


def test_sax_slices_with_other_frame_counts_are_resampled(ingested):
    with h5py.File(ingested / "h5" / PATIENT / f"{STUDY1}.h5") as h5:
        sax = h5["SAX"]
        np.testing.assert_array_equal(sax.attrs["original_frames"], [12, 13, 12])
        assert sax.shape[1] == 12
        assert sax.attrs["frame_time_ms"][1] == pytest.approx(40 * 13 / 12)


def test_enhanced_multiframe_and_rle_study_is_extracted(ingested):
    with h5py.File(ingested / "h5" / PATIENT / f"{STUDY2}.h5") as h5:
        assert sorted(h5) == ["2CH", "SAX"]
        m = _means(h5["SAX"])
        assert h5["SAX"].shape[:2] == (3, 12) and np.all(np.diff(m[:, 0]) > 0)
        assert np.all(np.diff(m, axis=1) > 0)  # enhanced frames were stored shuffled
        assert np.all(np.diff(_means(h5["2CH"])[0]) > 0)


def _volume(n: int = 2) -> ViewVolume:
    return ViewVolume(
        data=np.zeros((n, 4, 8, 8), np.uint8), series_ids=("R1",) * n, slice_locations_mm=np.arange(n, dtype=float),
        pixel_spacing_mm=np.ones((n, 2)), original_pixel_spacing_mm=np.ones((n, 2)),
        original_size=np.full((n, 2), 8), original_frames=np.full(n, 4), frame_time_ms=np.full(n, 40.0),
        window=(0.0, 1.0),
    )


def test_failed_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "P1" / "S1.h5"
    meta_ok = {"vendor": "x", "description": "", "view_rule": "r"}
    meta_bad = {"vendor": object()}  # h5py cannot store this: fails after 4CH is written
    with pytest.raises(TypeError):
        write_study_h5(path, "P1", "S1", {"4CH": _volume(1), "SAX": _volume()},
                       {"4CH": meta_ok, "SAX": meta_bad}, {})
    assert list(tmp_path.rglob("*")) == [tmp_path / "P1"]


def _digest_tree(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.h5")}


def test_rerun_is_idempotent_and_completes_only_what_is_missing(ingested, archive, ingest_cfg, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(ingested, out)
    before = _digest_tree(out / "h5")
    files = pd.read_parquet(out / "ingest" / "files.parquet")
    kw = dict(shards=1, shard=0, frame_size=32, percentiles=(0.5, 99.5))
    man = extract_shard(files, archive.root, out / "h5", tmp_path / "m.csv", **kw)
    assert set(man["status"]) == {"unchanged"}
    victim = out / "h5" / PATIENT / f"{STUDY2}.h5"
    victim.unlink()
    (victim.parent / f".{victim.name}.abc123.h5.tmp").write_bytes(b"half")  # left by a killed job
    man = extract_shard(files, archive.root, out / "h5", tmp_path / "m.csv", **kw)
    assert dict(zip(man["study_id"], man["status"], strict=True)) == {STUDY1: "unchanged", STUDY2: "written"}
    assert _digest_tree(out / "h5") == before
    assert not list((out / "h5").rglob("*.tmp"))


def test_a_study_no_longer_selected_loses_its_file(ingested, archive, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(ingested, out)
    files = pd.read_parquet(out / "ingest" / "files.parquet")
    files.loc[files["study_id"].eq(STUDY2), "selected"] = False
    man = extract_shard(files, archive.root, out / "h5", tmp_path / "m.csv", shards=1, shard=0,
                        frame_size=32, percentiles=(0.5, 99.5))
    assert list(man["study_id"]) == [STUDY1]
    assert not (out / "h5" / PATIENT / f"{STUDY2}.h5").exists()


@pytest.mark.filterwarnings("ignore:The pixel data is")  # pydicom on MR_small_padded (the reference)
@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_padded.dcm"])
def test_native_fast_path_reads_what_pydicom_decodes(name):
    import pydicom
    from pydicom.data import get_testdata_file

    from cinefm.dicom.assemble import read_native_frame
    from cinefm.dicom.extract import source_files
    from cinefm.dicom.header import read_file
    from cinefm.dicom.scan import records_frame

    path = Path(get_testdata_file(name))
    rows = records_frame([read_file(path.parent, path.name, PHANTOM_KEY)])
    (src,) = source_files(rows.assign(series_number=1), path.parent)
    assert src.native is not None
    ds = pydicom.dcmread(path)
    want = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    np.testing.assert_array_equal(read_native_frame(src).pixels, want)


def _write_big(path: Path) -> None:
    rng = np.random.default_rng(0)
    vol = _volume(1)
    big = ViewVolume(**{**vol.__dict__, "data": rng.integers(0, 255, (1, 400, 400, 400), dtype=np.uint8)})
    write_study_h5(path, PATIENT, STUDY2, {"SAX": big}, {"SAX": {"vendor": "x"}}, {})


def test_a_job_killed_mid_write_leaves_no_h5_and_the_rerun_completes_it(ingested, archive, tmp_path):
    import multiprocessing
    import os
    import signal
    import time

    out = tmp_path / "copy"
    shutil.copytree(ingested, out)
    before = _digest_tree(out / "h5")
    target = out / "h5" / PATIENT / f"{STUDY2}.h5"
    target.unlink()
    proc = multiprocessing.get_context("fork").Process(target=_write_big, args=(target,))
    proc.start()
    deadline = time.monotonic() + 20
    while not any(p.stat().st_size > 0 for p in target.parent.glob(f".{target.name}.*")):
        assert time.monotonic() < deadline and proc.is_alive(), "the writer never started writing"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert not target.exists() and list(target.parent.glob(f".{target.name}.*"))
    files = pd.read_parquet(out / "ingest" / "files.parquet")
    man = extract_shard(files, archive.root, out / "h5", tmp_path / "m.csv", shards=1, shard=0,
                        frame_size=32, percentiles=(0.5, 99.5))
    assert dict(zip(man["study_id"], man["status"], strict=True)) == {STUDY1: "unchanged", STUDY2: "written"}
    assert _digest_tree(out / "h5") == before and not list(target.parent.glob(".*"))


@pytest.mark.parametrize("compression", ["none", "lzf"])
def test_compression_setting_changes_the_layout_not_the_pixels(ingested, archive, tmp_path, compression):
    files = pd.read_parquet(ingested / "ingest" / "files.parquet")
    man = extract_shard(files, archive.root, tmp_path / "h5", tmp_path / "m.csv", shards=1, shard=0,
                        frame_size=32, percentiles=(0.5, 99.5), compression=compression)
    assert set(man["status"]) == {"written"}
    rel = f"{PATIENT}/{STUDY1}.h5"
    with h5py.File(tmp_path / "h5" / rel) as new, h5py.File(ingested / "h5" / rel) as ref:
        assert new["SAX"].compression == (None if compression == "none" else compression)
        assert ref["SAX"].compression == "gzip"
        np.testing.assert_array_equal(new["SAX"][()], ref["SAX"][()])


def test_unknown_compression_names_the_config_key(tmp_path):
    with pytest.raises(ValueError, match="config.ingest.compression"):
        write_study_h5(tmp_path / "x.h5", PATIENT, STUDY1, {}, {}, {}, compression="zstd")
