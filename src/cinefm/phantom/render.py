"""Tissue labels -> MR magnitude images: sequence contrast, vendor habits, texture, shading, noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from cinefm.phantom.anatomy import Tissue

# Relative signal per tissue (index = Tissue value) for each sequence.
_CONTRAST = {
    # balanced SSFP cine: bright blood and fluid, dark myocardium and lung
    "cine": {
        Tissue.AIR: 0.0, Tissue.LUNG: 0.05, Tissue.SOFT: 0.30, Tissue.FAT: 0.78, Tissue.LIVER: 0.36,
        Tissue.SPINE: 0.30, Tissue.AORTA: 0.85, Tissue.LV_BLOOD: 0.95, Tissue.LV_MYO: 0.22,
        Tissue.RV_BLOOD: 0.92, Tissue.RV_WALL: 0.24, Tissue.ATRIUM: 0.90, Tissue.EFFUSION: 0.80,
        Tissue.PERICARDIUM: 0.05, Tissue.SCAR: 0.20,
    },
    # inversion-recovery LGE: nulled myocardium, bright scar, grey blood
    "lge": {
        Tissue.AIR: 0.0, Tissue.LUNG: 0.03, Tissue.SOFT: 0.25, Tissue.FAT: 0.65, Tissue.LIVER: 0.30,
        Tissue.SPINE: 0.25, Tissue.AORTA: 0.55, Tissue.LV_BLOOD: 0.55, Tissue.LV_MYO: 0.04,
        Tissue.RV_BLOOD: 0.52, Tissue.RV_WALL: 0.05, Tissue.ATRIUM: 0.50, Tissue.EFFUSION: 0.20,
        Tissue.PERICARDIUM: 0.30, Tissue.SCAR: 0.95,
    },
    # native T1 (ms / 2000): long T1 blood, ~1000 ms myocardium, short T1 fat
    "t1map": {
        Tissue.AIR: 0.0, Tissue.LUNG: 0.05, Tissue.SOFT: 0.45, Tissue.FAT: 0.14, Tissue.LIVER: 0.29,
        Tissue.SPINE: 0.40, Tissue.AORTA: 0.82, Tissue.LV_BLOOD: 0.83, Tissue.LV_MYO: 0.50,
        Tissue.RV_BLOOD: 0.82, Tissue.RV_WALL: 0.50, Tissue.ATRIUM: 0.82, Tissue.EFFUSION: 1.0,
        Tissue.PERICARDIUM: 0.30, Tissue.SCAR: 0.65,
    },
    # single-shot localizer: flatter contrast
    "localizer": {
        Tissue.AIR: 0.0, Tissue.LUNG: 0.06, Tissue.SOFT: 0.40, Tissue.FAT: 0.70, Tissue.LIVER: 0.42,
        Tissue.SPINE: 0.35, Tissue.AORTA: 0.60, Tissue.LV_BLOOD: 0.62, Tissue.LV_MYO: 0.35,
        Tissue.RV_BLOOD: 0.60, Tissue.RV_WALL: 0.35, Tissue.ATRIUM: 0.60, Tissue.EFFUSION: 0.65,
        Tissue.PERICARDIUM: 0.15, Tissue.SCAR: 0.35,
    },
}


def contrast_table(sequence: str, blood_gain: float = 1.0, myo_gain: float = 1.0,
                   amyloid: bool = False) -> np.ndarray:
    """Lookup table label -> relative signal for ``sequence`` with vendor gains and disease."""
    table = np.zeros(len(Tissue), dtype=np.float32)
    for t, val in _CONTRAST[sequence].items():
        table[t] = val
    for t in (Tissue.LV_BLOOD, Tissue.RV_BLOOD, Tissue.ATRIUM, Tissue.AORTA):
        table[t] *= blood_gain
    for t in (Tissue.LV_MYO, Tissue.RV_WALL, Tissue.SCAR):
        table[t] *= myo_gain
    if amyloid:
        # infiltrated myocardium: brighter in SSFP, diffusely enhancing in LGE, long native T1
        bump = {"cine": 0.11, "lge": 0.45, "t1map": 0.17, "localizer": 0.06}[sequence]
        for t in (Tissue.LV_MYO, Tissue.RV_WALL):
            table[t] += bump
        if sequence == "lge":
            for t in (Tissue.LV_BLOOD, Tissue.RV_BLOOD, Tissue.ATRIUM):
                table[t] *= 0.6  # blood pool darker than myocardium: the amyloid nulling pattern
    return table


@dataclass(frozen=True)
class Look:
    """How one series looks: contrast table, shading, texture and noise (all fixed per series)."""

    table: np.ndarray  # label -> relative signal
    shading: np.ndarray  # (rows, cols) smooth coil sensitivity
    texture: np.ndarray  # (rows, cols) multiplicative myocardial texture (amyloid sparkle)
    noise: float  # Rician noise sigma relative to full scale
    gamma: float  # vendor display/reconstruction gamma
    textured: bool = False


def make_look(rng: np.random.Generator, shape: tuple[int, int], table: np.ndarray, noise: float,
              gamma: float, textured: bool) -> Look:
    """Draw the fixed per-series appearance."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    yy = yy / rows - 0.5
    xx = xx / cols - 0.5
    a = rng.normal(0, 0.25, 4)
    shading = 1.0 + a[0] * xx + a[1] * yy + 0.5 * a[2] * xx * yy - 0.8 * abs(a[3]) * (xx**2 + yy**2)
    shading = np.clip(shading, 0.55, 1.45).astype(np.float32)
    if textured:
        tex = gaussian_filter(rng.normal(0, 1, shape), 0.8)
        texture = (1.0 + 0.35 * tex / (tex.std() + 1e-6)).clip(0.6, 1.6).astype(np.float32)
    else:
        texture = np.ones(shape, dtype=np.float32)
    return Look(table=table, shading=shading, texture=texture, noise=noise, gamma=gamma, textured=textured)


def render(labels: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
    """Magnitude image in [0, 1.5] (float32) from a label image: contrast, texture, shading, noise."""
    img = look.table[labels]
    if look.textured:
        myo = (labels == Tissue.LV_MYO) | (labels == Tissue.RV_WALL)
        img = np.where(myo, img * look.texture, img)
    img = gaussian_filter(img, 0.6)  # finite resolution: soft edges
    img *= look.shading
    re = img + look.noise * rng.standard_normal(img.shape, dtype=np.float32)
    im = look.noise * rng.standard_normal(img.shape, dtype=np.float32)
    mag = np.sqrt(re * re + im * im)  # Rician magnitude noise
    np.clip(mag, 0, 1.5, out=mag)
    return mag if look.gamma == 1.0 else mag**look.gamma


def to_stored(img: np.ndarray, full_scale: float, max_stored: int, signed: bool) -> np.ndarray:
    """Scale a [0, ~1.5] image to stored integers (uint16 or int16)."""
    vals = np.clip(np.rint(img * full_scale), 0, max_stored)
    return vals.astype(np.int16 if signed else np.uint16)
