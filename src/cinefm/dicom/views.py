"""View selection: series description -> 4CH / 3CH / 2CH / SAX, with a geometric fallback.

Rules live in ``config/views.yaml`` (see the comments there). For one series:

1. ``exclude`` patterns (the vendor's list, then ``any``) on the description, or an
   ``exclude_image_type`` pattern on ImageType (values joined by a backslash, e.g.
   ``DERIVED\\SECONDARY\\OTHER``): a match makes the series ``not_cine`` (vendor
   inline analysis, localizers, LGE, mapping ...).
2. ``views`` patterns (the vendor's list, then ``any``), first match wins.
3. Unmatched cine series fall back on geometry (:func:`sax_clusters`): within one
   study, unmatched cine series whose slice normals are parallel and that together
   cover at least ``geometry.min_sax_slices`` distinct positions along that normal,
   with a double-oblique normal (more than ``geometry.oblique_min_deg`` from every
   patient axis), form the SAX stack. Nothing else is guessed: single oblique slices
   (2CH/3CH/4CH cannot be told apart by geometry alone) stay unassigned.

Every decision is recorded as a ``view_rule`` string: ``exclude:<vendor>:<regex>``,
``pattern:<vendor>:<regex>`` or ``geometry:<detail>``.
Patterns are Python regular expressions, matched case-insensitively with
``re.search`` against SeriesDescription (ProtocolName when that is empty).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from cinefm.config import ConfigError

VIEWS = ("4CH", "3CH", "2CH", "SAX")

# Manufacturer (0008,0070) substrings -> vendor key used in views.yaml.
_VENDOR_KEYS = (
    ("siemens", "siemens"),
    ("philips", "philips"),
    ("ge medical", "ge"),
    ("general electric", "ge"),
    ("gehc", "ge"),
    ("canon", "canon"),
    ("toshiba", "canon"),
    ("hitachi", "hitachi"),
    ("fujifilm", "hitachi"),
)


def normalize_vendor(manufacturer: str) -> str:
    """Manufacturer tag -> ``siemens`` | ``ge`` | ``philips`` | ``canon`` | ``hitachi`` | ``other``."""
    m = manufacturer.strip().lower()
    for needle, vendor in _VENDOR_KEYS:
        if needle in m:
            return vendor
    if re.match(r"^ge\b", m):
        return "ge"
    return "other" if m else "unknown"


@dataclass(frozen=True)
class Geometry:
    """Geometric fallback thresholds (``geometry:`` in views.yaml)."""

    min_sax_slices: int = 3
    parallel_tolerance_deg: float = 10.0
    oblique_min_deg: float = 10.0
    slice_tolerance_mm: float = 0.5


@dataclass(frozen=True)
class ViewRules:
    """Compiled view rules: per vendor, exclusion regexes and (view, regex) pairs in order."""

    exclude: dict[str, tuple[re.Pattern, ...]]
    views: dict[str, tuple[tuple[str, re.Pattern], ...]]
    geometry: Geometry
    source: str = "<dict>"
    exclude_image_type: tuple[re.Pattern, ...] = ()

    def match(
        self, description: str | None, vendor: str | None, image_type: str | None = None
    ) -> tuple[str | None, str | None, str | None]:
        """Return ``(kind, view, rule)``: kind ``exclude`` | ``view`` | None (no pattern matched)."""
        text = description or ""
        for rx in self.exclude_image_type:
            if image_type and rx.search(image_type):
                return "exclude", None, f"exclude:image_type:{rx.pattern}"
        order = [v for v in (vendor or "", "any") if v]
        for v in order:
            for rx in self.exclude.get(v, ()):
                if rx.search(text):
                    return "exclude", None, f"exclude:{v}:{rx.pattern}"
        for v in order:
            for view, rx in self.views.get(v, ()):
                if rx.search(text):
                    return "view", view, f"pattern:{v}:{rx.pattern}"
        return None, None, None


def _compile(pattern: object, where: str) -> re.Pattern:
    if not isinstance(pattern, str):
        raise ConfigError(f"{where}: pattern must be a string, got {pattern!r}")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"{where}: bad regular expression {pattern!r} ({exc}); fix it in the views file") from exc


def view_rules_from_dict(doc: dict, source: str = "<dict>") -> ViewRules:
    """Validate and compile a views document (the content of ``config/views.yaml``)."""
    unknown = set(doc) - {"exclude", "exclude_image_type", "views", "geometry"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level keys {sorted(unknown)}; allowed: exclude, exclude_image_type, views, geometry"
        )
    image_types = tuple(_compile(p, f"{source}: exclude_image_type") for p in doc.get("exclude_image_type") or [])
    exclude = {
        vendor: tuple(_compile(p, f"{source}: exclude.{vendor}") for p in pats or [])
        for vendor, pats in (doc.get("exclude") or {}).items()
    }
    views: dict[str, tuple[tuple[str, re.Pattern], ...]] = {}
    for vendor, table in (doc.get("views") or {}).items():
        pairs = []
        for view, pats in (table or {}).items():
            if view not in VIEWS:
                raise ConfigError(f"{source}: views.{vendor}.{view}: unknown view; use one of {', '.join(VIEWS)}")
            pairs += [(view, _compile(p, f"{source}: views.{vendor}.{view}")) for p in pats or []]
        views[vendor] = tuple(pairs)
    geo = doc.get("geometry") or {}
    allowed = set(Geometry.__dataclass_fields__)
    if set(geo) - allowed:
        raise ConfigError(f"{source}: geometry: unknown keys {sorted(set(geo) - allowed)}; allowed: {sorted(allowed)}")
    return ViewRules(exclude=exclude, views=views, geometry=Geometry(**geo), source=source,
                     exclude_image_type=image_types)


def load_view_rules(path: str | os.PathLike) -> ViewRules:
    """Read ``config/views.yaml`` (or another views file) and compile it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config.ingest.views: file not found: {p}")
    return view_rules_from_dict(yaml.safe_load(p.read_text()) or {}, source=str(p))


def is_oblique(normal: np.ndarray, min_deg: float) -> bool:
    """True when ``normal`` is more than ``min_deg`` degrees from every patient axis."""
    return float(np.max(np.abs(normal))) < np.cos(np.deg2rad(min_deg))


def sax_clusters(
    normals: list[np.ndarray | None], positions: list[list[float]], geometry: Geometry
) -> list[list[int]]:
    """Group series (by index) into SAX stacks by geometry; return the groups that qualify.

    ``normals[i]``: unit slice normal of series i (None: unknown orientation);
    ``positions[i]``: its slices' positions (mm) along its own normal. Series join a
    group when their normals are parallel within ``parallel_tolerance_deg`` (sign
    ignored); a group is a SAX stack when its normal is double oblique and its
    positions (re-projected on the group's normal sign) span at least
    ``min_sax_slices`` distinct values ``slice_tolerance_mm`` apart.
    """
    cos_tol = np.cos(np.deg2rad(geometry.parallel_tolerance_deg))
    groups: list[tuple[np.ndarray, list[int]]] = []
    for i, n in enumerate(normals):
        if n is None:
            continue
        for ref, members in groups:
            if abs(float(np.dot(ref, n))) >= cos_tol:
                members.append(i)
                break
        else:
            groups.append((n, [i]))
    out = []
    for ref, members in groups:
        if not is_oblique(ref, geometry.oblique_min_deg):
            continue
        locs = sorted(
            p * float(np.sign(np.dot(ref, normals[i])) or 1.0) for i in members for p in positions[i]
        )
        distinct = 1 + sum(1 for a, b in zip(locs, locs[1:], strict=False) if b - a > geometry.slice_tolerance_mm)
        if locs and distinct >= geometry.min_sax_slices:
            out.append(members)
    return out
