"""One file -> one :class:`FileRecord`: a header-only read plus the checks a header can carry.

Each file is read once into memory (files up to ``MAX_IN_MEMORY``; larger ones are hashed
in a stream): the SHA-256 of every byte (content-duplicate detection) and the header come
from the same bytes. The header is parsed by :mod:`cinefm.dicom.rawheader` (the tags the
scan reads, 6-10x faster than pydicom's pure-Python parse; benchmarks/README.md); anything outside that reader's
scope (big endian, deflate, no preamble, non-ASCII text in a read tag...) is parsed by
``pydicom.dcmread(..., stop_before_pixels=True)``, the reference reader (``reader="pydicom"``
forces it; tests check both give identical tables). Either way the read stops *before* the
PixelData element, so pixel values are never decoded here. What a header-only read cannot
see by itself, a truncated file, is found by reading the PixelData element's own header: its value
length (native data) or the chain of item headers (encapsulated data, PS3.5 A.4) must
end inside the file. Native data must also be as long as Rows x Columns x frames x
samples x BitsAllocated / 8 says.

File-level statuses set here (archive-wide ones are set in :mod:`cinefm.dicom.series`):

==============  =====================================================================
``not_dicom``   not a DICOM file (no ``DICM`` marker and no DICOM tags at the start)
``corrupt``     header unreadable, truncated, pixel data shorter than the header says
``not_cine``    DICOM but not an MR image (other modality, SR, no pixel data)
``unsupported`` MR image that cannot be decoded here (transfer syntax without an
                installed decoder, colour, float pixels, missing identifiers)
``ok``          a candidate; may still be quarantined by the series-level rules
==============  =====================================================================

A ``reason`` starts with a short stable code (``truncated:``, ``modality:``...) that
:mod:`cinefm.dicom.flow` counts by, then a human-readable detail.

Privacy: patient and study ids are keyed pseudonyms (:mod:`cinefm.privacy`; study id
from AccessionNumber, the report join key), series and SOP instance UIDs are keyed
hashes too (vendors embed acquisition timestamps in UIDs). Names, birth dates, MRNs
and dates are read by pydicom but never copied into a record.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import math
import os
import struct
import warnings
from dataclasses import dataclass, fields
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from cinefm.dicom.rawheader import RawHeader, parse
from cinefm.dicom.views import normalize_vendor
from cinefm.privacy import pseudonymize

STATUSES = ("ok", "duplicate", "corrupt", "not_dicom", "not_cine", "unsupported", "inconsistent")

MR_IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
}
_PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}
_ITEM, _SEQ_END = 0xFFFEE000, 0xFFFEE0DD
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT", b"SV", b"UV"}


@dataclass(frozen=True)
class FileRecord:
    """One input file as the scan sees it (a row of ``files.parquet`` before series rules).

    Columns: ``relpath`` (to the DICOM root), ``size``, ``sha256``, ``status``, ``reason``;
    pseudonyms ``patient_id`` (P..., from PatientID), ``study_id`` (S..., from
    AccessionNumber, else StudyInstanceUID), ``series_id`` (R..., SeriesInstanceUID),
    ``sop_id`` (I..., SOPInstanceUID); header values ``modality``, ``sop_class``,
    ``transfer_syntax``, ``vendor`` (normalized Manufacturer), ``description``
    (SeriesDescription, else ProtocolName), ``image_type``, ``series_number``,
    ``instance_number``, ``rows``, ``cols``, ``frames`` (in the file), ``trigger_time``
    (ms), ``slice_location`` (mm), ``cardiac_images`` (CardiacNumberOfImages),
    ``orientation`` (6), ``pixel_spacing`` (2: row, column mm); per frame of multi-frame
    files ``frame_times``, ``frame_positions``; the pixel layout (``pixel_offset`` ...
    ``rescale_intercept``) that lets extract read native pixels without a second parse.

    Geometry: ``slice_location`` is the position (mm) of the first frame along the
    slice normal ``n = row x col`` of ImageOrientationPatient (``ImagePositionPatient . n``),
    falling back to the SliceLocation tag.
    """

    relpath: str
    size: int
    sha256: str | None = None
    status: str = "ok"
    reason: str = ""
    patient_id: str | None = None
    study_id: str | None = None
    series_id: str | None = None
    sop_id: str | None = None
    modality: str | None = None
    sop_class: str | None = None
    transfer_syntax: str | None = None
    vendor: str | None = None
    description: str | None = None
    image_type: str | None = None
    series_number: int | None = None
    instance_number: int | None = None
    rows: int | None = None
    cols: int | None = None
    frames: int | None = None
    trigger_time: float | None = None
    slice_location: float | None = None
    cardiac_images: int | None = None
    orientation: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, ...] | None = None
    frame_times: tuple[float, ...] | None = None
    frame_positions: tuple[float, ...] | None = None
    # Native pixel layout (lets extract read single-frame pixels without parsing the header again)
    pixel_offset: int | None = None  # byte offset of the PixelData value; None when encapsulated
    bits_allocated: int | None = None
    bits_stored: int | None = None
    pixel_representation: int | None = None  # 0 unsigned, 1 two's complement
    big_endian: bool | None = None
    photometric: str | None = None
    rescale_slope: float | None = None
    rescale_intercept: float | None = None


RECORD_COLUMNS = tuple(f.name for f in fields(FileRecord))


def uid_pseudonym(uid: str, key: bytes, prefix: str = "I", length: int = 16) -> str:
    """Keyed hash (HMAC-SHA256) of a DICOM UID: ``prefix`` + ``length`` hex digits."""
    digest = hmac.new(key, f"uid:{uid.strip()}".encode(), hashlib.sha256).hexdigest()
    return prefix + digest[:length]


def _looks_like_dicom_without_preamble(head: bytes) -> bool:
    """True when a file starts with a plausible group 0002/0008 tag (old, preamble-less DICOM)."""
    if len(head) < 8:
        return False
    for fmt in ("<HH", ">HH"):
        group, elem = struct.unpack(fmt, head[:4])
        if group in (0x0002, 0x0008) and elem <= 0x0120:
            return True
    return False


def _read_dataset(fp: BinaryIO) -> pydicom.Dataset:
    """Header-only read; tolerate preamble-less files whose first bytes are DICOM tags."""
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True)
    except InvalidDicomError:
        fp.seek(0)
        if not _looks_like_dicom_without_preamble(fp.read(8)):
            raise
        fp.seek(0)
        return pydicom.dcmread(fp, stop_before_pixels=True, force=True)


def _pixel_element_problem(
    fp: BinaryIO, offset: int, size: int, implicit: bool, little: bool, expected: int | None, frames: int
) -> tuple[str | None, int | None]:
    """Check the PixelData element at ``offset`` against the file size: (reason or None, value offset).

    Native data: the value length must fit in the file and hold ``expected`` bytes.
    Encapsulated data (undefined length): walk the item headers to the sequence
    delimiter (PS3.5 A.4); every item must end inside the file and there must be at
    least one fragment per frame.
    """
    endian = "<" if little else ">"
    fp.seek(offset)
    head = fp.read(12)
    if len(head) < 8:
        return f"truncated: file ends inside the PixelData element header at byte {offset}", None
    if implicit:
        (length,) = struct.unpack(endian + "L", head[4:8])
        value_at = offset + 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            return f"truncated: file ends inside the PixelData element header at byte {offset}", None
        (length,) = struct.unpack(endian + "L", head[8:12])
        value_at = offset + 12
    else:
        (length,) = struct.unpack(endian + "H", head[6:8])
        value_at = offset + 8
    if length != 0xFFFFFFFF:
        if value_at + length > size:
            return (
                f"truncated: PixelData holds {length} bytes from byte {value_at} "
                f"but the file ends {value_at + length - size} bytes early"
            ), None
        if expected is not None and length < expected:
            return f"pixel_length: PixelData holds {length} bytes, the header implies {expected}", None
        return None, value_at
    pos, items = value_at, 0
    while True:
        if pos + 8 > size:
            return f"truncated: encapsulated PixelData item {items} starts past the end of file ({size} bytes)", None
        fp.seek(pos)
        group, elem, ilen = struct.unpack("<HHL", fp.read(8))
        tag = group << 16 | elem
        if tag == _SEQ_END:
            break
        if tag != _ITEM or ilen == 0xFFFFFFFF:
            return f"encapsulation: unexpected tag ({group:04X},{elem:04X}) in encapsulated PixelData at byte {pos}", None
        pos += 8 + ilen
        items += 1
        if pos > size:
            return f"truncated: encapsulated PixelData fragment {items - 1} ends {pos - size} bytes past the end of file", None
    fragments = items - 1  # the first item is the Basic Offset Table
    if fragments < frames:
        return f"fragments: encapsulated PixelData has {fragments} fragments for {frames} frames", None
    return None, None


_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"}
_TAG = {}


def tag_value(ds: pydicom.Dataset | None, keyword: str, default: Any = None) -> Any:
    """Value of ``keyword`` in ``ds``; numbers and codes are decoded straight from the raw bytes.

    pydicom converts an element on first access through its hooks (tens of microseconds
    each); the scan reads ~25 elements per file, so ASCII-only VRs (codes, UIDs, decimal
    and integer strings) and US/SS are decoded here. Multi-valued strings become lists.
    Other VRs (names, free text with a character set) go through pydicom.
    """
    if ds is None:
        return default
    if type(ds) is RawHeader:
        return ds.value(keyword, default)
    tag = _TAG.get(keyword)
    if tag is None:
        tag = _TAG[keyword] = tag_for_keyword(keyword)
        if tag is None:
            raise KeyError(f"{keyword!r} is not a DICOM keyword")
    try:
        elem = ds.get_item(tag)
    except KeyError:
        return default
    if elem is None:
        return default
    if not isinstance(elem, RawDataElement):
        return elem.value if elem.value is not None else default
    vr = elem.VR or dictionary_VR(tag)
    raw = elem.value
    if raw is None or (not raw and vr != "SQ"):
        return default
    if vr in _STRING_VRS:
        text = raw.decode("latin-1").strip(" \x00")
        return text.split("\\") if "\\" in text else text
    if vr in ("US", "SS") and len(raw) >= 2:
        fmt = ("<" if elem.is_little_endian else ">") + ("H" if vr == "US" else "h")
        return struct.unpack(fmt, raw[:2])[0]
    return ds.get(keyword, default)


def to_float(value: Any) -> float | None:
    """``float(value)`` when finite, else None (missing, empty or malformed DS/IS)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(map(math.isfinite, out)) else None


def slice_normal(orientation: tuple[float, ...]) -> np.ndarray:
    """Unit slice normal ``n = row x col`` from ImageOrientationPatient (6 direction cosines)."""
    r0, r1, r2, c0, c1, c2 = (float(v) for v in orientation[:6])
    n = np.array([r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0])  # np.cross is slow on 3-vectors
    norm = float(np.sqrt(n @ n))
    return n / norm if norm > 0 else n


def first_item(ds: pydicom.Dataset | None, seq: str) -> pydicom.Dataset | None:
    """The first item of sequence ``seq`` in ``ds`` (None when absent or empty)."""
    if ds is None:
        return None
    items = ds.get(seq)
    return items[0] if items else None


def frame_geometry(ds: pydicom.Dataset) -> dict[str, Any]:
    """Orientation, pixel spacing and per-frame (trigger time, position) of one dataset.

    Enhanced multi-frame objects: per-frame functional groups first, then shared ones
    (PS3.3 C.7.6.16): PlaneOrientationSequence, PixelMeasuresSequence,
    PlanePositionSequence, CardiacSynchronizationSequence.NominalCardiacTriggerDelayTime
    (falling back to FrameContentSequence.TemporalPositionIndex). Classic objects:
    ImageOrientationPatient, PixelSpacing, ImagePositionPatient, TriggerTime; classic
    multi-frame objects space frames by FrameTime.
    """
    frames = _int_or_none(tag_value(ds, "NumberOfFrames")) or 1
    shared = first_item(ds, "SharedFunctionalGroupsSequence")
    per = ds.get("PerFrameFunctionalGroupsSequence") or []

    def group(i: int, seq: str) -> pydicom.Dataset | None:
        fg = per[i] if i < len(per) else None
        return first_item(fg, seq) or first_item(shared, seq)

    if per or shared is not None:
        orient = _floats(tag_value(group(0, "PlaneOrientationSequence"), "ImageOrientationPatient"), 6)
        spacing = _floats(tag_value(group(0, "PixelMeasuresSequence"), "PixelSpacing"), 2)
        positions, times = [], []
        for i in range(frames):
            positions.append(_floats(tag_value(group(i, "PlanePositionSequence"), "ImagePositionPatient"), 3))
            t = to_float(tag_value(group(i, "CardiacSynchronizationSequence"), "NominalCardiacTriggerDelayTime"))
            if t is None:
                t = to_float(tag_value(group(i, "FrameContentSequence"), "TemporalPositionIndex"))
            times.append(t)
    else:
        orient = _floats(tag_value(ds, "ImageOrientationPatient"), 6)
        spacing = _floats(tag_value(ds, "PixelSpacing"), 2)
        ipp = _floats(tag_value(ds, "ImagePositionPatient"), 3)
        t0 = to_float(tag_value(ds, "TriggerTime"))
        if frames > 1:
            step = to_float(tag_value(ds, "FrameTime"))
            times = [None if step is None else (t0 or 0.0) + i * step for i in range(frames)]
        else:
            times = [t0]
        positions = [ipp] * frames
    if orient is not None and all(p is not None for p in positions):
        n = slice_normal(orient)
        locs: list[float | None] = [p[0] * n[0] + p[1] * n[1] + p[2] * n[2] for p in positions]
    else:
        loc = to_float(tag_value(ds, "SliceLocation"))
        locs = [loc] * frames
    return {"frames": frames, "orientation": orient, "pixel_spacing": spacing, "times": times, "locations": locs}


def _expected_native_bytes(ds: pydicom.Dataset, frames: int) -> int | None:
    try:
        bits = int(tag_value(ds, "BitsAllocated"))
        n = int(tag_value(ds, "Rows")) * int(tag_value(ds, "Columns")) * frames * int(tag_value(ds, "SamplesPerPixel", 1))
    except (TypeError, ValueError):
        return None
    return (n * bits + 7) // 8


def _identity(ds: pydicom.Dataset, key: bytes) -> tuple[dict[str, Any], tuple[str, str]]:
    """Pseudonymous ids (patient from PatientID, study from AccessionNumber, else StudyInstanceUID).

    Also returns the raw (PatientID, study key) pair, for the optional id map only.
    """
    pid = str(ds.get("PatientID", "") or "").strip()
    acc = str(ds.get("AccessionNumber", "") or "").strip()
    study_uid = str(tag_value(ds, "StudyInstanceUID", "") or "").strip()
    series_uid = str(tag_value(ds, "SeriesInstanceUID", "") or "").strip()
    sop_uid = str(tag_value(ds, "SOPInstanceUID", "") or "").strip()
    study_key = acc or (f"uid:{study_uid}" if study_uid else "")
    ids = {
        "patient_id": pseudonymize(pid, key, "patient") if pid else None,
        "study_id": pseudonymize(study_key, key, "study") if study_key else None,
        "series_id": pseudonymize(series_uid, key, "series") if series_uid else None,
        "sop_id": uid_pseudonym(sop_uid, key) if sop_uid else None,
    }
    return ids, (pid, study_key)


def _describe(ds: pydicom.Dataset) -> dict[str, Any]:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    sop = str(tag_value(ds, "SOPClassUID", "") or "")
    desc = str(ds.get("SeriesDescription", "") or ds.get("ProtocolName", "") or "").strip()
    image_type = tag_value(ds, "ImageType")
    if isinstance(image_type, str):
        image_type = [image_type]
    return {
        "modality": str(tag_value(ds, "Modality", "") or "") or None,
        "sop_class": MR_IMAGE_CLASSES.get(sop) or (_uid(sop).name if sop else None),
        "transfer_syntax": _uid(str(ts)).name if ts else None,
        "vendor": normalize_vendor(str(ds.get("Manufacturer", "") or "")),
        "description": desc or None,
        "image_type": "\\".join(str(v) for v in image_type) if image_type else None,
        "series_number": _int_or_none(tag_value(ds, "SeriesNumber")),
        "instance_number": _int_or_none(tag_value(ds, "InstanceNumber")),
        "rows": _int_or_none(tag_value(ds, "Rows")),
        "cols": _int_or_none(tag_value(ds, "Columns")),
        "cardiac_images": _int_or_none(tag_value(ds, "CardiacNumberOfImages")),
    }


@functools.lru_cache(maxsize=4096)
def _uid(value: str) -> UID:
    """``pydicom.uid.UID(value)``, cached: a scan meets the same few SOP classes and transfer syntaxes."""
    return UID(value)


@functools.lru_cache(maxsize=256)
def _decoder_available(uid: UID) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(uid).is_available
    except NotImplementedError:
        return False


def _image_problem(ds: pydicom.Dataset, meta: dict[str, Any]) -> tuple[str, str] | None:
    """(status, reason) when an MR image cannot be used by this pipeline, else None."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None:
        uid = _uid(str(ts))
        if not uid.is_transfer_syntax:
            return "unsupported", f"transfer_syntax: unknown transfer syntax {uid}"
        if uid.is_compressed:
            if not _decoder_available(uid):
                return "unsupported", (
                    f"transfer_syntax: no installed decoder for {uid.name} "
                    "(install a pylibjpeg/gdcm plugin for it)"
                )
    photometric = str(tag_value(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or int(tag_value(ds, "SamplesPerPixel", 1)) != 1:
        return "unsupported", f"photometric: {photometric} images; cine MR is expected monochrome"
    if not meta["rows"] or not meta["cols"]:
        return "corrupt", "header: Rows/Columns missing"
    return None


READERS = ("fast", "pydicom")
MAX_IN_MEMORY = 256 * 2**20  # bytes; larger files are hashed in a stream and parsed by pydicom


def read_file(root: str | os.PathLike, relpath: str, key: bytes, reader: str = "fast") -> FileRecord:
    """Scan one file (``root / relpath``): header-only read, checks, SHA-256. Never raises."""
    return read_file_ids(root, relpath, key, reader)[0]


def read_file_ids(
    root: str | os.PathLike, relpath: str, key: bytes, reader: str = "fast"
) -> tuple[FileRecord, tuple[str, str] | None]:
    """:func:`read_file` plus the raw (PatientID, study key) pair for the id map (None if unread).

    ``reader``: ``fast`` reads the file once (SHA-256 and header from the same bytes) and
    parses the header with :mod:`cinefm.dicom.rawheader`, falling back to pydicom for
    anything outside that reader's scope; ``pydicom`` always uses pydicom (the reference).
    Both give the same record.
    """
    if reader not in READERS:
        raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
    path = os.path.join(root, relpath)
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns on every oddity; the status says what matters
            size = os.fstat(fp.fileno()).st_size
            header = None
            if size <= MAX_IN_MEMORY:
                data = fp.read()
                sha = hashlib.sha256(data).hexdigest()
                if reader == "fast":
                    header = parse(data)
                fp = io.BytesIO(data)
            else:
                sha = hashlib.file_digest(fp, "sha256").hexdigest()
                fp.seek(0)
            raw: list[tuple[str, str]] = []
            return _classify(fp, relpath, size, sha, key, raw, header), (raw[0] if raw else None)
    except OSError as exc:
        reason = f"unreadable: {type(exc).__name__}: {exc.strerror}"
        return FileRecord(relpath, -1, status="corrupt", reason=reason), None


def _classify(
    fp: BinaryIO, relpath: str, size: int, sha: str, key: bytes, raw: list, header: RawHeader | None = None
) -> FileRecord:
    """Statuses and values of one file; ``header``: its fast-path parse (None: read ``fp`` with pydicom)."""
    base = {"relpath": relpath, "size": size, "sha256": sha}
    if size == 0:
        return FileRecord(**base, status="not_dicom", reason="empty: file has 0 bytes")
    if header is not None:
        ds, pixel_offset = header, header.pixel_offset
    else:
        try:
            ds = _read_dataset(fp)
        except InvalidDicomError:
            return FileRecord(**base, status="not_dicom", reason="not_dicom: no 'DICM' marker and no DICOM tags at the start")
        except Exception as exc:  # pydicom raises many types on damaged headers
            return FileRecord(**base, status="corrupt", reason=f"header: unreadable header ({type(exc).__name__}: {exc})"[:300])
        pixel_offset = fp.tell()
    try:
        meta = _describe(ds)
        ids, raw_ids = _identity(ds, key)
        raw.append(raw_ids)
    except Exception as exc:
        return FileRecord(**base, status="corrupt", reason=f"header: bad header values ({type(exc).__name__}: {exc})"[:300])
    try:
        return _classify_image(fp, base, meta, ids, ds, pixel_offset, size)
    except Exception as exc:  # e.g. a damaged VR pydicom cannot convert (NotImplementedError) in a pixel tag
        return FileRecord(**base, **meta, **ids, status="corrupt",
                          reason=f"header: bad header values ({type(exc).__name__}: {exc})"[:300])


def _classify_image(fp: BinaryIO, base: dict, meta: dict, ids: dict, ds: pydicom.Dataset | RawHeader,
                    pixel_offset: int, size: int) -> FileRecord:
    """The checks after identity: pixel element, MR image, geometry, decodability, truncation."""
    rec = {**base, **meta, **ids}
    if not ds and not meta["modality"]:
        return FileRecord(**rec, status="not_dicom", reason="not_dicom: no DICOM data elements")
    fp.seek(pixel_offset)
    head = fp.read(4)
    implicit, little = ds.original_encoding
    tag = None
    if len(head) == 4:
        group, elem = struct.unpack(("<" if little is not False else ">") + "HH", head)
        tag = group << 16 | elem
    sop_uid = str(tag_value(ds, "SOPClassUID", "") or "")
    is_mr = sop_uid in MR_IMAGE_CLASSES or (not sop_uid and meta["modality"] == "MR")
    if tag not in _PIXEL_TAGS:
        if sop_uid in MR_IMAGE_CLASSES:
            return FileRecord(**rec, status="corrupt", reason=f"truncated: no PixelData before the end of file ({size} bytes)")
        what = meta["sop_class"] or f"modality {meta['modality']}"
        return FileRecord(**rec, status="not_cine", reason=f"no_pixels: {what} holds no image")
    if not is_mr:
        what = meta["sop_class"] or "unknown SOP class"
        return FileRecord(**rec, status="not_cine", reason=f"modality: {meta['modality'] or '?'} ({what}), not an MR image")
    if tag != 0x7FE00010:
        return FileRecord(**rec, status="unsupported", reason=f"pixels: {_PIXEL_TAGS[tag]} (floating-point pixels)")
    try:
        geo = frame_geometry(ds)
    except Exception as exc:
        return FileRecord(**rec, status="corrupt", reason=f"header: bad geometry ({type(exc).__name__}: {exc})"[:300])
    rec.update(
        frames=geo["frames"],
        trigger_time=geo["times"][0],
        slice_location=geo["locations"][0],
        orientation=geo["orientation"],
        pixel_spacing=geo["pixel_spacing"],
    )
    if geo["frames"] > 1:
        rec.update(
            frame_times=tuple(np.nan if t is None else t for t in geo["times"]),
            frame_positions=tuple(np.nan if p is None else p for p in geo["locations"]),
        )
    problem = _image_problem(ds, meta)
    if problem:
        return FileRecord(**rec, status=problem[0], reason=problem[1])
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    encapsulated = ts is not None and _uid(str(ts)).is_compressed
    expected = None if encapsulated else _expected_native_bytes(ds, geo["frames"])
    issue, value_at = _pixel_element_problem(
        fp, pixel_offset, size, bool(implicit), little is not False, expected, geo["frames"]
    )
    if issue:
        return FileRecord(**rec, status="corrupt", reason=issue)
    rec.update(
        pixel_offset=value_at,
        bits_allocated=_int_or_none(tag_value(ds, "BitsAllocated")),
        bits_stored=_int_or_none(tag_value(ds, "BitsStored")),
        pixel_representation=_int_or_none(tag_value(ds, "PixelRepresentation")),
        big_endian=little is False,
        photometric=str(tag_value(ds, "PhotometricInterpretation", "")) or None,
        rescale_slope=to_float(tag_value(ds, "RescaleSlope")),
        rescale_intercept=to_float(tag_value(ds, "RescaleIntercept")),
    )
    if not ids["series_id"] or not ids["patient_id"] or not ids["study_id"]:
        missing = [n for n, k in (("PatientID", "patient_id"), ("StudyInstanceUID/AccessionNumber", "study_id"),
                                  ("SeriesInstanceUID", "series_id")) if not ids[k]]
        return FileRecord(**rec, status="unsupported", reason=f"identifiers: {', '.join(missing)} missing")
    return FileRecord(**rec)
