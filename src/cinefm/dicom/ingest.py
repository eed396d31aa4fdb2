"""The whole ingestion in one call (what ``cinefm ingest`` runs; the rules run the same steps).

``out`` plays the role of the results folder: ``out/ingest/files.parquet``,
``out/ingest/flow.csv``, ``out/ingest/flow.png``, ``out/ingest/studies.csv``,
``out/ingest/quarantine.csv``, ``out/ingest/extract/shard_{j}.csv`` and
``out/h5/{patient}/{study}.h5``. The contents do not depend on the number of shards
or jobs (rows are sorted, HDF5 bytes are deterministic); only the intermediate
shard tables and manifests are split differently.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from cinefm.dicom.extract import extract_shard
from cinefm.dicom.flow import write_flow
from cinefm.dicom.scan import fork_pool, scan_shard, write_filelist
from cinefm.dicom.series import merge_scans
from cinefm.dicom.views import load_view_rules

log = logging.getLogger(__name__)


def ingest_paths(out: str | os.PathLike, shards: int) -> dict[str, Path]:
    """Where each output of :func:`run_ingest` lands under ``out``."""
    out = Path(out)
    ing = out / "ingest"
    return {
        "filelist": ing / "filelist.parquet",
        "files": ing / "files.parquet",
        "quarantine": ing / "quarantine.csv",
        "flow_csv": ing / "flow.csv",
        "flow_png": ing / "flow.png",
        "studies": ing / "studies.csv",
        "h5_root": out / "h5",
        "scan": [ing / "scan" / f"shard_{i}.parquet" for i in range(shards)],
        "manifests": [ing / "extract" / f"shard_{i}.csv" for i in range(shards)],
    }


def run_ingest(
    dicom_root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    ingest_cfg: dict,
    jobs: int = 1,
    phantom: bool = False,
    key_file: str | os.PathLike | None = None,
    id_map: str | os.PathLike | None = None,
    reader: str = "fast",
) -> pd.DataFrame:
    """List, scan (``jobs`` processes), merge, extract (``jobs`` shards in parallel), flow.

    ``ingest_cfg`` is the config section ``ingest`` (frame_size, views, min_frames,
    intensity_percentiles). ``reader``: the scan's header reader (``fast`` or ``pydicom``, the
    reference; same tables, see :func:`cinefm.dicom.header.read_file_ids`). Returns the flow table.
    """
    jobs = max(1, int(jobs))
    paths = ingest_paths(out, jobs)
    write_filelist(dicom_root, paths["filelist"])
    id_part = Path(str(id_map) + ".parts") / "shard_0.csv" if id_map else None
    scan_shard(paths["filelist"], dicom_root, paths["scan"][0], shard=0, shards=1, phantom=phantom,
               key_file=key_file, jobs=jobs, id_map_out=id_part, reader=reader)
    paths["scan"] = paths["scan"][:1]
    merge_scans(paths["scan"], paths["files"], views=ingest_cfg["views"], min_frames=ingest_cfg["min_frames"],
                quarantine_csv=paths["quarantine"], id_map_parts=[id_part] if id_part else None, id_map_out=id_map,
                jobs=jobs)
    tol = load_view_rules(ingest_cfg["views"]).geometry.slice_tolerance_mm
    kw = dict(shards=jobs, frame_size=ingest_cfg["frame_size"],
              percentiles=tuple(ingest_cfg["intensity_percentiles"]), tol=tol,
              compression=ingest_cfg["compression"])
    if jobs == 1:
        extract_shard(paths["files"], dicom_root, paths["h5_root"], paths["manifests"][0], shard=0, **kw)
    else:
        with fork_pool(jobs) as pool:
            futures = [pool.submit(extract_shard, paths["files"], dicom_root, paths["h5_root"], m, shard=j, **kw)
                       for j, m in enumerate(paths["manifests"])]
            for fut in futures:
                fut.result()
    return write_flow(paths["files"], paths["manifests"], paths["flow_csv"], paths["flow_png"], paths["studies"])
