"""A beating-heart model: LV, RV, atria and pericardium as analytic shapes in heart coordinates.

Heart coordinates (mm): ``w`` runs along the LV long axis from the mitral (base) plane at
end-diastole (``w = 0``) toward the apex (``w = length_ed``); ``u`` points from the LV axis
toward the right ventricle (the septum sits at polar angle 0); ``v = w x u``.

The LV cavity is a half prolate ellipsoid (radius ``r_endo`` at the base, length ``L``) and
the epicardium a second one ``wall`` thicker. Systole is a single contraction variable
``c`` in [0, 1] (0 = end-diastole, 1 = end-systole): the endocardial radius shrinks by
``radial_es``, the base descends toward the fixed apex by ``base_descent`` and the wall
thickens. An infarct is a sector that neither moves nor thickens and is thinned.
Volumes come from integrating the cavity cross-sections (disk summation with fine disks),
so the true LVEF is a property of the drawn geometry, not a label pasted onto it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    """Labels of the rendered scene; ``render`` maps them to vendor/sequence intensities."""

    AIR = 0
    LUNG = 1
    SOFT = 2  # chest wall muscle, mediastinum
    FAT = 3  # subcutaneous and epicardial fat
    LIVER = 4
    SPINE = 5
    AORTA = 6  # descending aorta (blood)
    LV_BLOOD = 7
    LV_MYO = 8
    RV_BLOOD = 9
    RV_WALL = 10
    ATRIUM = 11  # left and right atrial blood
    EFFUSION = 12  # pericardial fluid
    PERICARDIUM = 13
    SCAR = 14  # infarcted myocardium (looks like myocardium in cine, bright in LGE)


@dataclass(frozen=True)
class Heart:
    """Geometry and motion of one heart at one study (lengths in mm, angles in rad)."""

    r_endo_ed: float  # LV endocardial radius at the base, end-diastole
    length_ed: float  # base-to-apex endocardial length, end-diastole
    wall_ed: float  # LV wall thickness, end-diastole
    septal_extra: float = 0.0  # extra septal thickness (asymmetric hypertrophy)
    thickening: float = 0.4  # fractional wall thickening at end-systole
    radial_es: float = 0.7  # endocardial radius factor at end-systole (solved for the LVEF)
    base_descent: float = 0.12  # fraction of length_ed the base moves toward the apex
    rv_scale: float = 1.0  # RV size relative to a normal RV for this LV
    rv_radial_es: float = 0.75  # RV radius factor at end-systole
    effusion_mm: float = 0.0  # pericardial fluid thickness
    mi_angle: float | None = None  # centre of the infarcted sector (None: no infarct)
    mi_width: float = 1.2  # angular width of the infarcted sector
    mi_start: float = 0.45  # the infarct spans w >= mi_start * length_ed (mid to apex)
    mi_wall: float = 4.5  # wall thickness of the infarcted, thinned segment
    es_fraction: float = 0.35  # end-systole as a fraction of the cardiac cycle


def contraction(t: np.ndarray | float, es_fraction: float) -> np.ndarray:
    """Contraction ``c`` (0 = ED, 1 = ES) at cycle fraction ``t`` in [0, 1).

    Systole is a sin^2 ramp to end-systole; diastole has rapid filling (80 %),
    diastasis and an atrial kick (20 %) before the next R wave.
    """
    t = np.mod(np.asarray(t, dtype=float), 1.0)
    c = np.empty_like(t)
    sys = t <= es_fraction
    c[sys] = np.sin(0.5 * np.pi * t[sys] / es_fraction) ** 2
    td = (t[~sys] - es_fraction) / (1.0 - es_fraction)
    fill = _smoothstep(td / 0.35)
    kick = _smoothstep((td - 0.78) / 0.2)
    c[~sys] = 1.0 - 0.8 * fill - 0.2 * kick
    return np.clip(c, 0.0, 1.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _ellipsoid_radius(radius: float | np.ndarray, length, z) -> np.ndarray:
    """Radius of a half prolate ellipsoid (equator at z=0, tip at z=length); 0 outside."""
    q = np.where((z >= 0.0) & (z <= length), 1.0 - (z / length) ** 2, 0.0)
    return radius * np.sqrt(np.maximum(q, 0.0))


def infarct_weight(heart: Heart, theta: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weight in [0, 1] of the infarcted sector at polar angle ``theta`` and depth ``w``."""
    if heart.mi_angle is None:
        return np.zeros(np.broadcast(theta, w).shape)
    d = np.abs(np.angle(np.exp(1j * (theta - heart.mi_angle))))
    edge = 0.25
    ang = np.clip((heart.mi_width / 2 + edge / 2 - d) / edge, 0.0, 1.0)
    lon = np.clip((w / heart.length_ed - heart.mi_start) / 0.08, 0.0, 1.0)
    return ang * lon


def lv_radii(
    heart: Heart,
    theta: np.ndarray,
    w: np.ndarray,
    c: float,
    extra: float = 0.0,
    *,
    cos2: np.ndarray | None = None,
    mi: np.ndarray | None = None,
    epi_only: bool = False,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Endocardial and epicardial LV radius (mm) at polar angle ``theta``, depth ``w``, phase ``c``.

    ``extra`` grows the epicardial surface outward (pericardial sac, pericardium).
    ``cos2`` = max(cos theta, 0)^2 and ``mi`` = infarct_weight(theta, w) may be passed
    precomputed (they do not move); ``epi_only`` skips the endocardium (returned as None).
    """
    w_base = c * heart.base_descent * heart.length_ed
    length = heart.length_ed - w_base
    r_endo = heart.r_endo_ed * (1.0 - c * (1.0 - heart.radial_es))
    wall = heart.wall_ed * (1.0 + c * heart.thickening) + extra
    if cos2 is None:
        cos2 = np.maximum(np.cos(theta), 0.0) ** 2
    z = w - w_base
    if heart.septal_extra:
        septal = heart.septal_extra * (1.0 + c * heart.thickening) * cos2
        epi_n = _ellipsoid_radius(r_endo + wall + septal, length + wall, z)
    else:
        epi_n = _ellipsoid_radius(r_endo + wall, length + wall, z)
    endo_n = None if epi_only else _ellipsoid_radius(r_endo, length, z)
    if heart.mi_angle is None:
        return endo_n, epi_n
    m = infarct_weight(heart, theta, w) if mi is None else mi
    # the akinetic segment keeps its end-diastolic shape below the moving base
    below = z >= 0
    mi_wall = heart.mi_wall + extra
    epi_mi = np.where(below, _ellipsoid_radius(heart.r_endo_ed + mi_wall, heart.length_ed + mi_wall, w), 0.0)
    epi = (1 - m) * epi_n + m * epi_mi
    if epi_only:
        return None, epi
    endo_mi = np.where(below, _ellipsoid_radius(heart.r_endo_ed, heart.length_ed, w), 0.0)
    return (1 - m) * endo_n + m * endo_mi, epi


def lv_volume_ml(heart: Heart, c: float, dw: float = 0.5, n_theta: int = 90) -> float:
    """LV cavity volume (ml) at phase ``c``: sum over disks of thickness ``dw`` of the
    cross-section area 0.5 * integral r_endo(theta)^2 d theta.

    The disk-summation (Simpson's) method of CMR volumetry (Schulz-Menger et al., J Cardiovasc
    Magn Reson 2020, SCMR post-processing recommendations), on 0.5 mm disks of the exact shape.
    """
    w = np.arange(dw / 2, heart.length_ed, dw)
    theta = np.linspace(-np.pi, np.pi, n_theta, endpoint=False)
    endo, _ = lv_radii(heart, theta[None, :], w[:, None], c)
    area = 0.5 * (endo**2).mean(axis=1) * 2 * np.pi
    return float(area.sum() * dw / 1000.0)


def ejection_fraction(heart: Heart) -> tuple[float, float, float]:
    """(LVEF %, EDV ml, ESV ml) of the drawn geometry."""
    edv = lv_volume_ml(heart, 0.0)
    esv = lv_volume_ml(heart, 1.0)
    return 100.0 * (edv - esv) / edv, edv, esv


def solve_radial_es(heart: Heart, target_ef: float) -> Heart:
    """Return ``heart`` with the end-systolic radius factor that gives LVEF ``target_ef`` (%).

    Bisection on ``radial_es`` in [0.25, 1.0]; LVEF falls monotonically as it grows. Targets
    outside the reachable range give the nearest reachable geometry.
    """
    lo, hi = 0.25, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        ef, _, _ = ejection_fraction(dataclasses.replace(heart, radial_es=mid))
        if ef > target_ef:
            lo = mid
        else:
            hi = mid
    return dataclasses.replace(heart, radial_es=0.5 * (lo + hi))


@dataclass(frozen=True, eq=False)
class HeartPoints:
    """Points in heart coordinates with their phase-independent terms precomputed."""

    u: np.ndarray
    v: np.ndarray
    w: np.ndarray
    rho: np.ndarray
    theta: np.ndarray
    cos2: np.ndarray  # max(cos theta, 0)^2: septal weight
    mi: np.ndarray | None  # infarct weight (None without infarct)


def heart_points(heart: Heart, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> HeartPoints:
    """Precompute what does not change over the cardiac cycle for points (u, v, w)."""
    theta = np.arctan2(v, u)
    mi = infarct_weight(heart, theta, w) if heart.mi_angle is not None else None
    return HeartPoints(u, v, w, np.hypot(u, v), theta, np.maximum(np.cos(theta), 0.0) ** 2, mi)


def heart_extent(heart: Heart) -> tuple[float, float, float]:
    """(max distance from the LV axis, min w, max w) in mm that any heart label can reach."""
    r0 = heart.r_endo_ed + heart.wall_ed
    s = heart.rv_scale
    grow = 3.0 + heart.effusion_mm + 1.6 + 1.0  # RV wall, effusion, pericardium, rounding
    rv_cu = 0.55 * r0 + (s - 1.0) * 0.6 * heart.r_endo_ed
    t = np.linspace(0, 2 * np.pi, 721)
    rv = np.hypot(rv_cu + (0.95 * r0 * s + grow) * np.cos(t), (1.45 * r0 * s + grow) * np.sin(t)).max()
    ra = rv_cu + 0.35 * r0 + 0.8 * heart.r_endo_ed * (0.8 + 0.2 * s) * 1.12
    lv = r0 + heart.septal_extra * (1 + heart.thickening) + grow
    w_max = heart.length_ed + max(heart.wall_ed * (1 + heart.thickening), heart.mi_wall) + grow
    return float(max(rv, ra, lv)) + 1.0, -60.0, w_max + 1.0


def heart_labels(heart: Heart, pts: HeartPoints, c: float) -> np.ndarray:
    """Tissue label (uint8, 0 = not heart) of ``pts`` at phase ``c``."""
    u, v, w, rho = pts.u, pts.v, pts.w, pts.rho
    geo = dict(cos2=pts.cos2, mi=pts.mi)
    endo, epi = lv_radii(heart, pts.theta, w, c, **geo)
    out = np.zeros(u.shape, dtype=np.uint8)
    w_base = c * heart.base_descent * heart.length_ed

    # right ventricle: an ellipsoid hugging the septum, minus the LV
    s = heart.rv_scale
    rv_k = 1.0 - c * (1.0 - heart.rv_radial_es)
    r0 = heart.r_endo_ed + heart.wall_ed
    rv_cu = 0.55 * r0 + (s - 1.0) * 0.6 * heart.r_endo_ed
    rv_a = (0.95 * r0 * s) * rv_k + 0.45 * r0 * (1 - rv_k)
    rv_b = 1.45 * r0 * s * rv_k + 0.6 * r0 * (1 - rv_k)
    rv_len = 0.82 * heart.length_ed * (0.9 + 0.1 * s) - w_base
    z = w - w_base
    prof = np.where((z >= 0) & (z <= rv_len), 1.0 - (z / rv_len) ** 2, -1.0)
    du2 = (u - rv_cu) ** 2
    v2 = v * v
    rv_wall_mm = 3.0

    def rv_shell(grow: float) -> np.ndarray:
        return du2 / (rv_a + grow) ** 2 + v2 / (rv_b + grow) ** 2 < prof

    rv_in = rv_shell(0.0)
    rv_out = rv_shell(rv_wall_mm)

    # atria above the (moving) mitral/tricuspid plane, filling during systole
    la_r = 0.85 * heart.r_endo_ed * (1.0 + 0.12 * c)
    la_len = 38.0 * (1.0 + 0.1 * c)
    zl = w_base - w  # distance above the base
    la = (((u + 0.15 * r0) / la_r) ** 2 + v2 / la_r**2 + ((zl - la_len / 2 - 4) / (la_len / 2)) ** 2) < 1
    ra_r = 0.8 * heart.r_endo_ed * (0.8 + 0.2 * s) * (1.0 + 0.12 * c)
    ra = (((u - rv_cu - 0.35 * r0) / ra_r) ** 2 + v2 / ra_r**2 + ((zl - la_len / 2 - 2) / (la_len / 2)) ** 2) < 1

    # pericardial sac (the LV epicardium and RV outer wall grown by the effusion), then a
    # thin dark pericardial line
    e = heart.effusion_mm
    gap = e if e > 0.5 else 0.0
    line_mm = 1.6
    sac = (rho < epi) | rv_out
    if gap:
        _, epi_sac = lv_radii(heart, pts.theta, w, c, extra=gap, epi_only=True, **geo)
        sac = (rho < epi_sac) | rv_shell(rv_wall_mm + gap)
    _, epi_line = lv_radii(heart, pts.theta, w, c, extra=gap + line_mm, epi_only=True, **geo)
    line = ((rho < epi_line) | rv_shell(rv_wall_mm + gap + line_mm)) & ~sac

    out[line] = Tissue.PERICARDIUM
    if gap:
        out[sac] = Tissue.EFFUSION
    out[la | ra] = Tissue.ATRIUM
    out[rv_out & ~rv_in] = Tissue.RV_WALL
    out[rv_in] = Tissue.RV_BLOOD
    myo = rho < epi
    out[myo] = Tissue.LV_MYO
    if pts.mi is not None:
        out[myo & (pts.mi > 0.5)] = Tissue.SCAR
    out[rho < endo] = Tissue.LV_BLOOD
    return out
