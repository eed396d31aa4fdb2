"""Small real DICOM archives written with pydicom, built once per session.

``archive`` holds two studies of one patient and every fault the scan must catch.
Pixel values encode (slice, frame) so tests can check the assembled order:
frame f of slice k has mean value ``100 + 20 * k + 3 * f`` plus a fixed gradient.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
# Double-oblique SAX orientation (row, col) and its normal row x col = (0.48, -0.64, 0.6).
SAX_ORIENT = (0.8, 0.6, 0.0, -0.36, 0.48, 0.8)
SAX_NORMAL = np.array([0.48, -0.64, 0.6])
LAX_ORIENT = (0.0, 1.0, 0.0, 0.6, 0.0, -0.8)
PATIENT = {"PatientName": "Doe^Jane", "PatientID": "MRN-778899", "PatientBirthDate": "19610304"}


def frame_image(k: int, f: int, rows: int, cols: int) -> np.ndarray:
    """Pixels of frame f of slice k: constant level that orders (k, f) plus a gradient."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    return (100 + 20 * k + 3 * f + (xx + yy) % 7).astype(np.uint16)


@dataclass
class Series:
    """Parameters of one synthetic series (single-frame files unless enhanced)."""

    description: str
    manufacturer: str = "SIEMENS"
    study: str = "ACC-1001"
    study_uid: str = field(default_factory=generate_uid)
    uid: str = field(default_factory=generate_uid)
    number: int = 1
    slices: int = 1
    frames: int = 12
    rows: int = 24
    cols: int = 20
    orient: tuple = SAX_ORIENT
    spacing: tuple = (1.5, 1.5)
    first_slice: int = 0  # index k of the first slice (pixel level and position)
    step_ms: float = 40.0


def _base(series: Series, sop_class: str, ts=ExplicitVRLittleEndian) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    for k, v in PATIENT.items():
        setattr(ds, k, v)
    ds.AccessionNumber = series.study
    ds.StudyDate = "20230514"
    ds.StudyInstanceUID = series.study_uid
    ds.SeriesInstanceUID = series.uid
    ds.SOPClassUID = sop_class
    ds.Modality = "MR"
    ds.Manufacturer = series.manufacturer
    ds.SeriesDescription = series.description
    ds.SeriesNumber = series.number
    ds.Rows, ds.Columns = series.rows, series.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def position(series: Series, k: int) -> list[float]:
    normal = np.cross(series.orient[:3], series.orient[3:])
    return [float(v) for v in np.array([-50.0, 20.0, 10.0]) + 8.0 * k * normal]


def write_single_frame_series(folder: Path, series: Series, rle: bool = False, skip: tuple = ()) -> list[Path]:
    """One file per (slice, frame); file names are opaque and unordered. Returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    inst = 0
    for s in range(series.slices):
        k = series.first_slice + s
        for f in range(series.frames):
            inst += 1
            if (s, f) in skip:
                continue
            ds = _base(series, MR, RLELossless if rle else ExplicitVRLittleEndian)
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = inst
            ds.TriggerTime = f * series.step_ms
            ds.CardiacNumberOfImages = series.frames
            ds.ImageOrientationPatient = list(series.orient)
            ds.ImagePositionPatient = position(series, k)
            ds.PixelSpacing = list(series.spacing)
            arr = frame_image(k, f, series.rows, series.cols)
            if rle:
                ds.compress(RLELossless, arr, generate_instance_uid=False)
            else:
                ds.PixelData = arr.tobytes()
            name = f"{(inst * 7919) % 10007:05d}{'' if inst % 3 else '.dcm'}"
            p = folder / name
            ds.save_as(p, enforce_file_format=True)
            paths.append(p)
    return paths


def write_enhanced_series(path: Path, series: Series) -> Path:
    """One Enhanced MR file holding every (slice, frame), frames stored in shuffled order."""
    ds = _base(series, ENHANCED_MR)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 1
    order = [(s, f) for f in range(series.frames) for s in reversed(range(series.slices))]
    ds.NumberOfFrames = len(order)
    shared = Dataset()
    po = Dataset()
    po.ImageOrientationPatient = list(series.orient)
    pm = Dataset()
    pm.PixelSpacing = list(series.spacing)
    pm.SliceThickness = 8
    shared.PlaneOrientationSequence = Sequence([po])
    shared.PixelMeasuresSequence = Sequence([pm])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    pixels = []
    for s, f in order:
        k = series.first_slice + s
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = position(series, k)
        cs = Dataset()
        cs.NominalCardiacTriggerDelayTime = f * series.step_ms
        fc = Dataset()
        fc.TemporalPositionIndex = f + 1
        fc.InStackPositionNumber = s + 1
        fg.PlanePositionSequence = Sequence([pp])
        fg.CardiacSynchronizationSequence = Sequence([cs])
        fg.FrameContentSequence = Sequence([fc])
        per.append(fg)
        pixels.append(frame_image(k, f, series.rows, series.cols))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = np.stack(pixels).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@dataclass
class Archive:
    """The session archive: its root and what each part is."""

    root: Path
    truth: dict[str, str]  # relpath -> expected status
    sax_siemens: list[Series]
    lax_siemens: Series
    enhanced: Series
    rle_2ch: Series


def _rel(root: Path, paths) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Archive:
    """Two studies of one patient plus every fault; ``truth`` maps relpath -> expected status."""
    root = tmp_path_factory.mktemp("archive") / "dicom"
    truth: dict[str, str] = {}
    study_uid = generate_uid()
    # Study 1 (Siemens, UK Biobank names): SAX b1..b3 written top slice first, 4CH, extras.
    sax = [Series(f"CINE_segmented_SAX_b{i + 1}", number=10 + i, first_slice=2 - i, study_uid=study_uid,
                  frames=12 + (i == 1)) for i in range(3)]
    for i, s in enumerate(sax):
        truth.update(dict.fromkeys(_rel(root, write_single_frame_series(root / "a" / f"s{i}", s)), "ok"))
    lax = Series("CINE_segmented_LAX_4Ch", number=20, orient=LAX_ORIENT, study_uid=study_uid)
    lax_paths = write_single_frame_series(root / "a" / "lax", lax)
    truth.update(dict.fromkeys(_rel(root, lax_paths), "ok"))
    inline = Series("CINE_segmented_SAX_InlineVF", number=30, study_uid=study_uid)
    truth.update(dict.fromkeys(_rel(root, write_single_frame_series(root / "a" / "inline", inline)), "not_cine"))
    loc = Series("localizer", number=1, slices=3, frames=1, study_uid=study_uid, orient=(1, 0, 0, 0, 1, 0))
    truth.update(dict.fromkeys(_rel(root, write_single_frame_series(root / "a" / "loc", loc)), "not_cine"))
    gap = Series("CINE_segmented_LAX_2Ch", number=21, orient=LAX_ORIENT, study_uid=study_uid)
    truth.update(dict.fromkeys(_rel(root, write_single_frame_series(root / "a" / "gap", gap, skip=((0, 5),))), "inconsistent"))
    mixed = Series("CINE_segmented_LAX_3Ch", number=22, orient=LAX_ORIENT, study_uid=study_uid)
    mixed_paths = write_single_frame_series(root / "a" / "mixed", mixed)
    small = Series("CINE_segmented_LAX_3Ch", number=22, orient=LAX_ORIENT, study_uid=study_uid, uid=mixed.uid,
                   rows=16, cols=16, frames=1)
    odd = write_single_frame_series(root / "a" / "mixed_extra", small)
    mixed_paths[0].unlink()
    shutil.move(odd[0], mixed_paths[0])  # frame 0 replaced by a 16x16 image with the same instance number
    truth.update(dict.fromkeys(_rel(root, mixed_paths), "inconsistent"))
    (root / "a" / "mixed_extra").rmdir()
    # Study 2 (Philips): enhanced multi-frame SAX, RLE 2CH.
    study2 = generate_uid()
    enh = Series("sBTFE_CINE_SAX", manufacturer="Philips Medical Systems", study="ACC-1002", study_uid=study2,
                 slices=3, number=5)
    truth[_rel(root, [write_enhanced_series(root / "b" / "enh" / "IM_0001", enh)])[0]] = "ok"
    rle = Series("sBTFE_CINE_2CH", manufacturer="Philips Medical Systems", study="ACC-1002", study_uid=study2,
                 orient=LAX_ORIENT, number=6)
    rle_paths = write_single_frame_series(root / "b" / "rle", rle, rle=True)
    truth.update(dict.fromkeys(_rel(root, rle_paths), "ok"))
    # Faults.
    faults = root / "faults"
    faults.mkdir()
    data = lax_paths[3].read_bytes()
    (faults / "truncated.dcm").write_bytes(data[: len(data) - 100])
    truth["faults/truncated.dcm"] = "corrupt"
    data = rle_paths[2].read_bytes()
    (faults / "truncated_rle").write_bytes(data[: len(data) - 40])
    truth["faults/truncated_rle"] = "corrupt"
    (faults / "junk.dcm").write_bytes(b"this is not DICOM at all\n" * 40)
    truth["faults/junk.dcm"] = "not_dicom"
    (faults / "empty").write_bytes(b"")
    truth["faults/empty"] = "not_dicom"
    shutil.copy(lax_paths[4], faults / "copy_of_lax")
    truth["faults/copy_of_lax"] = "duplicate"
    import pydicom

    ds = pydicom.dcmread(lax_paths[5])
    ds.PixelData = (ds.pixel_array + 1).astype(np.uint16).tobytes()
    ds.save_as(faults / "same_sop_other_pixels.dcm", enforce_file_format=True)
    truth["faults/same_sop_other_pixels.dcm"] = "duplicate"
    return Archive(root=root, truth=truth, sax_siemens=sax, lax_siemens=lax, enhanced=enh, rle_2ch=rle)


@pytest.fixture(scope="session")
def phantom_export(tmp_path_factory) -> Path:
    """A tiny phantom cohort folder (``dicom/``, ``faults.csv``...): 3 patients of Siemens, Philips and
    GE (seed 2), every fault, enhanced and RLE files."""
    from cinefm.phantom import generate_cohort

    ph = tmp_path_factory.mktemp("phantom")
    generate_cohort(ph, patients=3, seed=2, frames=(20, 22), sax_slices=(6, 7), studies_per_patient=(1, 2),
                    enhanced_fraction=0.5, rle_fraction=0.3)
    return ph


@pytest.fixture(scope="session")
def views_yaml() -> Path:
    from cinefm.config import REPO_ROOT

    return REPO_ROOT / "config" / "views.yaml"


@pytest.fixture(scope="session")
def ingest_cfg(views_yaml) -> dict:
    return {"shards": 2, "frame_size": 32, "views": str(views_yaml), "min_frames": 10,
            "intensity_percentiles": [0.5, 99.5], "compression": "gzip"}


@pytest.fixture(scope="session")
def ingested(archive, ingest_cfg, tmp_path_factory) -> Path:
    """``run_ingest`` over the archive (1 job: no process start-up); returns the output folder."""
    from cinefm.dicom.ingest import run_ingest

    out = tmp_path_factory.mktemp("ingested")
    run_ingest(archive.root, out, ingest_cfg=ingest_cfg, jobs=1, phantom=True)
    return out


def output_text(path: Path) -> str:
    """What a reader of an output can see: decoded tables, HDF5 names and attributes, text."""
    import h5py
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_csv()
    if path.suffix == ".h5":
        parts = []
        with h5py.File(path) as h5:
            h5.visititems(lambda name, obj: parts.append(name + repr(dict(obj.attrs))))
            parts.append(repr(dict(h5.attrs)))
        return "\n".join(parts)
    return path.read_bytes().decode("latin-1")


@pytest.fixture(scope="session")
def as_text():
    """:func:`output_text` for tests that grep outputs for PHI."""
    return output_text
