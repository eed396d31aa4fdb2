"""A tiny real cohort for the data-layer tests: HDF5 studies, manifest, splits, labels, reports.

Built once per session. Frame ``f`` of slice ``s`` is a uniform image of value
``10 + 20 f + s`` so tests can tell which frames a clip holds after resizing.
"""

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from cinefm.data.datamodules import read_manifest
from cinefm.data.text import SpecialTokens

T, SIZE, STORED = 4, 16, 20  # clip frames, model size, stored frame size
SPECIAL = SpecialTokens(cls=2, sep=3, pad=0)
SIDES = {  # patient -> (stage, split); every split non-empty
    "pretrain/train": ["P00", "P01", "P02", "P03", "P04"],
    "pretrain/val": ["P05", "P06"],
    "downstream/train": ["P07", "P08", "P09", "P12", "P13", "P15"],
    "downstream/val": ["P10", "P14"],
    "downstream/test": ["P11", "P16", "P17"],
}


def series_array(slices: int, frames: int, height: int = STORED, width: int = STORED) -> np.ndarray:
    """``(slices, frames, H, W)`` uint8 with frame f of slice s uniformly ``10 + 20 f + s``."""
    values = 10 + 20 * np.arange(frames)[None, :] + np.arange(slices)[:, None]
    return np.broadcast_to(values[:, :, None, None], (slices, frames, height, width)).astype(np.uint8)


def write_study(path: Path, patient: str, study: str, views: dict[str, np.ndarray]) -> None:
    """Write one study in the ingestion layout (datasets per view, chunked per slice)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh.attrs.update(patient_id=patient, study_id=study, schema_version=1)
        for view, arr in views.items():
            ds = fh.create_dataset(view, data=arr, chunks=(1, *arr.shape[1:]), compression="gzip")
            ds.attrs.update(pixel_spacing_mm=[1.5, 1.5], frame_time_ms=30.0, vendor="phantom",
                            original_size=[arr.shape[2], arr.shape[3]])


def study_views(i: int) -> dict[str, np.ndarray]:
    """Views of patient i: every 4th lacks 3CH/2CH; every 4th+2 has a 1-frame 4CH and 3-frame SAX."""
    views = {"4CH": series_array(1, 8), "3CH": series_array(1, 8), "2CH": series_array(1, 8),
             "SAX": series_array(4, 8)}
    if i % 4 == 1:
        del views["3CH"], views["2CH"]
    if i % 4 == 2:
        views["4CH"] = series_array(1, 1)
        views["SAX"] = series_array(3, 3)
    return views


@dataclass(frozen=True)
class Cohort:
    root: Path
    studies_csv: Path
    splits_csv: Path
    labels_csv: Path
    reports: dict
    manifest: pd.DataFrame
    splits: pd.DataFrame


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Cohort:
    root = tmp_path_factory.mktemp("cohort")
    side = {p: tuple(k.split("/")) for k, ps in SIDES.items() for p in ps}
    manifest, split_rows, label_rows, reports = [], [], [], {}
    for patient in sorted(side):
        i = int(patient[1:])
        for j in range(2 if i in (3, 9) else 1):
            study = f"S{i:02d}{j}"
            split_rows.append((patient, study, "phantom", *side[patient]))
            rel = f"{patient}/{study}.h5"
            if patient == "P11":  # extraction failed: no file; counted as studies_without_h5
                manifest.append((patient, study, rel, "failed", "no cine series", ""))
                continue
            views = study_views(i)
            write_study(root / "h5" / rel, patient, study, views)
            manifest.append((patient, study, rel, "written", "", ";".join(views)))
            label_rows.append((study, patient, "1" if i % 3 == 0 else ("" if i % 3 == 1 else "0"),
                               "0", "" if patient == "P08" else str(30 + 2 * i)))
            if patient != "P04":  # P04's report is missing: its clips are left out of pre-training
                reports[study] = {
                    "sentences": [f"sentence {k} of {study}" for k in range(4)],
                    "input_ids": [[SPECIAL.cls, 100 + k, 200 + i, SPECIAL.sep] if k < 2 else [100 + k, 200 + i]
                                  for k in range(4)],
                }
    # the manifest as ingestion writes it: results/ingest/studies.csv, paths under results/h5
    manifest = pd.DataFrame(manifest, columns=["patient_id", "study_id", "h5_relpath", "status",
                                               "reason", "views"])
    splits = pd.DataFrame(split_rows, columns=["patient_id", "study_id", "cohort", "stage", "split"])
    labels = pd.DataFrame(label_rows, columns=["study_id", "patient_id", "hcm", "dcm", "lvef"])
    paths = {"studies": root / "ingest" / "studies.csv", "splits": root / "splits.csv",
             "labels": root / "labels.csv"}
    paths["studies"].parent.mkdir()
    manifest.to_csv(paths["studies"], index=False)
    splits.to_csv(paths["splits"], index=False)
    labels.to_csv(paths["labels"], index=False)
    return Cohort(root, paths["studies"], paths["splits"], paths["labels"], reports,
                  read_manifest(paths["studies"]), splits)
