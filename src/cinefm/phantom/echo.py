"""Synthetic EchoNet-Dynamic release: apical-4-chamber-like videos of a beating LV whose EF is known.

``generate_echonet(out_dir, videos, seed, **opts)`` writes a folder in the exact layout of the
public release (Ouyang et al., Nature 2020; https://echonet.github.io/dynamic/), so that
:func:`cinefm.external.echonet.run_echonet` reads it as it reads the real one:

- ``FileList.csv``: ``FileName`` (``0X`` + 16 hex digits, no ``.avi``), ``EF``, ``ESV``, ``EDV``
  (mL), ``FrameHeight``, ``FrameWidth``, ``FPS``, ``NumberOfFrames``, ``Split``
  (``TRAIN``/``VAL``/``TEST``);
- ``Videos/<FileName>.avi``: ``size x size`` grey MJPEG AVIs (ffmpeg through imageio-ffmpeg);
- ``VolumeTracings.csv``: ``FileName`` (with ``.avi``), ``X1, Y1, X2, Y2, Frame``: for the
  end-systolic and the end-diastolic frame, the LV long axis (first row) and 20 chords
  perpendicular to it (method of discs), as in the release;
- ``faults.csv`` (not part of the release; for checks): ``file_name, fault, expected_status``
  with the adapter's status for each injected fault.

Image model (one video): an ultrasound sector (apex at the top) of speckled tissue; the LV a
prolate ellipsoid seen in its long-axis plane (an ellipse with semi-axes ``a`` across, ``b``
along the axis), its apex fixed, the base moving towards it in systole; a brighter myocardial
rim that thickens as the cavity shrinks; an RV, and two atria that fill while the ventricles
empty (the LA by an amount that grows with the LV stroke). Volumes by the ellipsoid formula ``V = 4/3 π a² b`` (the area-length formula applied to
an ellipse; Folland et al., Circulation 1979), so
``EF = 100 (EDV − ESV) / EDV`` exactly. The cavity follows one cardiac cycle per ``fps·60/hr``
frames: from ED it empties to ES over the first ``SYSTOLE`` share of the cycle, then refills.
EF is drawn from a mixture of normal (~ N(58, 8)) and reduced (U(12, 45)) function.

Faults (``faults=True``), extra rows beyond the ``videos`` good ones: a corrupt AVI
(``unreadable``), a listed video without file (``missing``), a video whose FileList
``NumberOfFrames`` is wrong (``inconsistent``), and an AVI that FileList does not list.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.atomic import atomic_path, write_csv

log = logging.getLogger(__name__)

SYSTOLE = 0.35            # share of the cycle from ED to ES
CHORDS = 20               # VolumeTracings: chords per traced frame (plus the long axis)
FILELIST_COLUMNS = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
FAULT_COLUMNS = ["file_name", "fault", "expected_status"]


@dataclass(frozen=True)
class EchoHeart:
    """Geometry and timing of one phantom video (lengths in pixels at ``size`` = 112)."""

    name: str
    ef: float             # percent, = 100 (EDV - ESV) / EDV
    a_ed: float           # LV semi-axis across at ED
    b_ed: float           # LV semi-axis along the long axis at ED
    a_es: float
    b_es: float
    tilt: float           # long-axis angle from vertical (radians)
    cycle: float          # frames per cardiac cycle
    phase: float          # cycle phase of frame 0, in [0, 1)
    frames: int
    rv_ef: float          # RV fractional area change (independent of the LV)
    gain: float           # overall brightness
    split: str

    def volume_ml(self, a: float, b: float, cm_per_px: float) -> float:
        """Prolate ellipsoid volume ``4/3 π a² b`` in mL."""
        return 4.0 / 3.0 * math.pi * (a * cm_per_px) ** 2 * (b * cm_per_px)


def draw_ef(rng: np.random.Generator, reduced_share: float) -> float:
    """EF in percent: reduced function U(12, 45) with probability ``reduced_share``, else N(58, 8) in [35, 78]."""
    if rng.random() < reduced_share:
        return float(rng.uniform(12.0, 45.0))
    return float(np.clip(rng.normal(58.0, 8.0), 35.0, 78.0))


def plan_heart(name: str, split: str, rng: np.random.Generator, *, frames: Sequence[int], fps: float,
               heart_rate: Sequence[float], reduced_share: float) -> EchoHeart:
    """Draw one video's anatomy and timing; ES axes chosen so the ellipsoid volumes give the drawn EF."""
    ef = draw_ef(rng, reduced_share)
    a_ed, b_ed = rng.uniform(15.0, 17.0), rng.uniform(27.0, 30.0)
    shortening = float(np.clip(0.22 * ef / 60.0 + rng.normal(0.0, 0.02), 0.02, 0.3))  # long-axis shortening
    b_es = b_ed * (1.0 - shortening)
    a_es = a_ed * math.sqrt((1.0 - ef / 100.0) / (1.0 - shortening))  # V ∝ a² b
    hr = rng.uniform(*heart_rate)
    return EchoHeart(name=name, ef=ef, a_ed=a_ed, b_ed=b_ed, a_es=a_es, b_es=b_es,
                     tilt=math.radians(rng.uniform(4.0, 14.0)), cycle=fps * 60.0 / hr,
                     phase=float(rng.uniform(0.0, 1.0)), frames=int(rng.integers(frames[0], frames[1] + 1)),
                     rv_ef=float(rng.uniform(0.35, 0.6)), gain=float(rng.uniform(0.85, 1.15)), split=split)


def filling(phase: np.ndarray) -> np.ndarray:
    """Ventricular filling in [0, 1] over the cycle: 1 at ED (phase 0), 0 at ES (phase ``SYSTOLE``)."""
    p = np.mod(phase, 1.0)
    sys = 0.5 * (1.0 + np.cos(np.pi * p / SYSTOLE))
    dia = 0.5 * (1.0 - np.cos(np.pi * (p - SYSTOLE) / (1.0 - SYSTOLE)))
    return np.where(p < SYSTOLE, sys, dia)


def lv_axes(h: EchoHeart, frame: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """LV semi-axes ``(a, b)`` at ``frame`` (frames may be fractional)."""
    g = filling(h.phase + np.asarray(frame, dtype=float) / h.cycle)
    return h.a_es + (h.a_ed - h.a_es) * g, h.b_es + (h.b_ed - h.b_es) * g


def key_frames(h: EchoHeart) -> tuple[int, int]:
    """(ES frame, ED frame) of the first complete beat inside the video: frames nearest the phases."""
    f = np.arange(h.frames)
    ph = np.mod(h.phase + f / h.cycle, 1.0)
    ed_dist = np.minimum(ph, 1.0 - ph)
    ed = int(f[np.argmin(ed_dist[: max(2, int(math.ceil(h.cycle)))])])
    es_dist = np.abs(np.mod(h.phase + f / h.cycle, 1.0) - SYSTOLE)
    es = int(f[np.argmin(es_dist[: max(2, int(math.ceil(h.cycle)))])])
    return es, ed


def _geometry(size: int) -> dict[str, float]:
    s = size / 112.0
    return {"apex_x": 62.0 * s, "apex_y": 14.0 * s, "scale": s}


def render_video(h: EchoHeart, size: int, seed: int) -> np.ndarray:
    """``(frames, size, size)`` uint8 A4C-like video of heart ``h`` (module docstring)."""
    rng = np.random.default_rng(seed)
    geo = _geometry(size)
    s = geo["scale"]
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    # ultrasound sector: apex at top centre, ±38°, depth ~ the image
    ox, oy = size / 2.0, 2.0 * s
    r = np.hypot(xx - ox, yy - oy)
    ang = np.arctan2(xx - ox, yy - oy)
    sector = (np.abs(ang) < math.radians(38.0)) & (r < 0.97 * size)
    speckle = rng.gamma(2.0, 0.5, size=(size, size)).astype(np.float32)  # fixed tissue texture
    tissue = 70.0 * speckle * (1.0 - 0.35 * r / size)                    # depth attenuation
    ux, uy = math.sin(h.tilt), math.cos(h.tilt)                          # LV long axis direction (down)
    apex_x, apex_y = geo["apex_x"], geo["apex_y"]
    rv_tilt = -h.tilt - math.radians(18.0)
    rvx, rvy = math.sin(rv_tilt), math.cos(rv_tilt)
    out = np.empty((h.frames, size, size), np.uint8)
    a_t, b_t = lv_axes(h, np.arange(h.frames))
    g_t = filling(h.phase + np.arange(h.frames) / h.cycle)
    for f in range(h.frames):
        a, b = a_t[f] * s, b_t[f] * s
        cx, cy = apex_x + b * ux, apex_y + b * uy
        u = (xx - cx) * ux + (yy - cy) * uy
        v = (xx - cx) * uy - (yy - cy) * ux
        d_lv = np.sqrt((u / b) ** 2 + (v / a) ** 2)
        wall = (7.0 * s) * (h.a_ed / max(a_t[f], 1e-3)) ** 0.5                 # thicker in systole
        d_wall = np.sqrt((u / (b + wall)) ** 2 + (v / (a + wall)) ** 2)
        # RV: left of the septum, in phase with the LV, its own fractional change
        rv_scale = 1.0 - h.rv_ef * (1.0 - g_t[f])
        rb, ra = 0.8 * h.b_ed * s * (0.9 + 0.1 * rv_scale), 0.55 * h.a_ed * s * rv_scale ** 0.5
        rcx, rcy = apex_x - 22.0 * s + rb * rvx, apex_y + 10.0 * s + rb * rvy
        ru = (xx - rcx) * rvx + (yy - rcy) * rvy
        rvv = (xx - rcx) * rvy - (yy - rcy) * rvx
        d_rv = np.sqrt((ru / rb) ** 2 + (rvv / ra) ** 2)
        # atria below the valves: fill while the ventricles empty
        la_r = (9.0 + 5.0 * (1.0 - g_t[f]) * h.ef / 60.0) * s                   # LA takes the stroke volume
        ra_r = (8.0 + 2.0 * (1.0 - g_t[f])) * s
        base_x, base_y = apex_x + 2 * b * ux, apex_y + 2 * b * uy
        d_la = np.hypot(xx - (base_x + la_r * ux), yy - (base_y + la_r * uy + 2.0 * s)) / la_r
        d_ra = np.hypot(xx - (rcx + (rb + ra_r) * rvx), yy - (rcy + (rb + ra_r) * rvy)) / ra_r
        img = tissue.copy()
        img = np.where(d_wall < 1.0, 150.0 * speckle, img)                 # myocardium (LV rim)
        blood = (d_lv < 1.0) | (d_rv < 1.0) | (d_la < 1.0) | (d_ra < 1.0)
        img = np.where(blood, 10.0 + 6.0 * rng.random((size, size), dtype=np.float32), img)
        img = img * h.gain + rng.normal(0.0, 4.0, (size, size)).astype(np.float32)
        out[f] = np.clip(np.where(sector, img, 0.0), 0, 255).astype(np.uint8)
    return out


def tracing_rows(h: EchoHeart, frame: int, size: int) -> list[list]:
    """VolumeTracings rows of one frame: the long axis (apex → base), then ``CHORDS`` perpendicular chords."""
    geo = _geometry(size)
    s = geo["scale"]
    a_arr, b_arr = lv_axes(h, frame)
    a, b = float(a_arr) * s, float(b_arr) * s
    ux, uy = math.sin(h.tilt), math.cos(h.tilt)
    ax0, ay0 = geo["apex_x"], geo["apex_y"]
    rows = [[f"{h.name}.avi", ax0, ay0, ax0 + 2 * b * ux, ay0 + 2 * b * uy, frame]]
    for k in range(CHORDS):
        t = -1.0 + (2 * k + 1) / CHORDS              # disc centres along the axis, in units of b
        half = a * math.sqrt(max(0.0, 1.0 - t * t))
        cx, cy = ax0 + (1 + t) * b * ux, ay0 + (1 + t) * b * uy
        rows.append([f"{h.name}.avi", cx - half * uy, cy + half * ux, cx + half * uy, cy - half * ux, frame])
    return rows


def write_avi(path: str | os.PathLike, video: np.ndarray, fps: float, quality: int = 3) -> None:
    """Write ``(frames, H, W)`` uint8 as an MJPEG AVI with ffmpeg (``-q:v quality``), atomically."""
    import imageio_ffmpeg

    _, h, w = video.shape
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), pix_fmt_in="gray", pix_fmt_out="yuvj420p",
                                             fps=fps, codec="mjpeg", quality=None,
                                             output_params=["-q:v", str(quality), "-f", "avi"],
                                             macro_block_size=1, ffmpeg_log_level="error")
        writer.send(None)
        for frame in video:
            writer.send(np.ascontiguousarray(frame))
        writer.close()


def _names(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        name = "0X" + "".join(f"{x:X}" for x in rng.integers(0, 16, 16))
        if name not in names:
            names.append(name)
    return names


def _splits(n: int, shares: Sequence[float], rng: np.random.Generator) -> list[str]:
    """``n`` release splits with counts ``round(share * n)`` (TEST gets the rest), shuffled."""
    n_train, n_val = round(shares[0] * n), round(shares[1] * n)
    labels = ["TRAIN"] * n_train + ["VAL"] * n_val + ["TEST"] * (n - n_train - n_val)
    return list(rng.permutation(labels))


def generate_echonet(out_dir: str | os.PathLike, videos: int, seed: int, *, size: int = 112, fps: float = 50.0,
                     frames: Sequence[int] = (60, 100), heart_rate: Sequence[float] = (60.0, 100.0),
                     cm_per_px: float = 0.14, reduced_share: float = 0.3,
                     splits: Sequence[float] = (0.6, 0.2, 0.2), faults: bool = True) -> dict[str, Path]:
    """Write a synthetic EchoNet-Dynamic release of ``videos`` good videos (+ faults) under ``out_dir``.

    Same ``seed`` and options → same FileList, tracings and frames. Returns the written paths.
    """
    if videos < 3:
        raise ValueError(f"config.external.echonet.phantom.videos: need >= 3 (train/val/test), got {videos}")
    if len(splits) != 3 or abs(sum(splits) - 1.0) > 1e-6:
        raise ValueError(f"config.external.echonet.phantom.splits: three shares summing to 1, got {list(splits)}")
    out = Path(out_dir)
    (out / "Videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_faults = 4 if faults else 0
    names = _names(rng, videos + n_faults)
    split_of = _splits(videos, splits, rng)
    hearts = [plan_heart(names[i], split_of[i], rng, frames=frames, fps=fps, heart_rate=heart_rate,
                         reduced_share=reduced_share) for i in range(videos)]
    rows, tracings = [], []
    for i, h in enumerate(hearts):
        write_avi(out / "Videos" / f"{h.name}.avi", render_video(h, size, seed * 100_003 + i), fps)
        rows.append(_filelist_row(h, size, fps, cm_per_px, h.frames))
        es, ed = key_frames(h)
        tracings += tracing_rows(h, es, size) + tracing_rows(h, ed, size)
    fault_rows = []
    if faults:
        fault_rows = _write_faults(out, names[videos:], rng, size=size, fps=fps, frames=frames,
                                   heart_rate=heart_rate, cm_per_px=cm_per_px, reduced_share=reduced_share,
                                   rows=rows, seed=seed)
    filelist = pd.DataFrame(rows, columns=FILELIST_COLUMNS)
    write_csv(filelist, out / "FileList.csv")
    write_csv(pd.DataFrame(tracings, columns=["FileName", "X1", "Y1", "X2", "Y2", "Frame"]),
              out / "VolumeTracings.csv")
    write_csv(pd.DataFrame(fault_rows, columns=FAULT_COLUMNS), out / "faults.csv")
    log.info("phantom echonet: %d videos (+%d faults) in %s", videos, len(fault_rows), out)
    return {"filelist": out / "FileList.csv", "videos": out / "Videos", "tracings": out / "VolumeTracings.csv",
            "faults": out / "faults.csv"}


def _filelist_row(h: EchoHeart, size: int, fps: float, cm_per_px: float, listed_frames: int) -> dict:
    edv = h.volume_ml(h.a_ed, h.b_ed, cm_per_px)
    esv = h.volume_ml(h.a_es, h.b_es, cm_per_px)
    return {"FileName": h.name, "EF": 100.0 * (edv - esv) / edv, "ESV": esv, "EDV": edv, "FrameHeight": size,
            "FrameWidth": size, "FPS": fps, "NumberOfFrames": listed_frames, "Split": h.split}


def _write_faults(out: Path, names: list[str], rng: np.random.Generator, *, size: int, fps: float,
                  frames: Sequence[int], heart_rate: Sequence[float], cm_per_px: float, reduced_share: float,
                  rows: list[dict], seed: int) -> list[dict]:
    """The four injected faults (module docstring); appends their FileList rows to ``rows``."""
    kw = dict(frames=frames, fps=fps, heart_rate=heart_rate, reduced_share=reduced_share)
    corrupt, missing, wrong, unlisted = (plan_heart(n, "TRAIN", rng, **kw) for n in names)
    (out / "Videos" / f"{corrupt.name}.avi").write_bytes(b"RIFF\x00\x10\x00\x00AVI LIST" + rng.bytes(4096))
    rows.append(_filelist_row(corrupt, size, fps, cm_per_px, corrupt.frames))
    rows.append(_filelist_row(missing, size, fps, cm_per_px, missing.frames))
    write_avi(out / "Videos" / f"{wrong.name}.avi", render_video(wrong, size, seed * 100_003 + 90_001), fps)
    rows.append(_filelist_row(wrong, size, fps, cm_per_px, wrong.frames + 7))
    write_avi(out / "Videos" / f"{unlisted.name}.avi", render_video(unlisted, size, seed * 100_003 + 90_002), fps)
    return [
        {"file_name": corrupt.name, "fault": "corrupt_avi", "expected_status": "unreadable"},
        {"file_name": missing.name, "fault": "missing_avi", "expected_status": "missing"},
        {"file_name": wrong.name, "fault": "wrong_number_of_frames", "expected_status": "inconsistent"},
        {"file_name": unlisted.name, "fault": "unlisted_avi", "expected_status": ""},
    ]


__all__ = ["EchoHeart", "draw_ef", "filling", "generate_echonet", "key_frames", "lv_axes", "plan_heart",
           "render_video", "tracing_rows", "write_avi"]
