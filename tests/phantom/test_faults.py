"""Every injected fault is listed in faults.csv and the listed file has the described defect."""

from __future__ import annotations

import collections

import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from cinefm.phantom.plan import FAULT_KINDS

NON_CINE_KINDS = {"localizer", "lge", "t1map", "inline"}


def _rows(cohort, fault):
    rows = cohort.faults[cohort.faults.fault == fault]
    assert len(rows), f"no {fault} row in faults.csv"
    return rows


def test_every_fault_kind_is_injected_and_listed_with_its_status(cohort):
    f = cohort.faults
    assert list(f.columns) == ["relpath", "fault", "expected_status", "series_instance_uid", "detail"]
    assert set(FAULT_KINDS) <= set(f.fault)
    status = dict(zip(f.fault, f.expected_status, strict=False))
    assert status["truncated"] == "corrupt" and status["not_dicom"] == "not_dicom"
    assert status["exact_duplicate"] == status["duplicate_sop"] == "duplicate"
    assert status["missing_frame"] == status["mixed_matrix"] == "inconsistent"
    assert status["non_cine"] == "not_cine"
    assert f.relpath.is_unique
    for rel in f.relpath:
        assert (cohort.dicom / rel).is_file(), rel


def test_truncated_files_are_shorter_copies_that_do_not_fully_decode(cohort):
    for r in _rows(cohort, "truncated").itertuples():
        path = cohort.dicom / r.relpath
        n, total, src = r.detail.split(" ")[1], r.detail.split(" ")[3], r.detail.split(" ")[6]
        assert path.stat().st_size == int(n) < int(total) == (cohort.dicom / src).stat().st_size
        assert path.read_bytes() == (cohort.dicom / src).read_bytes()[: int(n)]
        with pytest.raises(Exception):  # noqa: B017 - any decoding error is the defect
            ds = pydicom.dcmread(path)
            ds.pixel_array  # noqa: B018


def test_junk_files_are_not_dicom(cohort):
    for r in _rows(cohort, "not_dicom").itertuples():
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(cohort.dicom / r.relpath)


def test_exact_duplicates_are_byte_identical_to_a_valid_original_that_sorts_first(cohort):
    for r in _rows(cohort, "exact_duplicate").itertuples():
        original = r.detail.removeprefix("byte-identical copy of ")
        assert original not in set(cohort.faults.relpath)
        assert original < r.relpath
        assert (cohort.dicom / original).read_bytes() == (cohort.dicom / r.relpath).read_bytes()


def test_duplicate_sop_instances_differ_in_bytes_but_not_in_identity(cohort):
    for r in _rows(cohort, "duplicate_sop").itertuples():
        original = r.detail.split(" also at ")[1].split(" ")[0]
        a, b = pydicom.dcmread(cohort.dicom / original), pydicom.dcmread(cohort.dicom / r.relpath)
        assert a.SOPInstanceUID == b.SOPInstanceUID and original < r.relpath
        assert (cohort.dicom / original).read_bytes() != (cohort.dicom / r.relpath).read_bytes()
        assert (a.pixel_array == b.pixel_array).all()


def test_missing_frame_series_lack_exactly_one_trigger_time(cohort):
    for uid, rows in _rows(cohort, "missing_frame").groupby("series_instance_uid"):
        dss = [pydicom.dcmread(cohort.dicom / p, stop_before_pixels=True) for p in rows.relpath]
        assert {d.SeriesInstanceUID for d in dss} == {uid}
        n = int(dss[0].CardiacNumberOfImages)
        assert len(dss) == n - 1  # single-slice series
        numbers = sorted(int(d.InstanceNumber) for d in dss)
        assert len(set(range(1, n + 1)) - set(numbers)) == 1


def test_mixed_matrix_series_hold_two_matrix_sizes(cohort):
    for uid, rows in _rows(cohort, "mixed_matrix").groupby("series_instance_uid"):
        dss = [pydicom.dcmread(cohort.dicom / p, stop_before_pixels=True) for p in rows.relpath]
        sizes = collections.Counter((d.Rows, d.Columns) for d in dss)
        assert len(sizes) == 2 and {d.SeriesInstanceUID for d in dss} == {uid}


def test_non_cine_series_are_readable_dicom_of_the_expected_kinds(cohort):
    rows = _rows(cohort, "non_cine")
    kinds = {d.split(":")[0] for d in rows.detail}
    assert kinds <= NON_CINE_KINDS and {"localizer", "lge"} <= kinds
    for r in rows.itertuples():
        ds = pydicom.dcmread(cohort.dicom / r.relpath)
        assert ds.SeriesInstanceUID == r.series_instance_uid
        assert ds.pixel_array.size > 0


def test_every_unreadable_or_duplicate_file_on_disk_is_listed(cohort):
    listed = set(cohort.faults.relpath)
    seen: dict[str, str] = {}
    for f in sorted(cohort.dicom.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(cohort.dicom).as_posix()
        try:
            ds = pydicom.dcmread(f)
            ds.pixel_array  # noqa: B018
        except Exception:  # noqa: BLE001 - anything unreadable must be a listed fault
            assert rel in listed, rel
            continue
        if ds.SOPInstanceUID in seen:
            assert rel in listed or seen[ds.SOPInstanceUID] in listed, rel
        seen[ds.SOPInstanceUID] = rel
