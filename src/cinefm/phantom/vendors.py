"""Per-vendor habits: series names, matrices, scaling, header style and export file naming.

The names follow what clinical exports really contain (Siemens ``CINE_segmented_SAX_b5``,
GE ``FIESTA CINE SAX``, Philips ``sBTFE_CINE_2CH``) so that view classification by series
description has to cope with three dialects, as in the published pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

VENDORS = ("siemens", "ge", "philips")


@dataclass(frozen=True)
class Vendor:
    """How one manufacturer's scanners write cine CMR."""

    key: str
    manufacturer: str
    models: tuple[str, ...]
    matrices: tuple[tuple[int, int], ...]  # (rows, cols) choices for cine
    fov_mm: tuple[float, float]  # field of view (cols direction) range
    sax_one_series_per_slice: bool  # Siemens: one series per SAX slice
    full_scale: float  # stored value of relative signal 1.0
    bits_stored: int
    signed: bool  # GE writes signed 16-bit pixels
    rescale: bool  # Philips writes RescaleSlope / RescaleIntercept
    blood_gain: float
    myo_gain: float
    gamma: float
    noise: tuple[float, float]
    file_ext: str  # "" for files without extension
    file_pattern: str  # format with n (instance counter) and h (hex token)
    station_prefix: str


SIEMENS = Vendor(
    key="siemens", manufacturer="SIEMENS", models=("Avanto", "Aera", "Skyra", "Avanto_fit"),
    matrices=((120, 144), (132, 160), (104, 128), (112, 136)), fov_mm=(280.0, 340.0),
    sax_one_series_per_slice=True, full_scale=620.0, bits_stored=12, signed=False, rescale=False,
    blood_gain=1.0, myo_gain=1.0, gamma=1.0, noise=(0.025, 0.045), file_ext=".dcm",
    file_pattern="{h}", station_prefix="AWP",
)
GE = Vendor(
    key="ge", manufacturer="GE MEDICAL SYSTEMS", models=("SIGNA Artist", "Optima MR450w", "DISCOVERY MR750w"),
    matrices=((128, 128), (144, 144), (160, 160)), fov_mm=(300.0, 360.0),
    sax_one_series_per_slice=False, full_scale=2100.0, bits_stored=16, signed=True, rescale=False,
    blood_gain=0.92, myo_gain=1.15, gamma=0.9, noise=(0.03, 0.05), file_ext="",
    file_pattern="I{n:04d}", station_prefix="GEMR",
)
PHILIPS = Vendor(
    key="philips", manufacturer="Philips Medical Systems", models=("Ingenia", "Achieva", "Ingenia Ambition X"),
    matrices=((112, 112), (128, 128), (144, 144), (96, 96)), fov_mm=(280.0, 330.0),
    sax_one_series_per_slice=False, full_scale=2400.0, bits_stored=12, signed=False, rescale=True,
    blood_gain=1.0, myo_gain=0.85, gamma=1.1, noise=(0.02, 0.04), file_ext="",
    file_pattern="IM_{n:05d}", station_prefix="PHMR",
)
VENDOR_BY_KEY = {v.key: v for v in (SIEMENS, GE, PHILIPS)}


def cine_description(vendor: str, view: str, slice_index: int | None = None) -> str:
    """SeriesDescription of a cine series (``slice_index`` 1-based for Siemens SAX)."""
    if vendor == "siemens":
        if view == "SAX":
            return f"CINE_segmented_SAX_b{slice_index}"
        return {"4CH": "CINE_segmented_LAX_4Ch", "3CH": "CINE_segmented_LAX_3Ch",
                "2CH": "CINE_segmented_LAX_2Ch"}[view]
    if vendor == "ge":
        return {"SAX": "FIESTA CINE SAX", "4CH": "FIESTA CINE 4CH", "3CH": "FIESTA CINE 3CH",
                "2CH": "FIESTA CINE 2CH"}[view]
    return {"SAX": "sBTFE_CINE_SAX", "4CH": "sBTFE_CINE_4CH", "3CH": "sBTFE_CINE_3CH",
            "2CH": "sBTFE_CINE_2CH"}[view]


def other_descriptions(vendor: str) -> dict[str, str]:
    """SeriesDescription of the non-cine series each vendor writes in a CMR exam."""
    return {
        "siemens": {"localizer": "localizer", "lge": "LGE_PSIR_SAX_MAG", "t1map": "MOLLI_T1_MAP_SAX",
                    "inline": "CINE_segmented_SAX_InlineVF"},
        "ge": {"localizer": "3-Plane Loc SSFSE", "lge": "MDE 2D SAX", "t1map": "T1 MAP SMART1 SAX",
               "inline": "FIESTA CINE SAX_ReportCard"},
        "philips": {"localizer": "SURVEY", "lge": "sPSIR_SA_LGE", "t1map": "T1map_MOLLI_SA",
                    "inline": "sBTFE_CINE_SAX_FUNC"},
    }[vendor]
