"""File-level checks of the header scan on real files written by pydicom."""

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless

from cinefm.dicom.header import read_file
from cinefm.dicom.scan import list_files, scan_files, shard_of
from cinefm.privacy import PHANTOM_KEY, pseudonymize


@pytest.fixture(scope="module")
def scanned(archive):
    files = list_files(archive.root)
    df, id_map = scan_files(archive.root, list(files["relpath"]), PHANTOM_KEY, jobs=2)
    return df.set_index("relpath"), id_map


def test_every_file_of_the_archive_gets_one_row(archive, scanned):
    df, _ = scanned
    assert sorted(df.index) == sorted(archive.truth)


def test_truncated_native_file_is_corrupt_although_its_header_reads(scanned):
    row = scanned[0].loc["faults/truncated.dcm"]
    assert row.status == "corrupt"
    assert row.reason.startswith("truncated:") and "100 bytes early" in row.reason


def test_truncated_rle_fragment_is_corrupt(scanned):
    row = scanned[0].loc["faults/truncated_rle"]
    assert row.status == "corrupt" and row.reason.startswith("truncated:")


def test_junk_and_empty_files_are_not_dicom(scanned):
    df = scanned[0]
    assert df.loc["faults/junk.dcm", "status"] == "not_dicom"
    assert df.loc["faults/empty", "status"] == "not_dicom"


def test_enhanced_file_reports_per_frame_times_and_positions(archive, scanned):
    row = scanned[0].loc["b/enh/IM_0001"]
    n = archive.enhanced.slices * archive.enhanced.frames
    assert row.status == "ok" and row.frames == n
    assert len(row.frame_times) == n and len(set(np.round(row.frame_positions, 3))) == archive.enhanced.slices
    assert sorted(set(row.frame_times)) == [40.0 * f for f in range(archive.enhanced.frames)]


def test_ids_are_keyed_pseudonyms_of_patient_id_and_accession(scanned):
    df, id_map = scanned
    ok = df[df["status"].eq("ok")]
    assert set(ok["patient_id"]) == {pseudonymize("MRN-778899", PHANTOM_KEY, "patient")}
    assert pseudonymize("ACC-1002", PHANTOM_KEY, "study") in set(ok["study_id"])
    assert {"MRN-778899", "ACC-1001", "ACC-1002"} <= set(id_map["identifier"])
    assert all(s.startswith("R") for s in ok["series_id"]) and all(s.startswith("I") for s in ok["sop_id"])


def test_scan_table_holds_no_phi(scanned):
    text = scanned[0].reset_index().to_csv()
    for phi in ("Doe", "Jane", "MRN-778899", "19610304", "ACC-100", "20230514"):
        assert phi not in text


def test_native_pixel_data_shorter_than_header_says_is_corrupt(archive, tmp_path):
    src = next(p for p, s in archive.truth.items() if p.startswith("a/lax/"))
    ds = pydicom.dcmread(archive.root / src)
    ds.PixelData = ds.PixelData[:-64]
    ds.save_as(tmp_path / "short.dcm", enforce_file_format=True)
    rec = read_file(tmp_path, "short.dcm", PHANTOM_KEY)
    assert rec.status == "corrupt" and rec.reason.startswith("pixel_length:")


def test_transfer_syntax_without_decoder_is_unsupported(archive, tmp_path):
    src = next(p for p in archive.truth if p.startswith("a/lax/"))
    ds = pydicom.dcmread(archive.root / src)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8" + bytes(100) + b"\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "jls.dcm", enforce_file_format=True)
    rec = read_file(tmp_path, "jls.dcm", PHANTOM_KEY)
    assert rec.status == "unsupported" and "JPEG-LS" in rec.reason


def test_non_mr_image_is_not_cine(tmp_path):
    from pydicom.data import get_testdata_file

    rec = read_file(*get_testdata_file("CT_small.dcm").rsplit("/", 1), PHANTOM_KEY)
    assert rec.status == "not_cine" and rec.reason.startswith("modality: CT")


def test_shards_partition_the_files():
    names = [f"d/{i}.dcm" for i in range(200)]
    parts = [{n for n in names if shard_of(n, 7) == s} for s in range(7)]
    assert set().union(*parts) == set(names) and sum(map(len, parts)) == 200
    assert all(parts)
