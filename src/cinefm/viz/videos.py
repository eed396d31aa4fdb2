"""Heat-map videos of a fine-tuned encoder's attention on chosen test studies (the I/O edge of cinefm.viz).

For one experiment (``results/finetune/{experiment}/best.ckpt``) and the ``attention:`` config
section: draw ``studies`` test studies (seeded; ``null`` = all) of the downstream test split,
build each chosen view's clip as fine-tuning evaluates it (:class:`cinefm.data.transforms.ClipTransform`,
no augmentation; the middle slice of a SAX stack), run the video trunk, take the class-token
attention of the configured blocks (:mod:`cinefm.viz.attention`), and write to ``out_dir``
(``results/attention/{experiment}``):

- ``videos/{study}_{view}.mp4``: the grey clip with the attention overlaid (H.264, imageio + ffmpeg),
  ``upscale`` × the model's input size, ``fps`` frames per second;
- ``videos/{study}_{view}.gif``: the same at the model's input size (small; embedded in the HTML report);
- ``videos/{study}_{view}.png``: poster frame, the frame holding the attention maximum;
- ``videos.csv``: one row per (study, view) asked for: experiment, study_id, view, slice, status
  (``ok``, or ``absent`` with the reason), the three files (relative to ``out_dir``), frames, height, width (of the MP4),
  token_grid (``txhxw`` of the last chosen block's keys), blocks, peak_frame, peak_row, peak_col
  (where the upsampled attention peaks, in clip pixels).

Overlay: ``grey·(1 − α·a) + α·a·colour(a)`` with ``a`` the attention min–max scaled over the
whole clip and ``colour`` a matplotlib colormap, so unattended pixels keep the grey image.
Study ids are the pipeline's pseudonymous ids. MP4 writing follows imageio's ffmpeg plugin
(``imageio.v2.get_writer(..., format="FFMPEG", codec="libx264")``; H.264 in yuv420p needs even
sides: ``macro_block_size=2``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cinefm.atomic import atomic_path, write_csv
from cinefm.viz.attention import mvit_class_attention, to_clip
from cinefm.viz.support import check_supported

log = logging.getLogger(__name__)

COLUMNS = ["experiment", "study_id", "view", "slice", "status", "reason", "mp4", "gif", "poster", "frames",
           "height", "width", "token_grid", "blocks", "peak_frame", "peak_row", "peak_col"]
OUR_SUFFIXES = (".mp4", ".gif", ".png")
VIDEOS = "videos"  # sub-folder of the media files (a directory output of the Snakemake rule)
VIDEO_PREFIX = "model.video."  # FinetuneModule.model (StudyModel).video in the Lightning state dict


@dataclass(frozen=True)
class AttentionSettings:
    """The ``attention:`` config section (see config/config.yaml)."""

    studies: int | None
    views: tuple[str, ...]
    blocks: tuple[int, ...]
    seed: int
    fps: float
    alpha: float
    colormap: str
    upscale: int

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> AttentionSettings:
        try:
            return cls(studies=None if section["studies"] is None else int(section["studies"]),
                       views=tuple(section["views"]), blocks=tuple(int(b) for b in section["blocks"]),
                       seed=int(section["seed"]), fps=float(section["fps"]), alpha=float(section["alpha"]),
                       colormap=str(section["colormap"]), upscale=int(section["upscale"]))
        except KeyError as err:
            raise KeyError(f"config.attention: missing key {err} — see config/config.yaml") from err

    def __post_init__(self) -> None:
        from matplotlib import colormaps

        if self.colormap not in colormaps:
            raise ValueError(f"config.attention.colormap: {self.colormap!r} is not a matplotlib colormap "
                             "(e.g. inferno, magma, viridis, jet)")


# ----------------------------------------------------------------------------- pure parts


def scale_unit(heat: np.ndarray) -> np.ndarray:
    """Min–max scale to [0, 1] over the whole array (all zeros when it is constant)."""
    lo, hi = float(np.min(heat)), float(np.max(heat))
    return np.zeros_like(heat, dtype=np.float32) if hi <= lo else ((heat - lo) / (hi - lo)).astype(np.float32)


def overlay(grey_thw: np.ndarray, heat_thw: np.ndarray, alpha: float, colormap: str = "inferno",
            upscale: int = 1) -> np.ndarray:
    """``(T, H, W)`` uint8 grey frames + ``(T, H, W)`` attention → ``(T, H·u, W·u, 3)`` uint8 RGB frames."""
    from matplotlib import colormaps

    if grey_thw.shape != heat_thw.shape:
        raise ValueError(f"overlay: frames {grey_thw.shape} and attention {heat_thw.shape} differ in shape")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"attention.alpha must lie in [0, 1], got {alpha}")
    a = scale_unit(heat_thw)[..., None]
    colour = colormaps[colormap](a[..., 0])[..., :3].astype(np.float32) * 255.0
    grey = grey_thw.astype(np.float32)[..., None]
    rgb = np.clip(grey * (1.0 - alpha * a) + alpha * a * colour, 0, 255).round().astype(np.uint8)
    if upscale > 1:
        rgb = rgb.repeat(upscale, axis=1).repeat(upscale, axis=2)
    return rgb


def grey_frames(clip_cthw: torch.Tensor, mean: float, std: float) -> np.ndarray:
    """The model's input frames back in [0, 255]: channel 0 is always the grey frame (``normalize_clip``)."""
    return (clip_cthw[0].float() * std + mean).mul(255.0).clamp(0, 255).round().to(torch.uint8).cpu().numpy()


def peak(heat_thw: np.ndarray) -> tuple[int, int, int]:
    """``(frame, row, col)`` of the attention maximum (first in C order on ties)."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(heat_thw)), heat_thw.shape))


# ----------------------------------------------------------------------------- writers


def write_mp4(frames_thwc: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """H.264 MP4 (yuv420p, web-playable, moov atom first) written atomically."""
    import imageio.v2 as iio

    with atomic_path(path, suffix=".tmp.mp4") as tmp:
        writer = iio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", macro_block_size=2,
                                ffmpeg_log_level="error", output_params=["-movflags", "+faststart"])
        try:
            for frame in frames_thwc:
                writer.append_data(frame)
        finally:
            writer.close()


def write_gif(frames_thwc: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """Looping animated GIF written atomically."""
    import imageio.v3 as iio

    with atomic_path(path, suffix=".tmp.gif") as tmp:
        iio.imwrite(tmp, frames_thwc, extension=".gif", duration=1000.0 / fps, loop=0)


def write_png(frame_hwc: np.ndarray, path: str | os.PathLike) -> None:
    """One RGB frame as PNG written atomically."""
    import imageio.v3 as iio

    with atomic_path(path, suffix=".tmp.png") as tmp:
        iio.imwrite(tmp, frame_hwc, extension=".png")


# ----------------------------------------------------------------------------- model and studies


def load_video_encoder(checkpoint: str | os.PathLike) -> tuple[nn.Module, dict]:
    """The video trunk of a fine-tuning checkpoint (``best.ckpt``) and its ``models.video`` config."""
    from cinefm.models.video import build_video_encoder

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fine-tuning checkpoint not found — run the finetune rule first")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    try:
        video_cfg = dict(ckpt["hyper_parameters"]["video"])
        state = ckpt["state_dict"]
    except KeyError as err:
        raise ValueError(f"{path}: not a cinefm fine-tuning checkpoint (no {err}); attention videos read "
                         "results/finetune/<experiment>/best.ckpt") from err
    name = video_cfg.pop("name")
    check_supported(name)
    video_cfg["weights"] = None
    model = build_video_encoder(name, **video_cfg)
    trunk = {k.removeprefix(VIDEO_PREFIX): v for k, v in state.items() if k.startswith(VIDEO_PREFIX)}
    if not trunk:
        raise ValueError(f"{path}: the state dict has no {VIDEO_PREFIX}* weights")
    model.load_state_dict(trunk)
    return model.eval(), {"name": name, **video_cfg}


def select_series(series: pd.DataFrame, views: Sequence[str], n_studies: int | None, seed: int) -> pd.DataFrame:
    """One row per (chosen study, view): its series (middle SAX slice), or status ``absent`` with the reason.

    ``series`` has ``SERIES_COLUMNS`` (:func:`cinefm.data.h5.scan_series`) of the test studies. Studies
    with at least one of ``views`` are drawn (``n_studies`` of them, seeded, in id order; all when None).
    """
    usable = series[series["view"].isin(views)]
    ids = sorted(usable["study_id"].unique())
    if not ids:
        raise ValueError(f"attention: no test study has any of the views {list(views)} "
                         f"(views present: {sorted(series['view'].unique())})")
    if n_studies is not None and n_studies < len(ids):
        rng = np.random.default_rng(seed)
        ids = sorted(rng.choice(ids, size=n_studies, replace=False).tolist())
    rows = []
    for study in ids:
        mine = usable[usable["study_id"] == study]
        for view in views:
            slices = mine[mine["view"] == view].sort_values("slice")
            if slices.empty:
                rows.append({"study_id": study, "view": view, "status": "absent",
                             "reason": f"study has no {view} series"})
                continue
            row = slices.iloc[len(slices) // 2]  # LAX: its one slice; SAX: the middle of the stack
            rows.append({**row.to_dict(), "status": "ok", "reason": ""})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- one video


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def render_clip(model: nn.Module, clip_cthw: torch.Tensor, settings: AttentionSettings, mean: float,
                std: float) -> tuple[np.ndarray, np.ndarray, str]:
    """``(overlay frames (T, H·u, W·u, 3) uint8, attention (T, H, W) float, token grid 'txhxw')``."""
    attns = mvit_class_attention(model, clip_cthw[None].to(_device(model)), settings.blocks)
    size = tuple(int(s) for s in clip_cthw.shape[1:])
    heat = to_clip(attns, size)[0].cpu().numpy()
    frames = overlay(grey_frames(clip_cthw, mean, std), heat, settings.alpha, settings.colormap, settings.upscale)
    return frames, heat, "x".join(str(g) for g in attns[-1].grid)


def _write_one(frames: np.ndarray, heat: np.ndarray, out_dir: Path, stem: str, fps: float,
               upscale: int) -> dict[str, Any]:
    names = {k: f"{VIDEOS}/{stem}.{ext}" for k, ext in (("mp4", "mp4"), ("gif", "gif"), ("poster", "png"))}
    write_mp4(frames, out_dir / names["mp4"], fps)
    small = frames[:, ::upscale, ::upscale] if upscale > 1 else frames
    write_gif(small, out_dir / names["gif"], fps)
    f, r, c = peak(heat)
    write_png(frames[f], out_dir / names["poster"])
    return {**names, "frames": frames.shape[0],
            "height": frames.shape[1], "width": frames.shape[2], "peak_frame": f, "peak_row": r, "peak_col": c}


# ----------------------------------------------------------------------------- one experiment


def render_attention_videos(
    checkpoint: str | os.PathLike,
    splits_csv: str | os.PathLike,
    studies_csv: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: Mapping[str, Any],
    experiment: str | None = None,
    device: str | None = None,
) -> Path:
    """Write the heat-map videos of ``experiment``'s test studies under ``out_dir``; return ``videos.csv``.

    ``config`` needs ``attention`` and ``data`` (clip normalisation, min_frames); the encoder
    and its clip size come from the checkpoint. ``device``: default CUDA when available.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cinefm.data.datamodules import read_manifest, series_of
    from cinefm.data.h5 import H5Reader
    from cinefm.data.transforms import ClipSpec, ClipTransform, clip_kwargs
    from cinefm.splits import read_splits

    settings = AttentionSettings.from_config(config["attention"])
    out = Path(out_dir)
    (out / VIDEOS).mkdir(parents=True, exist_ok=True)
    experiment = experiment or Path(checkpoint).parent.name
    model, video_cfg = load_video_encoder(checkpoint)
    model.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    spec = ClipSpec(**clip_kwargs({"models": {"video": video_cfg}, "data": config["data"]}))
    transform = ClipTransform(spec, train=False)

    splits = read_splits(splits_csv)
    test = splits[(splits["stage"] == "downstream") & (splits["split"] == "test")]
    if test.empty:
        raise ValueError(f"{splits_csv}: no downstream test studies — attention videos are drawn from them")
    series, _ = series_of(test, read_manifest(studies_csv), int(config["data"]["min_frames"]))
    chosen = select_series(series, settings.views, settings.studies, settings.seed)
    reader, rng, rows, written = H5Reader(), np.random.default_rng(settings.seed), [], set()
    blocks = ",".join(str(b) for b in settings.blocks)
    ok = chosen[chosen["status"] == "ok"]
    try:
        with Progress(TextColumn(f"attention {experiment}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), disable=not log.isEnabledFor(logging.INFO)) as bar:
            task = bar.add_task("videos", total=len(ok))
            for rec in chosen.to_dict("records"):
                row = {"experiment": experiment, "study_id": rec["study_id"], "view": rec["view"],
                       "status": rec["status"], "reason": rec["reason"], "blocks": blocks}
                if rec["status"] == "ok":
                    frames = reader.read(rec["h5"], rec["view"], int(rec["slice"]),
                                         transform.frame_indices(int(rec["frames"]), rng))
                    clip = transform.from_frames(frames, rng)
                    video, heat, grid = render_clip(model, clip, settings, spec.mean, spec.std)
                    stem = f"{rec['study_id']}_{rec['view']}"
                    row.update(slice=int(rec["slice"]), token_grid=grid,
                               **_write_one(video, heat, out, stem, settings.fps, settings.upscale))
                    written.update(out / row[k] for k in ("mp4", "gif", "poster"))
                    bar.advance(task)
                rows.append(row)
    finally:
        reader.close()
    for stale in sorted(p for p in (out / VIDEOS).iterdir() if p.suffix in OUR_SUFFIXES and p not in written):
        stale.unlink()  # videos of studies an earlier run chose
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    write_csv(table, out / "videos.csv")
    log.info("%s: %d heat-map videos (%d absent views) in %s", experiment, len(written) // 3,
             int((table["status"] != "ok").sum()), out)
    return out / "videos.csv"
