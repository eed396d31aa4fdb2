"""DICOM writing: classic MR Image Storage (one file per frame) and Enhanced MR (one file per series).

Headers follow the MR Image / Enhanced MR IODs (PS3.3 A.4, A.36) closely enough for pydicom
and dcm2niix: patient/study/series modules, image plane (ImagePositionPatient of the first
pixel, ImageOrientationPatient, PixelSpacing, SliceThickness, SliceLocation), cardiac timing
(TriggerTime, NominalInterval, CardiacNumberOfImages) and standard MR acquisition tags.
Every UID is derived from the cohort seed (``pydicom.uid.generate_uid(entropy_srcs=...)``) and
no wall-clock time enters a header, so a seed gives the same bytes on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, generate_uid

from cinefm.phantom.encoding import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION,
    SeriesEncoder,
    element,
    encode_dataset,
    sequence,
)
from cinefm.phantom.geometry import Plane
from cinefm.phantom.plan import PatientPlan, StudyPlan
from cinefm.phantom.vendors import Vendor

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root; fine for synthetic data
_RLE_PLUGIN = "pylibjpeg" if "pylibjpeg" in RLELosslessEncoder.available_plugins else "pydicom"


def make_uid(*parts: object) -> str:
    """A deterministic UID from the given parts (cohort seed first).

    pydicom joins entropy sources without a separator, so the parts are joined here
    with one: otherwise (slice 1, frame 10) and (slice 11, frame 0) would collide.
    """
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=["\x1f".join(str(p) for p in parts)])


@dataclass(frozen=True)
class StudyHeader:
    """Study-level header values shared by every series of one exam."""

    patient: PatientPlan
    study: StudyPlan
    vendor: Vendor
    study_uid: str
    frame_of_reference_uid: str
    model: str
    field_strength: float
    institution: str
    station: str
    referring: str
    operator: str
    weight_kg: float
    height_m: float
    software: str


@dataclass(frozen=True, eq=False)
class SeriesSpec:
    """One series to write: what it is and where each slice lies."""

    uid: str
    number: int
    description: str
    kind: str  # cine | lge | t1map | localizer | inline
    planes: tuple[Plane, ...]  # one per slice (all the same matrix)
    trigger_ms: tuple[float, ...]  # one per frame; () for single-phase series
    rr_ms: float
    enhanced: bool = False
    rle: bool = False
    derived: bool = False
    time: str = "120000"


def _age(p: PatientPlan, s: StudyPlan) -> str:
    years = s.date.year - p.birth_date.year - ((s.date.month, s.date.day) < (p.birth_date.month, p.birth_date.day))
    return f"{years:03d}Y"


def _ds(values: list[float], ndigits: int = 6) -> list[str]:
    """Format floats as DICOM DS strings (max 16 chars)."""
    return [f"{round(float(v), ndigits):.{ndigits}g}"[:16] for v in values]


def _common(h: StudyHeader, spec: SeriesSpec) -> Dataset:
    """Patient, study, series, equipment and acquisition modules shared by both IODs."""
    p, s, v = h.patient, h.study, h.vendor
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    date = s.date.strftime("%Y%m%d")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = s.time
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = spec.time
    ds.AccessionNumber = s.accession
    ds.Modality = "MR"
    ds.Manufacturer = v.manufacturer
    ds.InstitutionName = h.institution
    ds.ReferringPhysicianName = h.referring
    ds.StationName = h.station
    ds.StudyDescription = {"siemens": "Cardiac^CMR", "ge": "MR CARDIAC FUNCTION", "philips": "MR Heart"}[v.key]
    ds.SeriesDescription = spec.description
    ds.OperatorsName = h.operator
    ds.ManufacturerModelName = h.model
    ds.PatientName = p.dicom_name
    ds.PatientID = p.mrn
    ds.PatientBirthDate = p.birth_date.strftime("%Y%m%d")
    ds.PatientSex = p.sex
    ds.PatientAge = _age(p, s)
    ds.PatientSize = f"{h.height_m:.2f}"
    ds.PatientWeight = f"{h.weight_kg:.0f}"
    ds.BodyPartExamined = "HEART" if v.key != "ge" else "CHEST"
    ds.MagneticFieldStrength = f"{h.field_strength:g}"
    ds.SoftwareVersions = h.software
    ds.DeviceSerialNumber = h.station[-5:]
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = h.study_uid
    ds.SeriesInstanceUID = spec.uid
    ds.StudyID = s.accession[-6:]
    ds.SeriesNumber = spec.number
    ds.FrameOfReferenceUID = h.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Laterality = ""
    return ds


def _acquisition(ds: Dataset, h: StudyHeader, spec: SeriesSpec) -> None:
    """Sequence parameters typical of each series kind (bSSFP cine, IR-GRE LGE, MOLLI, SSFSE)."""
    tr, te, fa, seq, var = {
        "cine": (3.0, 1.3, 55.0, "GR", "SK\\SS"),
        "inline": (3.0, 1.3, 55.0, "GR", "SK\\SS"),
        "lge": (6.5, 3.2, 25.0, "GR\\IR", "SK\\SP\\MP"),
        "t1map": (2.6, 1.1, 35.0, "GR\\IR", "SK\\SS"),
        "localizer": (1000.0, 80.0, 90.0, "SE", "SK"),
    }[spec.kind]
    ds.ScanningSequence = seq
    ds.SequenceVariant = var
    ds.ScanOptions = "CG" if spec.kind in ("cine", "inline", "lge") else ""
    ds.MRAcquisitionType = "2D"
    ds.SliceThickness = f"{spec.planes[0].thickness:g}"
    ds.RepetitionTime = f"{tr:g}"
    ds.EchoTime = f"{te:g}"
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = f"{42.577478 * h.field_strength:.6f}"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = f"{h.field_strength:g}"
    if len(spec.planes) > 1:
        gap = np.linalg.norm(spec.planes[1].position - spec.planes[0].position)
        ds.SpacingBetweenSlices = f"{gap:.4g}"
    ds.EchoTrainLength = "1"
    ds.FlipAngle = f"{fa:g}"
    ds.PatientPosition = "HFS"
    if spec.kind == "lge":
        ds.InversionTime = "300"
    if spec.trigger_ms:
        ds.NominalInterval = f"{spec.rr_ms:.0f}"
        ds.HeartRate = f"{60000.0 / spec.rr_ms:.0f}"
        ds.CardiacNumberOfImages = len(spec.trigger_ms)
        ds.TriggerWindow = "0"
        ds.BeatRejectionFlag = "N"


def _pixel_module(ds: Dataset, v: Vendor, rows: int, cols: int, kind: str) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    t1 = kind == "t1map"
    ds.BitsStored = 16 if (v.signed or t1) else v.bits_stored
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if (v.signed and not t1) else 0


def _image_type(v: Vendor, spec: SeriesSpec) -> list[str]:
    if spec.derived:
        return ["DERIVED", "SECONDARY", "OTHER" if spec.kind != "t1map" else "T1 MAP"]
    if spec.kind == "t1map":
        return ["DERIVED", "PRIMARY", "T1 MAP", "MOCO"]
    if v.key == "siemens":
        return ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
    if v.key == "ge":
        return ["ORIGINAL", "PRIMARY", "OTHER"]
    return ["ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"]


def _window(arr: np.ndarray) -> tuple[float, float]:
    """WindowCenter/Width from the 99.5th percentile (on a subsample: it only sets display)."""
    hi = float(np.percentile(arr.ravel()[::7], 99.5))
    return round(hi / 2), max(round(hi), 1)


def _file_meta(sop_class: str, sop_uid: str, syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def _set_pixels(ds: Dataset, arr: np.ndarray, rle: bool, frames: int = 1) -> None:
    """Store ``arr`` (frames, rows, cols) or (rows, cols) native or RLE-encapsulated."""
    arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<")))
    if rle:
        kw = dict(rows=ds.Rows, columns=ds.Columns, samples_per_pixel=1, bits_allocated=16,
                  bits_stored=ds.BitsStored, pixel_representation=ds.PixelRepresentation,
                  photometric_interpretation="MONOCHROME2", number_of_frames=frames)
        encoded = list(RLELosslessEncoder.iter_encode(arr, encoding_plugin=_RLE_PLUGIN, **kw))
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = arr.tobytes()
        ds["PixelData"].VR = "OW"


def write_dataset(ds: Dataset, path: Path) -> None:
    """Write one DICOM Part 10 file (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


@dataclass(frozen=True)
class WrittenFile:
    """One written file and where it belongs (for faults, truth and tests)."""

    relpath: str  # relative to dicom/
    series_uid: str
    sop_uid: str
    kind: str
    slice_index: int
    frame_index: int


def write_classic_series(
    h: StudyHeader, spec: SeriesSpec, pixels: np.ndarray, folder: Path, root: Path,
    seed: int, names: list[str], skip: frozenset[tuple[int, int]] = frozenset(),
    override_pixels: dict[tuple[int, int], tuple[Plane, np.ndarray]] | None = None,
) -> list[WrittenFile]:
    """One MR Image Storage file per (slice, frame); ``pixels`` is (slices, frames, rows, cols).

    ``skip`` leaves instances out (missing-frame fault); ``override_pixels`` writes some
    instances on another plane/matrix (mixed-matrix fault).
    """
    v = h.vendor
    n_sl, n_fr = pixels.shape[:2]
    ds = _common(h, spec)
    sop_class = MR_IMAGE
    ds.SOPClassUID = sop_class
    ds.ImageType = _image_type(v, spec)
    _acquisition(ds, h, spec)
    _pixel_module(ds, v, pixels.shape[2], pixels.shape[3], spec.kind)
    wc, ww = _window(pixels)
    ds.WindowCenter, ds.WindowWidth = f"{wc}", f"{ww}"
    if v.rescale:
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1.25"
        ds.RescaleType = "US"
        block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        block.add_new(0x0E, "FL", 0.8)
    syntax = RLELossless if spec.rle else ExplicitVRLittleEndian
    encoder = SeriesEncoder(ds, sop_class, syntax)
    bits = (int(ds.BitsStored), int(ds.PixelRepresentation))
    out = []
    k = 0
    for sl in range(n_sl):
        for fr in range(n_fr):
            k += 1
            if (sl, fr) in skip:
                continue
            sop = make_uid(seed, spec.uid, "sop", sl, fr)
            plane, arr = spec.planes[sl], pixels[sl, fr]
            if override_pixels and (sl, fr) in override_pixels:
                plane, arr = override_pixels[(sl, fr)]
            own = [
                (0x00080018, element(0x00080018, "UI", sop)),
                (0x00200012, element(0x00200012, "IS", sl + 1 if spec.kind == "localizer" else 1)),
                (0x00200013, element(0x00200013, "IS", k)),
                (0x00200032, element(0x00200032, "DS", _ds(plane.position))),
                (0x00200037, element(0x00200037, "DS", _ds(np.concatenate([plane.row_dir, plane.col_dir])))),
                (0x00201041, element(0x00201041, "DS", _ds([plane.slice_location])[0])),
                (0x00280010, element(0x00280010, "US", arr.shape[0])),
                (0x00280011, element(0x00280011, "US", arr.shape[1])),
                (0x00280030, element(0x00280030, "DS", _ds([plane.spacing, plane.spacing]))),
                (0x7FE00010, _pixel_element(arr, spec.rle, bits)),
            ]
            if spec.trigger_ms:
                own.append((0x00181060, element(0x00181060, "DS", f"{spec.trigger_ms[fr]:.2f}")))
            rel = folder / names[k - 1]
            encoder.write(root / rel, sop, own)
            out.append(WrittenFile(rel.as_posix(), spec.uid, sop, spec.kind, sl, fr))
    return out


def _pixel_element(arr: np.ndarray, rle: bool, bits: tuple[int, int]) -> bytes:
    """The PixelData element of one frame: native OW, or RLE fragments encapsulated in OB."""
    if not rle:
        return element(0x7FE00010, "OW", np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"))).tobytes())
    holder = Dataset()
    holder.Rows, holder.Columns = arr.shape
    holder.BitsStored, holder.PixelRepresentation = bits
    _set_pixels(holder, arr, rle=True)
    del holder.Rows, holder.Columns, holder.BitsStored, holder.PixelRepresentation
    return encode_dataset(holder)[0][1]


def _item(**kw) -> Dataset:
    d = Dataset()
    for key, val in kw.items():
        setattr(d, key, val)
    return d


def write_enhanced_series(
    h: StudyHeader, spec: SeriesSpec, pixels: np.ndarray, folder: Path, root: Path, seed: int, name: str,
) -> list[WrittenFile]:
    """One Enhanced MR Image Storage file holding all (slice, frame) images of the series.

    Per-frame functional groups carry the plane position, in-stack position, temporal
    index and trigger delay; the orientation and pixel measures are shared (PS3.3 C.7.6.16).
    """
    v = h.vendor
    n_sl, n_fr, rows, cols = pixels.shape
    ds = _common(h, spec)
    sop = make_uid(seed, spec.uid, "sop", "enhanced")
    ds.SOPClassUID = ENHANCED_MR_IMAGE
    ds.SOPInstanceUID = sop
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CINE" if spec.trigger_ms else "OTHER", "NONE"]
    ds.AcquisitionContrast = "T1" if spec.kind != "cine" else "MIXED"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.ContentQualification = "PRODUCT"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.ContentDate = h.study.date.strftime("%Y%m%d")
    ds.AcquisitionDateTime = ds.ContentDate + spec.time
    _pixel_module(ds, v, rows, cols, spec.kind)
    ds.NumberOfFrames = n_sl * n_fr
    ds.MagneticFieldStrength = f"{h.field_strength:g}"
    ds.ImagingFrequency = f"{42.577478 * h.field_strength:.6f}"
    ds.ResonantNucleus = "1H"
    ds.MRAcquisitionType = "2D"
    ds.PulseSequenceName = "BTFE" if spec.kind == "cine" else "IR_TFE"
    ds.EchoPulseSequence = "GRADIENT"
    ds.KSpaceFiltering = "NONE"
    if spec.trigger_ms:
        ds.NominalInterval = f"{spec.rr_ms:.0f}"
        ds.HeartRate = f"{60000.0 / spec.rr_ms:.0f}"
        ds.CardiacNumberOfImages = n_fr
        ds.CardiacSynchronizationTechnique = "RETROSPECTIVE"

    dim_uid = make_uid(seed, spec.uid, "dimension")
    ds.DimensionOrganizationSequence = Sequence([_item(DimensionOrganizationUID=dim_uid)])
    ds.DimensionOrganizationType = "3D_TEMPORAL" if spec.trigger_ms else "3D"
    dims = [(0x00209056, "Stack ID"), (0x00209057, "In-Stack Position Number")]
    if spec.trigger_ms:
        dims.append((0x00209128, "Temporal Position Index"))
    ds.DimensionIndexSequence = Sequence([
        _item(DimensionOrganizationUID=dim_uid, DimensionIndexPointer=tag,
              FunctionalGroupPointer=0x00209111, DimensionDescriptionLabel=label)
        for tag, label in dims
    ])
    p0 = spec.planes[0]
    wc, ww = _window(pixels)
    shared = _item(
        PixelMeasuresSequence=Sequence([_item(PixelSpacing=_ds([p0.spacing, p0.spacing]),
                                              SliceThickness=f"{p0.thickness:g}")]),
        PlaneOrientationSequence=Sequence([_item(
            ImageOrientationPatient=_ds(np.concatenate([p0.row_dir, p0.col_dir])))]),
        MRTimingAndRelatedParametersSequence=Sequence([_item(
            RepetitionTime="3", FlipAngle="55", EchoTrainLength=1, RFEchoTrainLength=1,
            GradientEchoTrainLength=1)]),
        FrameVOILUTSequence=Sequence([_item(WindowCenter=f"{wc}", WindowWidth=f"{ww}")]),
        PixelValueTransformationSequence=Sequence([_item(
            RescaleIntercept="0", RescaleSlope="1.25", RescaleType="US")]),
        MRFOVGeometrySequence=Sequence([_item(
            InPlanePhaseEncodingDirection="ROW", MRAcquisitionFrequencyEncodingSteps=cols,
            MRAcquisitionPhaseEncodingStepsInPlane=rows, PercentSampling="100",
            PercentPhaseFieldOfView="100")]),
    )
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    k = 0
    for sl in range(n_sl):
        position = element(0x00200032, "DS", _ds(spec.planes[sl].position))
        for fr in range(n_fr):
            k += 1
            content = [element(0x00209056, "SH", "1"), element(0x00209057, "UL", sl + 1)]
            if spec.trigger_ms:
                content.append(element(0x00209128, "UL", fr + 1))
            content += [element(0x00209156, "US", k),
                        element(0x00209157, "UL", [1, sl + 1] + ([fr + 1] if spec.trigger_ms else []))]
            groups = []
            if spec.trigger_ms:
                groups.append(sequence(0x00189118, [element(0x00209153, "FD", float(spec.trigger_ms[fr]))
                                                    + element(0x00209251, "FD", float(round(spec.rr_ms)))]))
            groups += [sequence(0x00209111, [b"".join(content)]), sequence(0x00209113, [position])]
            per_frame.append(b"".join(groups))
    holder = Dataset()
    holder.Rows, holder.Columns = rows, cols
    holder.BitsStored, holder.PixelRepresentation = ds.BitsStored, ds.PixelRepresentation
    _set_pixels(holder, pixels.reshape(n_sl * n_fr, rows, cols), spec.rle, frames=n_sl * n_fr)
    own = [(0x52009230, sequence(0x52009230, per_frame)), (0x7FE00010, encode_dataset(holder)[-1][1])]
    rel = folder / name
    SeriesEncoder(ds, ENHANCED_MR_IMAGE, RLELossless if spec.rle else ExplicitVRLittleEndian).write(root / rel, sop, own)
    return [WrittenFile(rel.as_posix(), spec.uid, sop, spec.kind, -1, -1)]


def write_report_capture(
    h: StudyHeader, spec: SeriesSpec, rgb: np.ndarray, folder: Path, root: Path, seed: int, name: str,
) -> list[WrittenFile]:
    """A Secondary Capture RGB 'report card' image (vendor inline analysis screenshot)."""
    ds = _common(h, spec)
    ds.Modality = "MR"
    sop = make_uid(seed, spec.uid, "sop", "sc")
    ds.file_meta = _file_meta(SECONDARY_CAPTURE, sop, ExplicitVRLittleEndian)
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = sop
    ds.InstanceNumber = 1
    ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    ds.ConversionType = "WSD"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(rgb.astype(np.uint8)).tobytes()
    rel = folder / name
    write_dataset(ds, root / rel)
    return [WrittenFile(rel.as_posix(), spec.uid, sop, spec.kind, 0, 0)]


def rewrite_implicit(src: Path, dst: Path) -> None:
    """Re-export one file as Implicit VR Little Endian (same SOP instance, different bytes)."""
    ds = pydicom.dcmread(src)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress(generate_instance_uid=False)  # keep the SOP instance: that is the fault
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.file_meta.ImplementationVersionName = "CINEFM_REEXPORT"
    dst.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(dst, ds, enforce_file_format=True)
