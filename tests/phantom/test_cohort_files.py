"""Every valid phantom file is real DICOM that pydicom and dcm2niix read; the tables agree with it."""

from __future__ import annotations

import collections
import io
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from cinefm.phantom.diseases import DISEASES

MR, ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1"
DCM2NIIX = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
CINE_NAMES = ("CINE_segmented_SAX_b", "CINE_segmented_LAX_", "FIESTA CINE ", "sBTFE_CINE_")


def test_every_valid_file_decodes_with_pydicom_as_cine_mr(cohort):
    files = cohort.valid_files()
    assert len(files) > 500
    syntaxes, classes = collections.Counter(), collections.Counter()
    for f in files:
        ds = pydicom.dcmread(f)
        px = ds.pixel_array
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        assert px.shape[-2:] == (ds.Rows, ds.Columns), f
        assert 96 <= ds.Rows <= 176 and 96 <= ds.Columns <= 176, f
        assert (px.shape[0] == frames) if frames > 1 else px.ndim == 2, f
        assert ds.SeriesDescription.startswith(CINE_NAMES), f"{f}: {ds.SeriesDescription}"
        assert ds.PatientID and ds.PatientName and ds.PatientBirthDate and ds.AccessionNumber
        assert px.max() > 0
        syntaxes[ds.file_meta.TransferSyntaxUID.name] += 1
        classes[ds.SOPClassUID] += 1
    assert set(classes) == {MR, ENHANCED_MR}
    assert "RLE Lossless" in syntaxes and "Explicit VR Little Endian" in syntaxes


def test_valid_series_have_consistent_cine_geometry(cohort):
    series = collections.defaultdict(list)
    for ds in cohort.headers.values():
        series[ds.SeriesInstanceUID].append(ds)
    vendors = set()
    for uid, dss in series.items():
        vendors.add(dss[0].Manufacturer)
        if dss[0].SOPClassUID == ENHANCED_MR:
            (ds,) = dss
            pf = ds.PerFrameFunctionalGroupsSequence
            assert len(pf) == ds.NumberOfFrames
            delays = [it.CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime for it in pf]
            assert len(set(delays)) == ds.CardiacNumberOfImages
            continue
        n_frames = int(dss[0].CardiacNumberOfImages)
        assert 20 <= n_frames <= 24
        by_loc = collections.defaultdict(list)
        for ds in dss:
            by_loc[float(ds.SliceLocation)].append(float(ds.TriggerTime))
            iop = np.array(ds.ImageOrientationPatient, float)
            assert abs(np.linalg.norm(iop[:3]) - 1) < 1e-4 and abs(iop[:3] @ iop[3:]) < 1e-4
            normal = np.cross(iop[:3], iop[3:])
            assert float(ds.SliceLocation) == pytest.approx(np.array(ds.ImagePositionPatient, float) @ normal, abs=0.01)
        for trig in by_loc.values():
            assert len(trig) == len(set(trig)) == n_frames, uid
        if "SAX" in dss[0].SeriesDescription and len(by_loc) > 1:
            assert 8 <= len(by_loc) <= 9
            locs = sorted(by_loc)
            assert np.allclose(np.diff(locs), float(dss[0].SpacingBetweenSlices), atol=0.05)
        assert len({ds.InstanceNumber for ds in dss}) == len(dss)
    assert vendors == {"SIEMENS", "GE MEDICAL SYSTEMS", "Philips Medical Systems"}


def test_dcm2niix_converts_every_valid_series(cohort, tmp_path):
    src = tmp_path / "valid"
    expected = collections.Counter()
    for f, ds in cohort.headers.items():
        rel = f.relative_to(cohort.dicom)
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).symlink_to(f)
        expected[ds.SeriesInstanceUID] += int(getattr(ds, "NumberOfFrames", 1) or 1)
    out = tmp_path / "nii"
    out.mkdir()
    proc = subprocess.run([DCM2NIIX, "-z", "n", "-b", "n", "-f", "%j_%s_%t", "-o", str(out), str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = collections.Counter()
    for nii in out.glob("*.nii"):
        shape = nib.load(nii).shape
        got[nii.name.split("_")[0]] += int(np.prod(shape[2:])) if len(shape) > 2 else 1
    assert got == expected


def test_dcm2niix_survives_the_whole_export_with_its_faults(cohort, tmp_path):
    proc = subprocess.run([DCM2NIIX, "-z", "n", "-b", "n", "-o", str(tmp_path), str(cohort.dicom)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode >= 0  # no crash by signal
    assert len(list(tmp_path.glob("*.nii"))) > 10


def test_fast_series_encoder_writes_what_pydicom_writes(cohort):
    enhanced = [f for f, ds in cohort.headers.items() if ds.SOPClassUID == ENHANCED_MR]
    rle = [f for f, ds in cohort.headers.items() if ds.file_meta.TransferSyntaxUID.is_compressed]
    assert enhanced and rle
    for f in enhanced + rle[::13] + cohort.valid_files()[::97]:
        ds = pydicom.dcmread(f)
        buf = io.BytesIO()
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
        assert buf.getvalue() == f.read_bytes(), f


def test_truth_has_one_row_per_study_matching_the_dicom(cohort):
    t = cohort.truth
    assert list(t.columns) == ["patient_id", "accession_number", "study_instance_uid", "vendor", "lvef",
                               "edv_ml", "esv_ml", *DISEASES, "heart_failure"]
    assert t.accession_number.is_unique and len(t) == len(cohort.reports)
    studies = {}
    for _, ds in cohort.headers.items():
        studies[ds.StudyInstanceUID] = (ds.PatientID, ds.AccessionNumber)
    assert {(r.patient_id, r.accession_number) for r in t.itertuples()} == set(studies.values())
    assert set(t.study_instance_uid) == set(studies)
    lvef = t.lvef.astype(float)
    assert np.allclose(lvef, 100 * (t.edv_ml.astype(float) - t.esv_ml.astype(float)) / t.edv_ml.astype(float), atol=0.05)
    assert ((lvef < 40).astype(int) == t.heart_failure.astype(int)).all()
    assert t.groupby("patient_id").size().between(1, 2).all()
    for d in DISEASES:
        assert t[d].astype(int).sum() > 0, f"no {d} positive in the fixture"


def test_a_patient_with_several_studies_has_them_on_different_dates(cohort):
    dates = cohort.reports.groupby("patient_id").exam_date.agg(list)
    multi = [d for d in dates if len(d) > 1]
    assert multi, "fixture should hold a patient with two studies"
    assert all(len(set(d)) == len(d) for d in multi)
