"""Frame assembly: the files of one view -> a ``(slices, frames, H, W)`` uint8 array.

Rules, in the order they are applied:

1. **Read**: single-frame files use the geometry and rescale the scan recorded in
   files.parquet; native (uncompressed) pixels are read straight from their byte offset
   (no second header parse), bits above BitsStored masked and signed values
   sign-extended as PS3.5 8.1.1 prescribes. Every other file is decoded by pydicom's
   decoders (RLE via pydicom/pylibjpeg-rle, JPEG via the installed plugins), fed with the
   fast header of :mod:`cinefm.dicom.rawheader` and the PixelData value (:func:`decode_file`); enhanced
   multi-frame files give one frame per item of the per-frame functional groups, with
   their own position and trigger time (:func:`frame_geometry`). Rescale
   slope/intercept (classic tags or PixelValueTransformationSequence) are applied;
   MONOCHROME1 is negated (the window below makes the sign convention irrelevant).
2. **Slices**: frames are grouped by their position along the slice normal
   ``n = row x col`` (positions closer than ``tol`` mm are one slice) and slices are
   ordered by ascending ``ImagePositionPatient . n``. When two series hold the same
   position, the highest SeriesNumber wins (a repeat).
3. **Frames**: within a slice, frames are ordered by trigger time, then
   InstanceNumber, then their order in the file.
4. **Common frame count**: slices with different numbers of frames (one SAX series
   per slice, each with its own heart rate) are resampled to the most common count
   (ties: the larger) by linear interpolation over the cardiac cycle, treated as
   periodic: output frame ``j`` of ``m`` samples input phase ``j * F / m``, wrapping
   from the last frame back to the first.
5. **Intensity**: one window per view (the ``[p_lo, p_hi]`` percentiles of
   ``ingest.intensity_percentiles`` over all its pixels, from a fixed-stride sample of
   at most 1M values), then ``round(255 * clip((x - lo) / (hi - lo), 0, 1))``. A SAX
   stack assembled from several series shares one window so slices keep their
   relative brightness; a flat image maps to 0.
6. **Size**: each slice is resampled (linear, triangle-filter antialiasing) so that its longer
   physical side spans ``frame_size`` pixels with square output pixels of spacing
   ``max(H * dy, W * dx) / frame_size`` mm, then zero-padded (centred) to
   ``frame_size x frame_size``. The aspect ratio is kept; the output pixel spacing
   is recorded per slice.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.lib._function_base_impl as _npq  # np.percentile's helpers (percentile below: same arithmetic)
import pydicom
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from cinefm.dicom.header import first_item, frame_geometry, tag_value, to_float
from cinefm.dicom.rawheader import RawHeader, parse, pixel_source
from cinefm.dicom.series import cluster_positions

MAX_WINDOW_SAMPLES = 1_000_000


@dataclass(frozen=True)
class Frame:
    """One decoded frame and where/when it was acquired."""

    pixels: np.ndarray  # (H, W) float32 after rescale
    position: float  # mm along the slice normal
    time: float  # trigger time (ms), NaN if unknown
    instance: float  # InstanceNumber, NaN for enhanced frames
    index: int  # frame number inside its file
    series_id: str
    series_number: int
    spacing: tuple[float, float]  # (row spacing, column spacing) mm


@dataclass(frozen=True)
class NativeLayout:
    """What the scan recorded about a single-frame file: geometry, rescale and, for native
    (uncompressed) pixels, where and how they are stored (``offset`` None: decode with pydicom)."""

    offset: int | None
    rows: int
    cols: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    big_endian: bool
    monochrome1: bool
    slope: float
    intercept: float
    position: float
    time: float
    instance: float
    spacing: tuple[float, float]


@dataclass(frozen=True)
class SourceFile:
    """One file of a view: its path, series and (when known) its native pixel layout."""

    path: str | os.PathLike
    series_id: str
    series_number: int
    native: NativeLayout | None = None


@dataclass(frozen=True)
class Slice:
    """The ordered frames of one slice position."""

    frames: np.ndarray  # (F, H, W) float32
    position: float
    times: np.ndarray  # (F,) ms
    series_id: str
    spacing: tuple[float, float]


@dataclass(frozen=True)
class ViewVolume:
    """One view ready for HDF5: uint8 data and the per-slice attributes."""

    data: np.ndarray  # (S, F, size, size) uint8
    series_ids: tuple[str, ...]
    slice_locations_mm: np.ndarray  # (S,)
    pixel_spacing_mm: np.ndarray  # (S, 2) output grid
    original_pixel_spacing_mm: np.ndarray  # (S, 2)
    original_size: np.ndarray  # (S, 2) rows, cols
    original_frames: np.ndarray  # (S,)
    frame_time_ms: np.ndarray  # (S,) after temporal resampling
    window: tuple[float, float]


def _rescales(ds: pydicom.Dataset, frames: int) -> list[tuple[float, float]]:
    """(slope, intercept) per frame: per-frame, then shared PixelValueTransformationSequence,
    then the classic RescaleSlope/RescaleIntercept; default (1, 0)."""

    def pair(item) -> tuple[float, float] | None:
        t = first_item(item, "PixelValueTransformationSequence")
        if t is None:
            return None
        return (to_float(tag_value(t, "RescaleSlope")) or 1.0, to_float(tag_value(t, "RescaleIntercept")) or 0.0)

    classic = (to_float(tag_value(ds, "RescaleSlope")) or 1.0, to_float(tag_value(ds, "RescaleIntercept")) or 0.0)
    shared = pair(first_item(ds, "SharedFunctionalGroupsSequence")) or classic
    per = ds.get("PerFrameFunctionalGroupsSequence") or []
    return [(pair(per[i]) if i < len(per) else None) or shared for i in range(frames)]


def decode_file(path: str | os.PathLike) -> tuple[RawHeader | pydicom.Dataset, np.ndarray]:
    """(header for geometry and rescale, the file's pixels as pydicom's ``pixel_array`` decodes them).

    Fast path: the header from :func:`cinefm.dicom.rawheader.parse`, and pydicom's decoder for
    the transfer syntax run on the PixelData value with the Image Pixel values of that header
    (``Decoder.as_array`` on a buffer: the same runner ``Dataset.pixel_array`` uses, without
    building a data set); for what that does not cover (colour, an extended offset table, a
    decoding error) pydicom reads the file cut down to meta, group 0028 and the pixel data
    (:func:`cinefm.dicom.rawheader.pixel_source`); a file outside the fast reader's scope is read
    whole by pydicom.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    header = parse(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if header is not None:
            arr = _decode_value(data, header)
            if arr is not None:
                return header, arr
            src = pixel_source(data, header)
            if src is not None:
                return header, pydicom.dcmread(io.BytesIO(src)).pixel_array
        ds = pydicom.dcmread(io.BytesIO(data))
        return ds, ds.pixel_array


def _decode_value(data: bytes, header: RawHeader) -> np.ndarray | None:
    """PixelData of a monochrome image decoded from its value bytes (None: use a data set)."""
    off = header.pixel_offset
    if off is None or off + 12 > len(data) or data[off : off + 4] != b"\xe0\x7f\x10\x00":
        return None
    if any(group == 0x7FE0 and start < off for group, start in header.groups):
        return None  # extended offset table (7FE0,0001): let pydicom read it
    v = header.value
    opts = {
        "rows": v("Rows"), "columns": v("Columns"), "samples_per_pixel": v("SamplesPerPixel"),
        "bits_allocated": v("BitsAllocated"), "bits_stored": v("BitsStored"),
        "pixel_representation": v("PixelRepresentation"), "photometric_interpretation": v("PhotometricInterpretation"),
    }
    if any(x is None for x in opts.values()) or opts["samples_per_pixel"] != 1:
        return None
    if not isinstance(opts["photometric_interpretation"], str):
        return None
    try:
        frames = int(v("NumberOfFrames", 1))
    except (TypeError, ValueError):
        return None
    if frames < 1:
        return None
    if header.original_encoding[0]:
        length, value_at = struct.unpack_from("<L", data, off + 4)[0], off + 8
        vr = "OW" if opts["bits_allocated"] > 8 else "OB"
    else:
        length, value_at = struct.unpack_from("<L", data, off + 8)[0], off + 12
        vr = data[off + 4 : off + 6].decode("latin-1")
    src = data[value_at:] if length == 0xFFFFFFFF else data[value_at : value_at + length]
    try:
        decoder = get_decoder(UID(header.file_meta.TransferSyntaxUID))
        return decoder.as_array(src, number_of_frames=frames, pixel_keyword="PixelData", pixel_vr=vr, **opts)[0]
    except Exception:  # whatever pydicom says about these pixels, it says it through the data set path
        return None


def read_frames(path: str | os.PathLike, series_id: str, series_number: int) -> list[Frame]:
    """Decode one file into its frames (one for classic images, N for multi-frame)."""
    ds, pixels = decode_file(path)
    geo = frame_geometry(ds)
    arr = pixels.astype(np.float32)
    if geo["frames"] == 1:
        arr = arr[None]
    if str(tag_value(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
        arr = -arr
    spacing = tuple(geo["pixel_spacing"] or (1.0, 1.0))
    inst = float(tag_value(ds, "InstanceNumber") or np.nan) if geo["frames"] == 1 else np.nan
    out = []
    for i, (slope, intercept) in enumerate(_rescales(ds, geo["frames"])):
        pos, t = geo["locations"][i], geo["times"][i]
        out.append(Frame(
            pixels=arr[i] * slope + intercept if (slope, intercept) != (1.0, 0.0) else arr[i],
            position=np.nan if pos is None else float(pos),
            time=np.nan if t is None else float(t),
            instance=inst, index=i, series_id=series_id, series_number=series_number, spacing=spacing,
        ))
    return out


def native_pixels(buf: bytes, layout: NativeLayout) -> np.ndarray:
    """Decode one native frame: mask to BitsStored, sign-extend two's complement (PS3.5 8.1.1)."""
    nbytes = layout.bits_allocated // 8
    dtype = np.dtype(f"{'>' if layout.big_endian else '<'}u{nbytes}")
    raw = np.frombuffer(buf, dtype, count=layout.rows * layout.cols)
    bits = layout.bits_stored or layout.bits_allocated
    if bits < 8 * nbytes:
        raw = raw & dtype.type((1 << bits) - 1)
    if layout.signed:
        wide = raw.astype(np.int64)
        raw = np.where(wide >= 1 << (bits - 1), wide - (1 << bits), wide)
    return raw.reshape(layout.rows, layout.cols).astype(np.float32)


def read_native_frame(src: SourceFile) -> Frame:
    """Read a single-frame file with the scan's record: native pixels straight from their
    offset (no header parse), encapsulated ones decoded by pydicom."""
    lay = src.native
    if lay.offset is None:
        px = decode_file(src.path)[1].astype(np.float32)
    else:
        with open(src.path, "rb") as fh:
            fh.seek(lay.offset)
            buf = fh.read(lay.rows * lay.cols * (lay.bits_allocated // 8))
        px = native_pixels(buf, lay)
    if (lay.slope, lay.intercept) != (1.0, 0.0):
        px = px * lay.slope + lay.intercept
    if lay.monochrome1:
        px = -px
    return Frame(pixels=px, position=lay.position, time=lay.time, instance=lay.instance, index=0,
                 series_id=src.series_id, series_number=src.series_number, spacing=lay.spacing)


def read_source(src: SourceFile) -> list[Frame]:
    """The frames of one file: the native fast path when its layout is known, else pydicom."""
    if src.native is not None:
        return [read_native_frame(src)]
    return read_frames(src.path, src.series_id, src.series_number)


def group_slices(frames: list[Frame], tol: float) -> list[Slice]:
    """Frames -> slices ordered along the normal; frames ordered in time (rules 2-3)."""
    labels, centres = cluster_positions(np.array([f.position for f in frames]), tol)
    slices = []
    for k, centre in enumerate(centres):
        members = [f for f, lab in zip(frames, labels, strict=True) if lab == k]
        latest = max(f.series_number for f in members)
        members = [f for f in members if f.series_number == latest]
        sid = Counter(f.series_id for f in members).most_common(1)[0][0]
        members = [f for f in members if f.series_id == sid]
        members.sort(key=lambda f: (_key(f.time), _key(f.instance), f.index))
        shapes = {f.pixels.shape for f in members}
        if len(shapes) > 1:
            raise ValueError(f"slice at {centre:.1f} mm mixes frame sizes {sorted(shapes)}")
        slices.append(Slice(
            frames=np.stack([f.pixels for f in members]),
            position=float(centre) if np.isfinite(centre) else float(k),
            times=np.array([f.time for f in members], dtype=float),
            series_id=sid, spacing=members[0].spacing,
        ))
    return slices


def _key(v: float) -> float:
    return v if np.isfinite(v) else np.inf


def common_frame_count(counts: list[int]) -> int:
    """The most common number of frames (ties: the larger)."""
    c = Counter(counts)
    return max(c, key=lambda n: (c[n], n))


def resample_cycle(x: np.ndarray, n: int) -> np.ndarray:
    """Resample ``x (F, ...)`` to ``n`` frames by periodic linear interpolation over the cycle."""
    f = x.shape[0]
    if f == n:
        return x
    phase = np.arange(n) * (f / n)
    lo = np.floor(phase).astype(int)
    w = (phase - lo).reshape((n,) + (1,) * (x.ndim - 1)).astype(x.dtype)
    return (1 - w) * x[lo % f] + w * x[(lo + 1) % f]


def intensity_window(arrays: list[np.ndarray], percentiles: tuple[float, float]) -> tuple[float, float]:
    """``(lo, hi)``: the given percentiles over all pixels (fixed-stride sample of <= 1M values)."""
    total = sum(a.size for a in arrays)
    stride = max(1, total // MAX_WINDOW_SAMPLES)
    # every stride-th value of the concatenated pixels, without concatenating them all
    parts, offset = [], 0
    for a in arrays:
        parts.append(a.ravel()[(-offset) % stride :: stride])
        offset += a.size
    lo, hi = percentile(np.concatenate(parts), percentiles)
    return float(lo), float(hi)


def percentile(x: np.ndarray, q) -> np.ndarray:
    """``np.percentile(x, q)`` (linear), bit for bit, for a 1-D array; integer-valued samples fast.

    Pixel values are mostly integers (stored values times an integer slope): their order
    statistics come from a histogram (``np.bincount``) instead of numpy's multi-pivot
    partition (≈ 3× faster on 10⁶ values), and numpy's own index, gamma and interpolation
    helpers finish the job, so the result is exactly ``np.percentile``'s. Anything else
    (fractions, NaN, ±inf, -0.0, a range over 2²⁰) goes to ``np.percentile``.
    """
    x = np.asarray(x)
    n = x.size
    if n < 2 or x.ndim != 1 or x.dtype.kind != "f":
        return np.percentile(x, q)
    with np.errstate(invalid="ignore"):  # NaN/inf cast to garbage, which fails the comparison below
        ints = x.astype(np.int64)
    if not np.array_equal(ints, x):  # fractions, NaN or inf
        return np.percentile(x, q)
    lo_v, hi_v = int(ints.min()), int(ints.max())
    if hi_v - lo_v > 1 << 20 or (lo_v <= 0 <= hi_v and np.signbit(x[ints == 0]).any()):
        return np.percentile(x, q)
    cum = np.cumsum(np.bincount(ints - lo_v))
    quantiles = np.asanyarray(np.true_divide(q, 100))
    method = _npq._QuantileMethods["linear"]
    virtual = np.asanyarray(method["get_virtual_index"](n, quantiles))
    prev_i, next_i = _npq._get_indexes(x, virtual, n)

    def at(rank: np.ndarray) -> np.ndarray:  # value of 0-based rank (numpy's -1: the last)
        return (np.searchsorted(cum, rank % n, side="right") + lo_v).astype(x.dtype)

    gamma = _npq._get_gamma(virtual, prev_i, method)
    return _npq._lerp(at(prev_i), at(next_i), gamma)


def to_uint8(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``round(255 * clip((x - lo) / (hi - lo), 0, 1))``; a flat window gives zeros."""
    if hi <= lo:
        return np.zeros(x.shape, np.uint8)
    return np.rint(np.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of linear interpolation with a triangle antialiasing filter.

    Output pixel ``i`` is centred at input coordinate ``(i + 0.5) * n_in / n_out - 0.5``;
    its weights are ``max(0, 1 - |j - centre| / s)`` with ``s = max(1, n_in / n_out)``
    (plain linear interpolation when enlarging, a triangle filter as wide as the output
    pixel when shrinking, as PIL's antialiased bilinear), normalized to sum 1.
    """
    scale = n_in / n_out
    support = max(1.0, scale)
    centre = (np.arange(n_out) + 0.5) * scale - 0.5
    j = np.arange(n_in)
    w = np.clip(1.0 - np.abs(j[None, :] - centre[:, None]) / support, 0.0, None)
    w[w.sum(axis=1) == 0, np.clip(np.rint(centre[w.sum(axis=1) == 0]).astype(int), 0, n_in - 1)] = 1.0
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_frames(x: np.ndarray, spacing: tuple[float, float], size: int) -> tuple[np.ndarray, float]:
    """Resize ``x (F, H, W)`` keeping physical aspect, pad to ``size x size``; return (out, spacing mm).

    Separable resampling with :func:`resize_matrix` along rows and columns
    (``A_h @ frame @ A_w.T``, two matrix products per frame).
    """
    f, h, w = x.shape
    dy, dx = float(spacing[0]) or 1.0, float(spacing[1]) or 1.0
    out_spacing = max(h * dy, w * dx) / size
    nh = min(size, max(1, round(h * dy / out_spacing)))
    nw = min(size, max(1, round(w * dx / out_spacing)))
    img = np.asarray(x, dtype=np.float32)
    if (nh, nw) != (h, w):
        img = resize_matrix(h, nh) @ img @ resize_matrix(w, nw).T
    out = np.zeros((f, size, size), np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[:, top : top + nh, left : left + nw] = img
    return out, out_spacing


def assemble_view(
    sources: list[SourceFile],
    *,
    frame_size: int,
    percentiles: tuple[float, float],
    tol: float = 0.5,
) -> ViewVolume:
    """The files of one view -> :class:`ViewVolume` (rules 1-6)."""
    frames = [fr for src in sources for fr in read_source(src)]
    slices = group_slices(frames, tol)
    n = common_frame_count([s.frames.shape[0] for s in slices])
    lo, hi = intensity_window([s.frames for s in slices], percentiles)
    data, spacing_out, frame_ms = [], [], []
    for s in slices:
        resized, sp = fit_frames(resample_cycle(s.frames, n), s.spacing, frame_size)
        data.append(to_uint8(resized, lo, hi))
        spacing_out.append((sp, sp))
        t = s.times[np.isfinite(s.times)]
        step = float(np.median(np.diff(t))) if len(t) > 1 else np.nan
        frame_ms.append(step * s.frames.shape[0] / n)
    return ViewVolume(
        data=np.stack(data),
        series_ids=tuple(s.series_id for s in slices),
        slice_locations_mm=np.array([s.position for s in slices]),
        pixel_spacing_mm=np.array(spacing_out),
        original_pixel_spacing_mm=np.array([s.spacing for s in slices], dtype=float),
        original_size=np.array([s.frames.shape[1:] for s in slices], dtype=np.int64),
        original_frames=np.array([s.frames.shape[0] for s in slices], dtype=np.int64),
        frame_time_ms=np.array(frame_ms),
        window=(lo, hi),
    )
