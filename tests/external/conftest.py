"""A tiny EchoNet-Dynamic release in the exact distributed format, written once per session.

``release`` holds ``FileList.csv`` (FileName with and without ``.avi``), ``Videos/*.avi``
(MJPEG AVIs written with ffmpeg through imageio-ffmpeg, as the release's videos are AVIs decodable
by ffmpeg), and ``VolumeTracings.csv``. Frame ``f`` of every video has mean level
``LEVEL0 + STEP * f`` over a fixed pattern, so tests can check frame order and content.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinefm.external.echonet import run_echonet

KEY = b"echonet-test-key-0123456789abcdef"
LEVEL0, STEP = 40.0, 5.0


def synthetic_video(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """``(frames, H, W)`` uint8: a smooth pattern whose mean level rises by ``STEP`` per frame."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    pattern = 25.0 * np.sin(xx / (7.0 + seed)) * np.cos(yy / 11.0)
    levels = LEVEL0 + STEP * np.arange(frames, dtype=np.float32)
    return np.clip(levels[:, None, None] + pattern[None], 0, 255).astype(np.uint8)


def write_avi(path: Path, video: np.ndarray, fps: float) -> None:
    """Write ``video`` as an MJPEG AVI with ffmpeg (high quality, so decoding is near-lossless)."""
    import imageio_ffmpeg

    _, h, w = video.shape
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), pix_fmt_in="gray", pix_fmt_out="yuvj420p",
                                         fps=fps, codec="mjpeg", quality=None, output_params=["-q:v", "2"],
                                         macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for frame in video:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


@dataclass(frozen=True)
class Entry:
    """One FileList row of the fixture and what the adapter must make of it."""

    name: str
    frames: int  # frames actually in the AVI
    listed_frames: int  # NumberOfFrames in FileList
    height: int
    width: int
    split: str
    ef: float
    kind: str  # ok | corrupt | missing


ENTRIES = [
    Entry("0X1A2B3C4D5E6F7A01", 24, 24, 112, 112, "TRAIN", 61.5, "ok"),
    Entry("0X1A2B3C4D5E6F7A02", 30, 30, 112, 112, "VAL", 34.25, "ok"),
    Entry("0X1A2B3C4D5E6F7A03", 20, 20, 112, 112, "TEST", 48.0, "ok"),
    Entry("0X1A2B3C4D5E6F7A04", 22, 22, 96, 128, "TRAIN", 70.0, "ok"),  # non-square: resized + padded
    Entry("0X1A2B3C4D5E6F7A05", 25, 25, 112, 112, "TEST", 55.0, "corrupt"),
    Entry("0X1A2B3C4D5E6F7A06", 26, 40, 112, 112, "VAL", 58.0, "ok"),  # wrong NumberOfFrames
    Entry("0X1A2B3C4D5E6F7A07", 21, 21, 112, 112, "TRAIN", 20.0, "missing"),
]
UNLISTED = "0X1A2B3C4D5E6F7A99"


@dataclass(frozen=True)
class Release:
    root: Path
    videos: dict[str, np.ndarray]  # name -> frames written


@pytest.fixture(scope="session")
def release(tmp_path_factory) -> Release:
    root = tmp_path_factory.mktemp("echonet_release")
    (root / "Videos").mkdir()
    videos = {}
    rows = []
    for i, e in enumerate(ENTRIES):
        path = root / "Videos" / f"{e.name}.avi"
        if e.kind == "ok":
            videos[e.name] = synthetic_video(e.frames, e.height, e.width, i)
            write_avi(path, videos[e.name], fps=50.0)
        elif e.kind == "corrupt":
            path.write_bytes(b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(range(256)) * 8)
        rows.append({
            "FileName": e.name + (".avi" if i % 2 else ""),  # releases differ: with and without .avi
            "EF": e.ef, "ESV": 20.0 + i, "EDV": 80.0 + i, "FrameHeight": e.height, "FrameWidth": e.width,
            "FPS": 50, "NumberOfFrames": e.listed_frames, "Split": e.split,
        })
    write_avi(root / "Videos" / f"{UNLISTED}.avi", synthetic_video(8, 112, 112, 9), fps=50.0)
    pd.DataFrame(rows).to_csv(root / "FileList.csv", index=False)
    tracing_rows = []
    for frame in (3, 17):
        for k in range(4):
            tracing_rows.append([f"{ENTRIES[0].name}.avi", 40 + k, 30 + k, 70 - k, 30 + k, frame])
    tracing_rows += [
        [f"{ENTRIES[1].name}.avi", 40, 30, 70, 30, 99],  # frame beyond NumberOfFrames 30
        [f"{ENTRIES[2].name}.avi", "abc", 30, 70, 30, 5],  # not numeric
        ["0XDEADBEEF.avi", 40, 30, 70, 30, 1],  # file not listed
    ]
    pd.DataFrame(tracing_rows, columns=["FileName", "X1", "Y1", "X2", "Y2", "Frame"]).to_csv(
        root / "VolumeTracings.csv", index=False)
    return Release(root, videos)


@pytest.fixture(scope="session")
def converted(release, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("echonet_out")
    files = run_echonet(release.root, out, key=KEY, frame_size=112, jobs=1)
    return out, files
