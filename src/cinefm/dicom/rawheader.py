"""Header-only DICOM reader for the scan's fast path: the tags ingestion reads, from bytes.

The scan reads every file once into memory (for the SHA-256 anyway) and parses its
header here instead of with ``pydicom.dcmread(stop_before_pixels=True)``, which costs
≈ 0.45 ms per file in pure Python (``benchmarks/ingest.py``; profile in
``benchmarks/README.md``). Only the data elements :mod:`cinefm.dicom.header` and
:mod:`cinefm.dicom.assemble` read are kept (``WANTED``); every other element is
skipped by its length (or, for undefined lengths, by walking its items).

Encoding (DICOM PS3.5 §7.1.2 explicit VR: 2-byte length for most VRs, 2 reserved
bytes + 4-byte length for OB/OD/OF/OL/OV/OW/SQ/SV/UC/UN/UR/UT/UV; §7.1.3 implicit VR;
§7.5 nested data sets: items (FFFE,E000), item and sequence delimiters (FFFE,E00D),
(FFFE,E0DD), undefined length 0xFFFFFFFF; PS3.10 §7.1: 128-byte preamble, ``DICM``,
group 0002 in explicit VR little endian).

Scope (else :func:`parse` returns None and the caller reads the file with pydicom,
the reference reader; ``tests/dicom/test_rawheader.py`` checks both give identical
scan tables on the phantom, pydicom's test files and the fault set):

- a 128-byte preamble and ``DICM``, group 0002 in explicit VR little endian with a
  TransferSyntaxUID; a data set in implicit or explicit VR little endian (native or
  encapsulated pixel data). Big endian, deflate, a missing transfer syntax, a
  Command Set group, or a data set whose first element disagrees with the declared
  VR encoding (pydicom then switches encoding) go to pydicom;
- every element must end inside the file; the data set ends at a top-level
  PixelData / FloatPixelData / DoubleFloatPixelData tag or exactly at the end of the
  file (where pydicom's ``stop_before_pixels`` leaves the file too);
- a kept element must carry its dictionary VR; its text (LO/SH) must be ASCII,
  single-valued and free of escape sequences (then every character set decodes it
  alike); binary numbers (US/SS/UL/FD) must hold whole values.

Values come back as pydicom's would for the scan's purposes: ``value`` follows
:func:`cinefm.dicom.header.tag_value` (codes, UIDs, DS/IS as stripped strings split
at backslashes; US/SS the first value; FD/UL numbers), ``get`` follows
``pydicom.Dataset.get`` for text (trailing NUL/space stripped) and sequences (a list
of :class:`RawHeader` items).
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

# Keywords read by cinefm.dicom.header / assemble (add here when the scan reads a new tag).
WANTED_KEYWORDS = (
    "AccessionNumber", "BitsAllocated", "BitsStored", "CardiacNumberOfImages", "Columns", "FrameTime",
    "ImageOrientationPatient", "ImagePositionPatient", "ImageType", "InstanceNumber", "Manufacturer",
    "Modality", "NominalCardiacTriggerDelayTime", "NumberOfFrames", "PatientID", "PhotometricInterpretation",
    "PixelRepresentation", "PixelSpacing", "ProtocolName", "RescaleIntercept", "RescaleSlope", "Rows",
    "SOPClassUID", "SOPInstanceUID", "SamplesPerPixel", "SeriesDescription", "SeriesInstanceUID",
    "SeriesNumber", "SliceLocation", "StudyInstanceUID", "TemporalPositionIndex", "TriggerTime",
    # sequences (items are parsed for the same keywords)
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence", "PlaneOrientationSequence",
    "PixelMeasuresSequence", "PlanePositionSequence", "CardiacSynchronizationSequence",
    "FrameContentSequence", "PixelValueTransformationSequence",
)
TAGS: dict[str, int] = {k: int(tag_for_keyword(k)) for k in WANTED_KEYWORDS}
WANTED: dict[int, str] = {t: dictionary_VR(t) for t in TAGS.values()}  # tag -> dictionary VR
_TEXT_VRS = {"LO", "SH"}
_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"}  # as header.tag_value decodes them
_NUMBER = {"US": ("H", 2), "SS": ("h", 2), "UL": ("I", 4), "FD": ("d", 8)}
for _vr in set(WANTED.values()):
    if _vr not in _TEXT_VRS | _STRING_VRS | set(_NUMBER) | {"SQ"}:
        raise RuntimeError(f"rawheader: no decoder for VR {_vr} of a wanted tag")

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_SHORT_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN",
              b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_IMPLICIT_LE, _EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
_TO_PYDICOM = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}  # big endian, deflate
_HEAD = struct.Struct("<I2sH").unpack_from  # (element << 16 | group, VR bytes, short length)
_WANTED_SWAPPED = {(t & 0xFFFF) << 16 | t >> 16: (t, vr, vr.encode()) for t, vr in WANTED.items()}
_PIXEL_SWAPPED = {(t & 0xFFFF) << 16 | t >> 16 for t in _PIXEL_TAGS}
_ITEM_END_SWAPPED = 0xE00DFFFE
_HH = struct.Struct("<HH").unpack_from
_H = struct.Struct("<H").unpack_from
_L = struct.Struct("<L").unpack_from


_ABSENT = object()


class Unusual(Exception):
    """The file is outside the fast path's scope (module docstring): read it with pydicom."""


class RawHeader:
    """The kept elements of one data set (or sequence item): tag -> (VR, value bytes | items)."""

    __slots__ = ("elems", "count", "file_meta", "original_encoding", "pixel_offset", "data_offset", "groups", "_memo")

    def __init__(self, elems: dict[int, tuple[str, Any]], count: int) -> None:
        self.elems = elems
        self.count = count  # elements in the data set, kept or not (pydicom's len(ds))
        self.file_meta = SimpleNamespace(TransferSyntaxUID=None)
        self.original_encoding: tuple[bool, bool] = (False, True)
        self.pixel_offset: int | None = None  # offset of the top-level pixel data tag (or end of file)
        self.data_offset: int | None = None  # offset of the data set (after the file meta)
        self.groups: list[tuple[int, int]] = []  # top level: (group, offset of its first element), file order
        self._memo: dict[str, Any] = {}  # keyword -> decoded value (the scan reads some tags several times)

    def __len__(self) -> int:
        return self.count

    def value(self, keyword: str, default: Any = None) -> Any:
        """What :func:`cinefm.dicom.header.tag_value` returns for a pydicom data set of the same file.

        Decoded once per keyword; callers must not modify a returned list."""
        try:
            got = self._memo[keyword]
        except KeyError:
            got = self._memo[keyword] = self._decode(keyword)
        return default if got is _ABSENT else got

    def _decode(self, keyword: str) -> Any:
        elem = self.elems.get(TAGS[keyword])
        if elem is None:
            return _ABSENT
        vr, raw = elem
        if vr == "SQ":
            return raw
        if not raw:
            return _ABSENT
        if vr in _STRING_VRS:
            text = raw.decode("latin-1").strip(" \x00")
            return text.split("\\") if "\\" in text else text
        if vr in _TEXT_VRS:
            return raw.decode("ascii").rstrip("\x00 ")
        if vr in ("US", "SS"):
            return struct.unpack_from("<" + _NUMBER[vr][0], raw)[0]
        code, size = _NUMBER[vr]
        values = struct.unpack(f"<{len(raw) // size}{code}", raw)
        return values[0] if len(values) == 1 else list(values)

    def get(self, keyword: str, default: Any = None) -> Any:
        """``pydicom.Dataset.get`` for the kept keywords (text: '' when empty; sequences: items)."""
        elem = self.elems.get(TAGS[keyword])
        if elem is None:
            return default
        if elem[0] in _TEXT_VRS:
            return elem[1].decode("ascii").rstrip("\x00 ")
        return self.value(keyword, None)


def _walk(buf: bytes, pos: int, end: int, implicit: bool, top: bool) -> tuple[RawHeader, int, bool]:
    """Parse the elements from ``pos`` to ``end`` (an item: up to its delimiter).

    Returns (data set, next position, whether an item delimiter closed it). The loop
    handles a skipped element in a few operations: one unpack of tag (as a swapped
    32-bit number), VR and short length, one dict lookup, one addition."""
    elems: dict[int, tuple[str, Any]] = {}
    count = 0
    if pos + 8 <= end:  # pydicom re-detects the VR encoding from the first element (filereader._is_implicit_vr)
        group = _H(buf, pos)[0]
        looks_explicit = 0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B
        if (top or not implicit) and looks_explicit == implicit and not (top and group == 0x7FE0):
            raise Unusual("VR encoding differs from the transfer syntax")
        if top and group == 0x0000:
            raise Unusual("a command set")
    head, long_vrs, short_vrs, wanted, undefined = _HEAD, _LONG_VRS, _SHORT_VRS, _WANTED_SWAPPED, _UNDEFINED
    groups: list[tuple[int, int]] = []
    last_group = -1
    while pos < end:
        if pos + 8 > end:
            raise Unusual("element header past the end")
        swapped, vrb, length = head(buf, pos)
        group = swapped & 0xFFFF
        if group == 0xFFFE:
            if not top and swapped == _ITEM_END_SWAPPED:
                return RawHeader(elems, count), pos + 8, True
            raise Unusual("delimiter inside a data set")
        if top and group != last_group:
            groups.append((group, pos))
            last_group = group
        if top and group == 0x7FE0 and swapped in _PIXEL_SWAPPED:
            if not implicit and vrb in long_vrs and pos + 12 > end:
                raise Unusual("pixel data element header cut")  # pydicom reads it whole before stopping
            break
        if implicit:
            length = _L(buf, pos + 4)[0]
            vpos = pos + 8
        elif vrb in long_vrs:
            length = _L(buf, pos + 8)[0]
            vpos = pos + 12
        elif vrb in short_vrs:
            vpos = pos + 8
        else:
            raise Unusual(f"unknown VR {vrb!r}")
        count += 1
        want = wanted.get(swapped)
        if want is None:
            if length == undefined:
                if not implicit and vrb != b"SQ":
                    raise Unusual("undefined length outside a sequence")
                pos = _sequence(buf, vpos, len(buf), implicit, keep=False, defined=False)[1]
                continue
            pos = vpos + length
            if pos > end:
                raise Unusual("element past the end")
            continue
        tag, vr, vr_bytes = want
        if not implicit and vrb != vr_bytes:
            raise Unusual("a wanted element has another VR than the dictionary's")
        if length == undefined:  # implicit VR: PS3.5 §7.5, an element of undefined length is a sequence
            if vr != "SQ":
                raise Unusual("a wanted element of undefined length")
            elems[tag], pos = _sequence(buf, vpos, len(buf), implicit, keep=True, defined=False)
            elems[tag] = ("SQ", elems[tag])
            continue
        vend = vpos + length
        if vend > end:
            raise Unusual("element past the end")
        if vr == "SQ":
            elems[tag] = ("SQ", _sequence(buf, vpos, vend, implicit, keep=True, defined=True)[0])
        else:
            raw = buf[vpos:vend]
            _check_value(vr, raw)
            elems[tag] = (vr, raw)
        pos = vend
    header = RawHeader(elems, count)
    if top:
        header.pixel_offset = pos
        header.groups = groups
    return header, pos, False


def _check_value(vr: str, raw: bytes) -> None:
    if vr in _TEXT_VRS:
        if not raw.isascii() or b"\\" in raw or b"\x1b" in raw:
            raise Unusual("text that needs a character set or holds several values")
    elif vr in _NUMBER and raw and len(raw) % _NUMBER[vr][1]:
        raise Unusual(f"{vr} value of {len(raw)} bytes")


def _sequence(buf: bytes, pos: int, end: int, implicit: bool, *, keep: bool, defined: bool) -> tuple[list, int]:
    """Items of a sequence value from ``pos`` (to ``end``, or its delimiter when of undefined length)."""
    items: list[RawHeader] = []
    while True:
        if defined and pos == end:
            return items, pos
        if pos + 8 > end:
            raise Unusual("sequence past the end")
        group, el = _HH(buf, pos)
        tag = group << 16 | el
        (length,) = _L(buf, pos + 4)
        if tag == _SEQ_END and not defined:
            return items, pos + 8
        if tag != _ITEM:
            raise Unusual("not an item inside a sequence")
        ipos = pos + 8
        if length == _UNDEFINED:
            item, pos, closed = _walk(buf, ipos, end, implicit, top=False)
            if not closed:
                raise Unusual("item without its delimiter")
        else:
            iend = ipos + length
            if iend > end:
                raise Unusual("item past the end")
            if keep:
                item, stop, closed = _walk(buf, ipos, iend, implicit, top=False)
                if closed or stop != iend:
                    raise Unusual("item delimiter inside an item of defined length")
            else:
                item = None
            pos = iend
        if keep:
            items.append(item)


def _meta(buf: bytes) -> tuple[str, int]:
    """(TransferSyntaxUID, offset of the data set): group 0002 in explicit VR little endian."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise Unusual("no DICM preamble")
    pos, ts = 132, None
    while pos + 8 <= len(buf):
        group, el = _HH(buf, pos)
        if group != 0x0002:
            break
        vrb = buf[pos + 4 : pos + 6]
        if vrb in _SHORT_VRS:
            (length,) = _H(buf, pos + 6)
            vpos = pos + 8
        elif vrb in _LONG_VRS:
            (length,) = _L(buf, pos + 8)
            vpos = pos + 12
        else:
            raise Unusual("file meta not in explicit VR")
        if length == _UNDEFINED or vpos + length > len(buf):
            raise Unusual("file meta element past the end")
        if el == 0x0010:
            raw = buf[vpos : vpos + length]
            if not raw.isascii():
                raise Unusual("transfer syntax is not ASCII")
            ts = raw.decode("ascii").rstrip("\x00 ")
        pos = vpos + length
    if not ts or "\\" in ts:
        raise Unusual("no transfer syntax")
    return ts, pos


def parse(buf: bytes) -> RawHeader | None:
    """The header of a whole file's bytes, or None when it is outside this reader's scope."""
    try:
        ts, pos = _meta(buf)
        if ts in _TO_PYDICOM:
            return None
        implicit = ts == _IMPLICIT_LE
        header = _walk(buf, pos, len(buf), implicit, top=True)[0]
    except (Unusual, struct.error, IndexError):
        return None
    header.file_meta.TransferSyntaxUID = ts
    header.data_offset = pos
    header.original_encoding = (implicit, True)
    return header


def pixel_source(buf: bytes, header: RawHeader) -> bytes | None:
    """The file cut down to what pixel decoding reads: file meta, group 0028 and group 7FE0 on.

    ``pydicom.pixels`` takes every decoding parameter from the Image Pixel elements
    (group 0028: samples, photometric, planar configuration, frames, rows, columns,
    bits, representation), the extended offset table (7FE0,0001-0002) and the
    transfer syntax (``pydicom.pixels.utils.as_pixel_options``), so ``dcmread`` of
    these bytes decodes the same pixels as the whole file, without parsing the rest
    of its header. None when there is no pixel data or the groups are out of order.
    """
    groups = header.groups
    if header.pixel_offset is None or header.pixel_offset >= len(buf) or not groups:
        return None
    order = [g for g, _ in groups]
    if order != sorted(set(order)) or order[-1] != 0x7FE0:
        return None
    starts = dict(groups)
    parts = [buf[: header.data_offset]]
    if 0x0028 in starts:
        i = order.index(0x0028)
        parts.append(buf[starts[0x0028] : groups[i + 1][1]])
    parts.append(buf[starts[0x7FE0] :])
    return b"".join(parts)
