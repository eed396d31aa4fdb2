"""The fast header reader against pydicom, the reference: identical scan tables and pixels.

Three corpora (issue 27): the phantom export (3 vendors, enhanced, RLE, its injected faults),
pydicom's own test files (test_files and charset_files: big endian, deflate, JPEG, private
and undefined-length sequences, charsets, missing meta...) and the fault archive of
conftest.py; plus truncated and byte-flipped copies of representative files.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from cinefm.dicom.assemble import decode_file
from cinefm.dicom.header import read_file_ids
from cinefm.dicom.rawheader import RawHeader, parse, pixel_source
from cinefm.dicom.scan import list_files, scan_files
from cinefm.privacy import PHANTOM_KEY

PYDICOM_DATA = Path(pydicom.__file__).parent / "data"


def _both(root: Path, jobs: int = 1) -> tuple[tuple, tuple]:
    rel = list(list_files(root)["relpath"])
    return (scan_files(root, rel, PHANTOM_KEY, jobs=jobs, reader="fast"),
            scan_files(root, rel, PHANTOM_KEY, jobs=jobs, reader="pydicom"))


def _assert_same(fast: tuple, ref: tuple) -> None:
    pd.testing.assert_frame_equal(fast[0], ref[0])  # every column: hash, status, reason, pseudonyms, geometry...
    pd.testing.assert_frame_equal(fast[1], ref[1])  # id map


def _fast_share(root: Path) -> float:
    files = [p for p in root.rglob("*") if p.is_file()]
    return sum(parse(p.read_bytes()) is not None for p in files) / len(files)


def test_phantom_tables_identical(phantom_export):
    root = phantom_export / "dicom"
    fast, ref = _both(root, jobs=2)
    _assert_same(fast, ref)
    faults = pd.read_csv(phantom_export / "faults.csv")
    file_level = faults[faults["expected_status"].isin(["corrupt", "not_dicom", "unsupported"])]
    status = fast[0].set_index("relpath")["status"]
    assert len(file_level) >= 3 and status[file_level["relpath"]].tolist() == file_level["expected_status"].tolist()
    assert _fast_share(root) > 0.99  # the fast path is really taken, not the fallback


@pytest.mark.parametrize("folder", ["test_files", "charset_files"])
def test_pydicom_test_files_tables_identical(folder):
    root = PYDICOM_DATA / folder
    fast, ref = _both(root)
    _assert_same(fast, ref)
    assert len(fast[0]) >= 15 and fast[0]["status"].nunique() >= 2


def test_fault_archive_tables_identical(archive):
    fast, ref = _both(archive.root)
    _assert_same(fast, ref)
    by_rel = fast[0].set_index("relpath")["status"]
    assert by_rel["faults/truncated.dcm"] == by_rel["faults/truncated_rle"] == "corrupt"


def test_damaged_copies_give_the_same_record(tmp_path, archive, phantom_export):
    """Cut and byte-flipped copies (header, sequences, pixel element): same record either way."""
    enhanced = next(p for p in (phantom_export / "dicom").rglob("*")
                    if p.is_file() and p.stat().st_size > 200_000 and (h := parse(p.read_bytes())) is not None
                    and h.get("PerFrameFunctionalGroupsSequence"))
    sources = [PYDICOM_DATA / "test_files" / n for n in ("MR_small.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm",
                                                         "nested_priv_SQ.dcm")]
    sources += [archive.root / archive_rel for archive_rel in sorted(archive.truth)[:1]] + [enhanced]
    rng = random.Random(27)
    n = 0
    for src in sources:
        data = src.read_bytes()
        head = min(len(data), 4000)  # header region: where the two readers could disagree
        variants = [data[:cut] for cut in rng.sample(range(1, head), 25)]
        for _ in range(25):
            b = bytearray(data)
            b[rng.randrange(head)] = rng.randrange(256)
            variants.append(bytes(b))
        for v in variants:
            (tmp_path / "f").write_bytes(v)
            fast = read_file_ids(tmp_path, "f", PHANTOM_KEY, "fast")
            ref = read_file_ids(tmp_path, "f", PHANTOM_KEY, "pydicom")
            assert repr(fast) == repr(ref), (src.name, len(v))
            n += 1
    assert n == 50 * len(sources)


def _write(path: Path, ts=ExplicitVRLittleEndian, **elements) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.Modality = "MR"
    for k, v in elements.items():
        setattr(ds, k, v)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored = 2, 2, 16, 12
    ds.PixelData = b"\x01\x00" * 4
    ds.save_as(path, enforce_file_format=True)
    return path


def test_values_match_pydicom(tmp_path):
    p = _write(tmp_path / "a.dcm", ts=ImplicitVRLittleEndian, PatientID="ID 7  ", ImageType=["ORIGINAL", "PRIMARY"],
               PixelSpacing=[0.5, "0.75"], SeriesNumber="12")
    h = parse(p.read_bytes())
    assert isinstance(h, RawHeader) and h.original_encoding == (True, True)
    assert h.get("PatientID") == pydicom.dcmread(p).PatientID == "ID 7"
    assert h.value("ImageType") == ["ORIGINAL", "PRIMARY"]
    assert h.value("PixelSpacing") == ["0.5", "0.75"] and h.value("SeriesNumber") == "12"
    assert (h.value("Rows"), h.value("BitsStored")) == (2, 12)
    assert h.value("TriggerTime", "absent") == "absent"
    assert p.read_bytes()[h.pixel_offset : h.pixel_offset + 4] == b"\xe0\x7f\x10\x00"


@pytest.mark.parametrize("case", ["latin1_name", "two_values", "big_endian", "deflate", "no_preamble"])
def test_outside_the_scope_goes_to_pydicom(tmp_path, case):
    if case == "latin1_name":
        p = _write(tmp_path / "a.dcm", SpecificCharacterSet="ISO_IR 100", Manufacturer="Müller")
    elif case == "two_values":
        p = _write(tmp_path / "a.dcm", SeriesDescription=["CINE", "SAX"])
    elif case == "big_endian":
        p = PYDICOM_DATA / "test_files" / "MR_small_bigendian.dcm"
    elif case == "deflate":
        p = PYDICOM_DATA / "test_files" / "image_dfl.dcm"
    else:
        p = PYDICOM_DATA / "test_files" / "no_meta.dcm"
    assert parse(p.read_bytes()) is None
    fast = read_file_ids(p.parent, p.name, PHANTOM_KEY, "fast")
    assert repr(fast) == repr(read_file_ids(p.parent, p.name, PHANTOM_KEY, "pydicom"))


def _decoded(fn, path: Path):
    try:
        return fn(path)
    except Exception as exc:  # noqa: BLE001 - the two readers must fail alike
        return type(exc)


def test_pixels_identical_to_pixel_array(phantom_export):
    """decode_file and the cut-down file of pixel_source give pydicom's pixel_array, bit for bit."""
    paths = sorted((PYDICOM_DATA / "test_files").glob("*.dcm"))
    phantom = [p for p in sorted((phantom_export / "dicom").rglob("*")) if p.is_file()]
    by_ts: dict[str, Path] = {}
    for p in phantom:  # one file per transfer syntax and per classic/enhanced layout
        h = parse(p.read_bytes())
        if h is not None:
            by_ts.setdefault(f"{h.file_meta.TransferSyntaxUID}:{h.get('NumberOfFrames') is not None}", p)
    checked = 0
    for p in paths + list(by_ts.values()):
        ref = _decoded(lambda q: pydicom.dcmread(q).pixel_array, p)
        fast = _decoded(lambda q: decode_file(q)[1], p)
        if isinstance(ref, type):
            continue  # no pixels or no decoder here: not an ingestion input
        assert isinstance(fast, np.ndarray) and fast.dtype == ref.dtype and np.array_equal(fast, ref), p.name
        data = p.read_bytes()
        h = parse(data)
        if h is not None and (cut := pixel_source(data, h)) is not None:
            from io import BytesIO

            assert np.array_equal(pydicom.dcmread(BytesIO(cut)).pixel_array, ref), p.name
        checked += 1
    assert checked >= 25 and len(by_ts) >= 3


def test_damaged_vr_in_a_pixel_tag_is_a_status_not_a_crash(tmp_path):
    """A flipped VR byte pydicom cannot convert (here BitsStored as 'MS') used to raise out of the scan."""
    data = bytearray(_write(tmp_path / "a.dcm").read_bytes())
    at = data.index(b"\x28\x00\x01\x01US")  # (0028,0101) BitsStored, explicit VR
    data[at + 4 : at + 6] = b"MS"
    (tmp_path / "b.dcm").write_bytes(bytes(data))
    for reader in ("fast", "pydicom"):
        rec, _ = read_file_ids(tmp_path, "b.dcm", PHANTOM_KEY, reader)
        assert rec.status == "corrupt" and rec.reason.startswith("header: bad header values"), reader
