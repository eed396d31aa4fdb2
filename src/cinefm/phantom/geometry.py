"""Patient-space geometry: where the heart sits in the chest and the imaging planes through it.

Patient coordinates are DICOM LPS (mm): +x to the patient's left, +y posterior, +z superior.
A :class:`Plane` carries exactly what DICOM needs (ImagePositionPatient of the first pixel,
ImageOrientationPatient row/column cosines, pixel spacing, matrix), so the pixels we draw
and the geometry tags we write come from the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cinefm.phantom.anatomy import Heart, Tissue, heart_extent, heart_labels, heart_points

VIEW_ANGLES = {"4CH": 0.0, "2CH": np.pi / 2, "3CH": 2.35}  # rad about the long axis from 4CH


@dataclass(frozen=True, eq=False)
class Placement:
    """The heart's frame in patient space: ``origin`` = LV base centre at ED, ``axes`` columns u, v, w."""

    origin: np.ndarray  # (3,)
    axes: np.ndarray  # (3, 3), columns u (toward RV), v, w (base -> apex)

    def to_heart(self, points: np.ndarray) -> np.ndarray:
        """Patient points (..., 3) -> heart coordinates (..., 3)."""
        return (points - self.origin) @ self.axes


@dataclass(frozen=True, eq=False)
class Plane:
    """One image plane: first-pixel position, row/column directions, matrix and spacing (mm)."""

    position: np.ndarray  # ImagePositionPatient: centre of the first (top-left) pixel
    row_dir: np.ndarray  # direction of increasing column index
    col_dir: np.ndarray  # direction of increasing row index
    rows: int
    cols: int
    spacing: float  # square pixels (mm)
    thickness: float  # slice thickness (mm)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    @property
    def slice_location(self) -> float:
        """SliceLocation as scanners write it: the position projected on the plane normal."""
        return float(np.dot(self.position, self.normal))

    def points(self) -> np.ndarray:
        """Patient coordinates of every pixel centre, shape (rows, cols, 3)."""
        r = np.arange(self.rows, dtype=float)[:, None, None]
        c = np.arange(self.cols, dtype=float)[None, :, None]
        return self.position + c * self.spacing * self.row_dir + r * self.spacing * self.col_dir

    def resized(self, rows: int, cols: int) -> Plane:
        """The same field of view and centre sampled on another matrix."""
        fov = self.spacing * self.cols
        spacing = fov / cols
        centre = self.centre
        pos = centre - (cols - 1) / 2 * spacing * self.row_dir - (rows - 1) / 2 * spacing * self.col_dir
        return Plane(pos, self.row_dir, self.col_dir, rows, cols, spacing, self.thickness)

    @property
    def centre(self) -> np.ndarray:
        return (
            self.position
            + (self.cols - 1) / 2 * self.spacing * self.row_dir
            + (self.rows - 1) / 2 * self.spacing * self.col_dir
        )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def place_heart(rng: np.random.Generator) -> Placement:
    """A plausible heart orientation: apex left, anterior and inferior, jittered per patient."""
    w = _unit(np.array([0.62, -0.52, -0.58]) + rng.normal(0, 0.08, 3))
    toward_rv = np.array([-0.62, -0.78, 0.05]) + rng.normal(0, 0.05, 3)
    u = _unit(toward_rv - np.dot(toward_rv, w) * w)
    v = np.cross(w, u)
    origin = np.array([15.0, -20.0, 30.0]) + rng.normal(0, 6.0, 3)
    return Placement(origin=origin, axes=np.stack([u, v, w], axis=1))


def _plane_at(centre, row_dir, col_dir, rows, cols, spacing, thickness) -> Plane:
    pos = centre - (cols - 1) / 2 * spacing * row_dir - (rows - 1) / 2 * spacing * col_dir
    return Plane(pos, row_dir, col_dir, rows, cols, spacing, thickness)


def sax_planes(
    place: Placement,
    heart: Heart,
    n_slices: int,
    rows: int,
    cols: int,
    spacing: float,
    thickness: float,
    rng: np.random.Generator,
) -> list[Plane]:
    """A short-axis stack from just above the base to near the apex (base first).

    Anterior is up and the RV on the viewer's left, as cardiologists read SAX cines.
    """
    u, _, w = place.axes.T
    col_dir = _unit(np.array([0.0, 1.0, 0.0]) - w[1] * w)  # down the image = posterior
    row_dir = _unit(np.cross(col_dir, w))
    if np.dot(row_dir, u) > 0:  # RV on the left of the image
        row_dir = -row_dir
    top = -0.04 * heart.length_ed
    bottom = 0.92 * heart.length_ed
    gap = (bottom - top) / max(n_slices - 1, 1)
    offset = rng.normal(0, 4.0, 2)
    planes = []
    for k in range(n_slices):
        centre = place.origin + (top + k * gap) * w + offset[0] * row_dir + offset[1] * col_dir
        planes.append(_plane_at(centre, row_dir, col_dir, rows, cols, spacing, thickness))
    return planes


def lax_plane(
    place: Placement,
    heart: Heart,
    view: str,
    rows: int,
    cols: int,
    spacing: float,
    thickness: float,
    rng: np.random.Generator,
) -> Plane:
    """A long-axis plane (4CH, 3CH or 2CH) containing the LV long axis, apex toward the bottom."""
    u, v, w = place.axes.T
    phi = VIEW_ANGLES[view] + rng.normal(0, 0.06)
    across = np.cos(phi) * u + np.sin(phi) * v
    tilt = rng.normal(0.35, 0.1)  # in-plane rotation: apex to the bottom left
    row_dir = np.cos(tilt) * across + np.sin(tilt) * w
    col_dir = -np.sin(tilt) * across + np.cos(tilt) * w
    if view == "4CH" and np.dot(row_dir, u) > 0:
        row_dir = -row_dir
    centre = place.origin + 0.3 * heart.length_ed * w + rng.normal(0, 3.0) * across
    return _plane_at(centre, _unit(row_dir), _unit(col_dir), rows, cols, spacing, thickness)


def survey_planes(place: Placement, size: int, spacing: float) -> list[Plane]:
    """Axial, coronal and sagittal localizer planes through the heart."""
    c = place.origin + 40.0 * place.axes[:, 2]
    x, y, z = np.eye(3)
    return [
        _plane_at(c, x, y, size, size, spacing, 10.0),  # axial
        _plane_at(c, x, -z, size, size, spacing, 10.0),  # coronal
        _plane_at(c, y, -z, size, size, spacing, 10.0),  # sagittal
    ]


@dataclass(frozen=True, eq=False)
class Body:
    """Static thorax around the heart (patient coordinates, mm)."""

    centre: np.ndarray  # thorax centre
    half_lr: float  # thorax half width (left-right)
    half_ap: float  # thorax half depth (antero-posterior)
    fat_mm: float  # subcutaneous fat


def make_body(place: Placement, rng: np.random.Generator) -> Body:
    """Thorax size and position for one patient."""
    centre = place.origin + np.array([-45.0, 35.0, 0.0]) + rng.normal(0, 5.0, 3)
    return Body(
        centre=centre,
        half_lr=float(rng.uniform(150, 185)),
        half_ap=float(rng.uniform(105, 130)),
        fat_mm=float(rng.uniform(6, 22)),
    )


def body_labels(body: Body, place: Placement, pts: np.ndarray) -> np.ndarray:
    """Static tissue labels (no heart) of patient points ``pts`` (..., 3)."""
    d = pts - body.centre
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    q = (x / body.half_lr) ** 2 + (y / body.half_ap) ** 2
    q_in = (x / (body.half_lr - body.fat_mm)) ** 2 + (y / (body.half_ap - body.fat_mm)) ** 2
    out = np.full(x.shape, Tissue.AIR, dtype=np.uint8)
    out[q < 1] = Tissue.FAT
    out[q_in < 1] = Tissue.SOFT
    heart_z = place.origin[2] - body.centre[2]
    for side in (-1.0, 1.0):
        lx = side * 0.5 * body.half_lr
        lung = ((x - lx) / (0.4 * body.half_lr)) ** 2 + ((y - 5) / (0.72 * body.half_ap)) ** 2 + (
            (z - heart_z - 30) / 150.0
        ) ** 2
        out[(lung < 1) & (q_in < 1)] = Tissue.LUNG
    liver = (z < heart_z - 75 + 0.25 * x) & (q_in < 1)
    out[liver] = Tissue.LIVER
    spine = ((x + 0.0) ** 2 + (y - 0.72 * body.half_ap) ** 2) < 19.0**2
    out[spine] = Tissue.SPINE
    ao_x, ao_y = 18.0, 0.42 * body.half_ap
    out[((x - ao_x) ** 2 + (y - ao_y) ** 2) < 11.0**2] = Tissue.AORTA
    return out


class PlaneScene:
    """Everything that does not move in one plane, precomputed once; ``labels(c)`` per frame."""

    def __init__(self, heart: Heart, place: Placement, body: Body, plane: Plane):
        self.heart = heart
        self.plane = plane
        pts = plane.points()
        self.static = body_labels(body, place, pts)
        uvw = place.to_heart(pts)
        radial, w_min, w_max = heart_extent(heart)
        roi = (np.hypot(uvw[..., 0], uvw[..., 1]) < radial) & (uvw[..., 2] > w_min) & (uvw[..., 2] < w_max)
        self.roi = np.nonzero(roi.ravel())[0]
        flat = uvw.reshape(-1, 3)[self.roi]
        self.points = heart_points(heart, flat[:, 0], flat[:, 1], flat[:, 2])

    def labels(self, c: float) -> np.ndarray:
        """Tissue labels (rows, cols) uint8 at contraction ``c``."""
        out = self.static.copy().ravel()
        h = heart_labels(self.heart, self.points, c)
        keep = h > 0
        out[self.roi[keep]] = h[keep]
        return out.reshape(self.static.shape)
