"""Fast Part 10 writing for series of many similar instances (explicit VR little endian body).

A cine cohort is hundreds of thousands of small files that differ in a dozen elements.
``SeriesEncoder`` encodes the shared elements once with pydicom and the per-instance ones
(UIDs, numbers, positions, pixels) directly with ``struct``, then merges them in tag
order (PS3.5 7.1.2). The bytes equal ``pydicom.dcmwrite(ds, enforce_file_format=True)``
of the merged dataset; the phantom tests check that on written files.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.1"
IMPLEMENTATION_VERSION = "CINEFM_PHANTOM"
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
_STRUCT = {"US": "<H", "UL": "<I", "SS": "<h", "SL": "<i", "FL": "<f", "FD": "<d"}


def element(tag: int, vr: str, value: str | int | float | bytes | list) -> bytes:
    """One data element, explicit VR little endian (PS3.5 7.1.2), padded to even length."""
    if isinstance(value, bytes):
        raw = value
    elif vr in _STRUCT:
        values = value if isinstance(value, list) else [value]
        raw = b"".join(struct.pack(_STRUCT[vr], v) for v in values)
    else:
        text = "\\".join(str(v) for v in value) if isinstance(value, list) else str(value)
        raw = text.encode("ascii")
    if len(raw) % 2:
        raw += b"\x00" if vr in ("UI", "OB") else b" "
    group, elem = tag >> 16, tag & 0xFFFF
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(raw)) + raw
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(raw)) + raw


def sequence(tag: int, items: list[bytes]) -> bytes:
    """A sequence of defined length whose items hold the given encoded elements (PS3.5 7.5)."""
    body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(it)) + it for it in items)
    return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"SQ", 0, len(body)) + body


def file_meta(sop_class: str, sop_uid: str, syntax: str) -> bytes:
    """Preamble, ``DICM`` and the File Meta Information group (PS3.10 7.1)."""
    body = b"".join([
        element(0x00020001, "OB", b"\x00\x01"),
        element(0x00020002, "UI", sop_class),
        element(0x00020003, "UI", sop_uid),
        element(0x00020010, "UI", syntax),
        element(0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
        element(0x00020013, "SH", IMPLEMENTATION_VERSION),
    ])
    return b"\x00" * 128 + b"DICM" + element(0x00020000, "UL", len(body)) + body


def encode_dataset(ds: Dataset) -> list[tuple[int, bytes]]:
    """Each top-level element of ``ds`` encoded (explicit VR little endian) by pydicom."""
    encodings = convert_encodings(ds.get("SpecificCharacterSet", "ISO_IR 100"))
    out = []
    for elem in ds:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_data_element(fp, elem, encodings)
        out.append((int(elem.tag), fp.getvalue()))
    return out


class SeriesEncoder:
    """Writes the instances of one series: shared elements encoded once, the rest per file."""

    def __init__(self, shared: Dataset, sop_class: str, syntax: str):
        self.shared = encode_dataset(shared)
        self.sop_class = sop_class
        self.syntax = syntax

    def write(self, path: Path, sop_uid: str, own: list[tuple[int, bytes]]) -> None:
        """Write one instance; ``own`` = (tag, encoded element) pairs overriding shared ones."""
        tags = {t for t, _ in own}
        merged = sorted([e for e in self.shared if e[0] not in tags] + own, key=lambda e: e[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(file_meta(self.sop_class, sop_uid, self.syntax))
            fh.write(b"".join(b for _, b in merged))
