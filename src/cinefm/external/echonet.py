"""EchoNet-Dynamic adapter: the public release as distributed -> files table, per-study HDF5, splits, EF.

Input (Ouyang et al., Nature 2020, "Video-based AI for beat-to-beat assessment of cardiac
function"; https://echonet.github.io/dynamic/), a folder holding:

- ``FileList.csv``: ``FileName, EF, ESV, EDV, FrameHeight, FrameWidth, FPS, NumberOfFrames,
  Split`` (``TRAIN``/``VAL``/``TEST``). ``FileName`` carries ``.avi`` in some releases and not
  in others; both are accepted.
- ``Videos/{FileName}.avi``: apical-4-chamber videos (112 x 112 in the release).
- ``VolumeTracings.csv`` (optional): ``FileName, X1, Y1, X2, Y2, Frame``, the end-diastolic
  and end-systolic LV tracings. Rows are validated (numeric, file listed, frame inside the video)
  and the traced frames are recorded; they are not needed for EF regression.

Output (``out`` plays the role of ``results/external/echonet/``):

- ``files.csv``: one row per ``FileList.csv`` row (``FILES_COLUMNS``) with a ``status``:
  ``ok``; ``missing`` (no AVI); ``unreadable`` (ffmpeg cannot decode it, or no frame);
  ``inconsistent`` (decoded frame count or size differs from FileList, or a non-numeric EF /
  unknown Split); ``duplicate`` (FileName listed twice: the first row wins). ``reason`` is
  ``code: detail`` as in ingestion.
- ``h5/{patient}/{study}.h5`` for ``ok`` rows, written by the ingestion writer
  (:func:`cinefm.dicom.extract.write_study_h5`, compression as config ``ingest.compression``) with a
  single view ``A4C`` of shape ``(1, frames, S, S)`` uint8 (grayscale, resized to ``frame_size``
  keeping aspect, padded), the ingestion dataset attrs (pixel spacing NaN: an AVI has none) plus
  ``fps``, ``ef``, ``esv``, ``edv``, ``split``, ``traced_frames``; root attrs as ingestion plus
  ``cohort = "echonet"``, ``frame_size`` and ``source_digest``.
- ``studies.csv``: manifest for :mod:`cinefm.splits` (``STUDY_COLUMNS``): ``patient_id,
  study_id, h5_relpath, status`` (``written``/``unchanged``/``failed``), ``reason, views,
  frames, split`` (the release's own split in lower case: ``train``/``val``/``test``).
- ``labels.csv``: ``study_id, patient_id, lvef, esv_ml, edv_ml, split`` (EF regression targets).
- ``flow.csv``: exclusion counts in the ingestion layout (``level, stage, status, reason, count``).
- ``tracings_issues.csv``: one row per invalid ``VolumeTracings.csv`` row (``row, file_name, reason``).

Pseudonyms: EchoNet is de-identified, but its ``FileName`` is public; the adapter still needs
the site key (:func:`cinefm.privacy.load_key`, no demo key), so EchoNet ids are treated like
every other cohort and cannot be linked to the release by anyone without the key. One video is
one patient and one study (the release holds one video per patient):
``patient_id = pseudonymize(FileName, key, "patient")``, ``study_id = pseudonymize(FileName,
key, "study")``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.atomic import write_csv
from cinefm.dicom.assemble import ViewVolume, fit_frames
from cinefm.dicom.extract import existing_digest, h5_relpath, study_digest, write_study_h5
from cinefm.privacy import pseudonymize

log = logging.getLogger(__name__)

VIEW = "A4C"
COHORT = "echonet"
FILELIST_COLUMNS = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
TRACING_COLUMNS = ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]
SPLIT_MAP = {"TRAIN": "train", "VAL": "val", "TEST": "test"}
FILES_COLUMNS = [
    "file_name", "relpath", "patient_id", "study_id", "h5_relpath", "split", "ef", "esv", "edv", "fps",
    "listed_frames", "listed_height", "listed_width", "frames", "height", "width", "traced_frames",
    "sha256", "status", "reason",
]
STUDY_COLUMNS = ["patient_id", "study_id", "h5_relpath", "status", "reason", "views", "frames", "split"]
LABEL_COLUMNS = ["study_id", "patient_id", "lvef", "esv_ml", "edv_ml", "split"]
FLOW_COLUMNS = ["level", "stage", "status", "reason", "count"]


class EchoNetError(ValueError):
    """The release folder is not an EchoNet-Dynamic release; the message names the file and the fix."""


@dataclass(frozen=True)
class Video:
    """One ``FileList.csv`` row, resolved against the release folder and the key."""

    file_name: str  # without .avi
    path: Path
    patient_id: str
    study_id: str
    split: str
    ef: float
    esv: float
    edv: float
    fps: float
    listed_frames: int
    listed_height: int
    listed_width: int
    traced_frames: str  # "46;61" or ""


def stem(name: object) -> str:
    """``FileName`` without a trailing ``.avi`` (releases differ) and surrounding blanks."""
    text = str(name).strip()
    return text[:-4] if text.lower().endswith(".avi") else text


def read_filelist(root: str | os.PathLike) -> pd.DataFrame:
    """Read ``FileList.csv`` (all columns as strings); raise naming the missing column."""
    path = Path(root) / "FileList.csv"
    if not path.is_file():
        raise EchoNetError(f"{path}: not found — --root must be the unpacked EchoNet-Dynamic folder "
                           "holding FileList.csv and Videos/")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in FILELIST_COLUMNS if c not in df.columns]
    if missing:
        raise EchoNetError(f"{path}: missing column(s) {missing}; expected {FILELIST_COLUMNS}")
    return df


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def validate_tracings(tracings: pd.DataFrame, listed_frames: dict[str, int]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Check ``VolumeTracings.csv`` rows; return (issues ``row, file_name, reason``, traced frames per file).

    A row is valid when X1..Frame are finite numbers, Frame is a non-negative integer, the file
    is listed in FileList and Frame < its listed NumberOfFrames.
    """
    missing = [c for c in TRACING_COLUMNS if c not in tracings.columns]
    if missing:
        raise EchoNetError(f"VolumeTracings.csv: missing column(s) {missing}; expected {TRACING_COLUMNS}")
    names = tracings["FileName"].map(stem)
    values = tracings[TRACING_COLUMNS[1:]].apply(pd.to_numeric, errors="coerce")
    issues, traced = [], {}
    for i, (name, row) in enumerate(zip(names, values.itertuples(index=False), strict=True)):
        frame = row.Frame
        reason = ""
        if not np.isfinite(np.asarray(row, dtype=float)).all():
            reason = "not_numeric: X1, Y1, X2, Y2 and Frame must be numbers"
        elif frame < 0 or frame != int(frame):
            reason = f"bad_frame: Frame {frame} is not a non-negative integer"
        elif name not in listed_frames:
            reason = "unknown_file: not listed in FileList.csv"
        elif frame >= listed_frames[name]:
            reason = f"frame_out_of_range: Frame {int(frame)} >= NumberOfFrames {listed_frames[name]}"
        if reason:
            issues.append((i + 2, name, reason))  # +2: header line, 1-based line numbers
        else:
            traced.setdefault(name, set()).add(int(frame))
    issues_df = pd.DataFrame(issues, columns=["row", "file_name", "reason"])
    return issues_df, {k: ";".join(str(f) for f in sorted(v)) for k, v in traced.items()}


def plan_videos(filelist: pd.DataFrame, root: str | os.PathLike, key: bytes,
                traced: dict[str, str] | None = None) -> tuple[list[Video], list[dict]]:
    """FileList rows -> videos to decode, and rows already settled (``missing``/``duplicate``/``inconsistent``)."""
    root = Path(root)
    traced = traced or {}
    videos, settled, seen = [], [], set()
    for r in filelist.itertuples(index=False):
        name = stem(r.FileName)
        nums = {k: _number(getattr(r, k)) for k in ("EF", "ESV", "EDV", "FPS", "NumberOfFrames", "FrameHeight", "FrameWidth")}
        split = SPLIT_MAP.get(str(r.Split).strip().upper(), "")
        v = Video(
            file_name=name, path=root / "Videos" / f"{name}.avi",
            patient_id=pseudonymize(name, key, "patient"), study_id=pseudonymize(name, key, "study"),
            split=split, ef=nums["EF"], esv=nums["ESV"], edv=nums["EDV"], fps=nums["FPS"],
            listed_frames=int(nums["NumberOfFrames"]) if np.isfinite(nums["NumberOfFrames"]) else -1,
            listed_height=int(nums["FrameHeight"]) if np.isfinite(nums["FrameHeight"]) else -1,
            listed_width=int(nums["FrameWidth"]) if np.isfinite(nums["FrameWidth"]) else -1,
            traced_frames=traced.get(name, ""),
        )
        bad = [k for k, x in nums.items() if not np.isfinite(x)]
        if name in seen:
            settled.append(_row(v, "duplicate", "duplicate: FileName listed twice in FileList.csv; first row kept"))
        elif not v.path.is_file():
            settled.append(_row(v, "missing", "missing: no AVI of this name under Videos/"))
        elif bad:
            settled.append(_row(v, "inconsistent", f"filelist_not_numeric: {', '.join(bad)} not a number"))
        elif not split:
            settled.append(_row(v, "inconsistent", f"filelist_bad_split: Split {r.Split!r} not in TRAIN/VAL/TEST"))
        else:
            videos.append(v)
        seen.add(name)
    return videos, settled


def _row(v: Video, status: str, reason: str, **extra) -> dict:
    row = {
        "file_name": v.file_name, "relpath": f"Videos/{v.file_name}.avi", "patient_id": v.patient_id,
        "study_id": v.study_id, "h5_relpath": h5_relpath(v.patient_id, v.study_id) if status == "ok" else "",
        "split": v.split, "ef": v.ef, "esv": v.esv, "edv": v.edv, "fps": v.fps, "listed_frames": v.listed_frames,
        "listed_height": v.listed_height, "listed_width": v.listed_width, "frames": np.nan, "height": np.nan,
        "width": np.nan, "traced_frames": v.traced_frames, "sha256": "", "status": status, "reason": reason,
    }
    row.update(extra)
    return row


def read_avi_gray(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Decode an AVI with ffmpeg (imageio-ffmpeg) to ``(frames, H, W)`` uint8 luma; return (frames, fps)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="gray", bits_per_pixel=8)
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(h, w) for buf in gen]
    gen.close()
    data = np.stack(frames) if frames else np.zeros((0, h, w), np.uint8)
    return data, float(meta.get("fps") or float("nan"))


def resize_video(frames: np.ndarray, size: int) -> np.ndarray:
    """``(F, H, W)`` uint8 -> ``(F, size, size)`` uint8: antialiased linear resize keeping aspect, zero pad.

    Uses ingestion's :func:`cinefm.dicom.assemble.fit_frames` with unit pixel spacing; a video
    already ``size x size`` is returned unchanged.
    """
    if frames.shape[1:] == (size, size):
        return frames
    out, _ = fit_frames(frames, (1.0, 1.0), size)
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def video_digest(sha256: str, frame_size: int, compression: str) -> str:
    """Identity of one study file's inputs and parameters (a rerun keeps a matching file)."""
    return study_digest({"cohort": COHORT, "frame_size": frame_size, "sha256": sha256}, compression)


def write_echo_h5(path: str | os.PathLike, v: Video, data: np.ndarray, *, fps: float, frame_size: int,
                  original_size: tuple[int, int], digest: str, compression: str) -> None:
    """Write one video as a study HDF5 through the ingestion writer (layout in the module docstring)."""
    frames = data.shape[0]
    unknown = np.full((1, 2), np.nan)  # AVI frames carry no pixel spacing
    volume = ViewVolume(data=data[None], series_ids=(v.study_id,), slice_locations_mm=np.zeros(1),
                        pixel_spacing_mm=unknown, original_pixel_spacing_mm=unknown,
                        original_size=np.array([original_size], dtype=np.int64),
                        original_frames=np.array([frames], dtype=np.int64),
                        frame_time_ms=np.array([1000.0 / fps if fps > 0 else np.nan]), window=(0.0, 255.0))
    meta = {"fps": fps, "ef": v.ef, "esv": v.esv, "edv": v.edv, "split": v.split,
            "traced_frames": np.array([int(f) for f in v.traced_frames.split(";") if f], dtype=np.int64),
            "description": "EchoNet-Dynamic apical 4-chamber"}
    write_study_h5(path, v.patient_id, v.study_id, {VIEW: volume}, {VIEW: meta},
                   {"cohort": COHORT, "frame_size": frame_size, "source_digest": digest}, compression=compression)


def convert_video(v: Video, h5_root: str | os.PathLike, frame_size: int, keep_inconsistent: bool = False,
                  compression: str = "gzip") -> dict:
    """Decode, check and write one video; return its ``files.csv`` row (never raises for data problems)."""
    raw = v.path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    try:
        data, fps_read = read_avi_gray(v.path)
    except Exception as exc:  # ffmpeg reports corrupt containers as OSError/RuntimeError/StopIteration
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = msg.replace(str(v.path), "<avi>").replace(v.file_name, "<name>")  # reasons go to studies.csv
        return _row(v, "unreadable", f"unreadable: ffmpeg cannot decode ({msg})"[:300], sha256=sha)
    f, h, w = data.shape
    extra = {"frames": f, "height": h, "width": w, "sha256": sha}
    if f == 0:
        return _row(v, "unreadable", "unreadable: no decodable frame", **extra)
    problems = []
    if f != v.listed_frames:
        problems.append(f"decoded {f} frames, FileList NumberOfFrames {v.listed_frames}")
    if (h, w) != (v.listed_height, v.listed_width):
        problems.append(f"decoded {h}x{w}, FileList FrameHeight x FrameWidth {v.listed_height}x{v.listed_width}")
    if problems and not keep_inconsistent:
        return _row(v, "inconsistent", "inconsistent: " + "; ".join(problems), **extra)
    path = Path(h5_root) / h5_relpath(v.patient_id, v.study_id)
    digest = video_digest(sha, frame_size, compression)
    written = "unchanged" if path.is_file() and existing_digest(path) == digest else "written"
    if written == "written":
        fps = v.fps if np.isfinite(v.fps) and v.fps > 0 else fps_read
        write_echo_h5(path, v, resize_video(data, frame_size), fps=fps, frame_size=frame_size,
                      original_size=(h, w), digest=digest, compression=compression)
    reason = "kept_inconsistent: " + "; ".join(problems) if problems else ""
    return _row(v, "ok", reason, h5=written, **extra)


def _convert_many(videos: list[Video], h5_root: str, frame_size: int, keep_inconsistent: bool,
                  compression: str) -> list[dict]:
    return [convert_video(v, h5_root, frame_size, keep_inconsistent, compression) for v in videos]


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def convert_all(videos: list[Video], h5_root: str | os.PathLike, *, frame_size: int, jobs: int = 1,
                keep_inconsistent: bool = False, compression: str = "gzip", chunk: int = 16) -> list[dict]:
    """Convert every video (``jobs`` processes, in chunks) with a progress bar; rows in input order."""
    from tqdm import tqdm

    bar = tqdm(total=len(videos), desc="echonet videos", unit="video", disable=None)
    rows: list[dict] = []
    batches = list(_chunks(videos, chunk))
    if jobs <= 1:
        for b in batches:
            rows += _convert_many(b, str(h5_root), frame_size, keep_inconsistent, compression)
            bar.update(len(b))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_convert_many, b, str(h5_root), frame_size, keep_inconsistent, compression)
                       for b in batches]
            for fut, b in zip(futures, batches, strict=True):
                rows += fut.result()
                bar.update(len(b))
    bar.close()
    return rows


def flow_counts(files: pd.DataFrame, unlisted: int) -> pd.DataFrame:
    """Exclusion counts (ingestion's ``flow.csv`` layout) at the levels videos and patients."""
    code = files["reason"].fillna("").map(lambda r: str(r).split(":", 1)[0].strip())
    rows = [("videos", "input", "", "", len(files))]
    bad = files.assign(code=code)[files["status"] != "ok"]
    for (status, reason), n in bad.groupby(["status", "code"]).size().sort_values(ascending=False).items():
        rows.append(("videos", "excluded", status, reason, int(n)))
    rows.append(("videos", "kept", "ok", "", int((files["status"] == "ok").sum())))
    if unlisted:
        rows.append(("videos", "unlisted", "", "not_in_filelist", unlisted))
    ok = files[files["status"] == "ok"]
    rows.append(("patients", "input", "", "", int(files["patient_id"].nunique())))
    rows.append(("patients", "kept", "ok", "", int(ok["patient_id"].nunique())))
    for split, n in ok.groupby("split").size().items():
        rows.append(("patients", "split", split, "", int(n)))
    return pd.DataFrame(rows, columns=FLOW_COLUMNS)


def studies_table(files: pd.DataFrame) -> pd.DataFrame:
    """The splits manifest (``STUDY_COLUMNS``): one row per listed video, ``failed`` when not converted."""
    first = files[files["status"] != "duplicate"]
    ok = first["status"].eq("ok")
    status = np.where(ok, first.get("h5", pd.Series("written", index=first.index)).fillna("written"), "failed")
    return pd.DataFrame({
        "patient_id": first["patient_id"], "study_id": first["study_id"],
        "h5_relpath": first["h5_relpath"].where(ok, ""), "status": status,
        "reason": first["reason"].fillna(""),
        "views": np.where(ok, VIEW, ""),
        "frames": [f"{VIEW}:{int(f)}" if o else "" for f, o in zip(first["frames"], ok, strict=True)],
        "split": first["split"],
    })[STUDY_COLUMNS].reset_index(drop=True)


def labels_table(files: pd.DataFrame) -> pd.DataFrame:
    """EF regression targets (``LABEL_COLUMNS``) of the converted videos; ``lvef`` = FileList EF (%)."""
    ok = files[files["status"] == "ok"]
    return pd.DataFrame({"study_id": ok["study_id"], "patient_id": ok["patient_id"], "lvef": ok["ef"],
                         "esv_ml": ok["esv"], "edv_ml": ok["edv"], "split": ok["split"]})[LABEL_COLUMNS]


def run_echonet(root: str | os.PathLike, out: str | os.PathLike, *, key: bytes, frame_size: int = 112,
                jobs: int = 1, keep_inconsistent: bool = False, compression: str = "gzip") -> pd.DataFrame:
    """Convert an EchoNet-Dynamic release under ``root`` into ``out`` (module docstring); return files table.

    ``compression``: of the HDF5 datasets, as config ``ingest.compression`` (none | lzf | gzip).
    """
    root, out = Path(root), Path(out)
    if frame_size < 1:
        raise EchoNetError(f"config.external.echonet.frame_size must be >= 1, got {frame_size}")
    filelist = read_filelist(root)
    listed = {stem(n): int(x) for n, x in zip(filelist["FileName"], filelist["NumberOfFrames"].map(_number)
                                              .fillna(-1), strict=True)}
    tracings_path = root / "VolumeTracings.csv"
    issues, traced = pd.DataFrame(columns=["row", "file_name", "reason"]), {}
    if tracings_path.is_file():
        issues, traced = validate_tracings(pd.read_csv(tracings_path, dtype=str, keep_default_na=False), listed)
        if len(issues):
            log.warning("%s: %d invalid row(s), first: line %s %s", tracings_path, len(issues),
                        issues["row"].iloc[0], issues["reason"].iloc[0])
    else:
        log.info("%s: absent (optional); no traced frames recorded", tracings_path)
    videos, settled = plan_videos(filelist, root, key, traced)
    log.info("echonet: %d listed videos, %d to decode", len(filelist), len(videos))
    converted = convert_all(videos, out / "h5", frame_size=frame_size, jobs=jobs, keep_inconsistent=keep_inconsistent,
                            compression=compression)
    order = {stem(n): i for i, n in enumerate(filelist["FileName"])}
    rows = sorted(converted + settled, key=lambda r: (order[r["file_name"]], r["status"] == "duplicate"))
    files = pd.DataFrame(rows)
    listed_names = set(order)
    unlisted = sum(1 for p in (root / "Videos").glob("*.avi") if p.stem not in listed_names) \
        if (root / "Videos").is_dir() else 0
    studies = studies_table(files)
    keep = set(studies.loc[studies["status"] != "failed", "h5_relpath"])
    for p in (out / "h5").glob("*/*.h5"):
        if p.relative_to(out / "h5").as_posix() not in keep:
            p.unlink()  # a video no longer converted (e.g. now corrupt) must not linger
            log.info("removed stale %s", p)
    write_csv(files[FILES_COLUMNS], out / "files.csv")
    write_csv(studies, out / "studies.csv")
    write_csv(labels_table(files), out / "labels.csv")
    flow = flow_counts(files, unlisted)
    write_csv(flow, out / "flow.csv")
    write_csv(issues, out / "tracings_issues.csv")
    log.info("echonet: %s; %d unlisted AVI(s)", files["status"].value_counts().to_dict(), unlisted)
    return files[FILES_COLUMNS]
