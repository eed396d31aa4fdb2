"""Header scan of a DICOM archive: list once, scan in shards, read files in parallel.

The archive is walked once (:func:`list_files` -> ``filelist.parquet``); each file
goes to shard ``crc32(relpath) % shards`` (stable when files are added elsewhere),
so the number of scan jobs is ``shards`` whatever the cohort size. Within a shard,
files are read by ``jobs`` worker processes (:func:`scan_files`), one header-only
read per file (:mod:`cinefm.dicom.header`). A shard's rows carry file-level statuses
only; archive-wide rules (duplicates, series checks, views) run on the merged table
(:mod:`cinefm.dicom.series`).

Table columns (``RECORD_SCHEMA``): see :class:`cinefm.dicom.header.FileRecord`.

Privacy: no name, birth date, MRN, accession number, UID or date is stored; ids are
keyed pseudonyms. ``relpath`` is stored as the archive names it: when a site's export
folders or file names carry identifiers (some PACS exports name folders after the
patient), rename them before ingestion or keep ``results/`` under the same protection
as the archive; the pipeline cannot tell a name from a folder label.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import stat
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cinefm.atomic import atomic_path
from cinefm.dicom.header import RECORD_COLUMNS, FileRecord, read_file_ids
from cinefm.privacy import load_key

log = logging.getLogger(__name__)
_PYDICOM_LOG = logging.getLogger("pydicom")

_STR, _INT, _FLOAT, _FLOATS = pa.string(), pa.int64(), pa.float64(), pa.list_(pa.float64())
_TYPES = {
    "size": _INT, "series_number": _INT, "instance_number": _INT, "rows": _INT, "cols": _INT,
    "frames": _INT, "cardiac_images": _INT, "trigger_time": _FLOAT, "slice_location": _FLOAT,
    "orientation": _FLOATS, "pixel_spacing": _FLOATS, "frame_times": _FLOATS, "frame_positions": _FLOATS,
    "pixel_offset": _INT, "bits_allocated": _INT, "bits_stored": _INT, "pixel_representation": _INT,
    "big_endian": pa.bool_(), "rescale_slope": _FLOAT, "rescale_intercept": _FLOAT,
}
RECORD_SCHEMA = pa.schema([(c, _TYPES.get(c, _STR)) for c in RECORD_COLUMNS])
_PATIENT, _STUDY = RECORD_COLUMNS.index("patient_id"), RECORD_COLUMNS.index("study_id")
FILELIST_SCHEMA = pa.schema([("relpath", _STR), ("size", _INT)])


def shard_of(key: str, shards: int) -> int:
    """Stable shard number of a relpath or study id: ``crc32(key) % shards``."""
    return zlib.crc32(key.encode("utf-8", "surrogateescape")) % shards


def list_files(root: str | os.PathLike) -> pd.DataFrame:
    """Every regular file under ``root`` (symlinks to files followed, to folders not): relpath, size.

    Sorted by relpath. Hidden files are listed too: every input file gets a row.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"DICOM root not found or not a folder: {root} (config cohort.dicom_root / --dicom-root)")
    rows: list[tuple[str, int]] = []
    prefix = len(os.path.join(str(root), ""))  # entry.path = root + sep + relative path
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError:
                    st = None
                if st is None or stat.S_ISREG(st.st_mode):
                    rel = entry.path[prefix:]
                    rows.append((rel if os.sep == "/" else rel.replace(os.sep, "/"), st.st_size if st else -1))
    df = pd.DataFrame(rows, columns=["relpath", "size"]).sort_values("relpath", ignore_index=True)
    return df


def write_filelist(root: str | os.PathLike, out: str | os.PathLike) -> pd.DataFrame:
    """List ``root`` and write ``filelist.parquet`` atomically."""
    df = list_files(root)
    write_table(df, out, FILELIST_SCHEMA)
    log.info("listed %d files under %s", len(df), root)
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike, schema: pa.Schema) -> None:
    """Write ``df`` as Parquet with an explicit schema (stable types across shards), atomically."""
    table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _scan_one(relpath: str, root: str, key: bytes, reader: str = "fast") -> tuple[tuple, tuple[str, str] | None]:
    """(the record's values in ``RECORD_COLUMNS`` order, raw ids): a tuple pickles back cheaply."""
    if _PYDICOM_LOG.level != logging.ERROR:
        _PYDICOM_LOG.setLevel(logging.ERROR)  # oddities of single files end up as reasons
    rec, ids = read_file_ids(root, relpath, key, reader)
    return astuple_shallow(rec), ids


def astuple_shallow(rec: FileRecord) -> tuple:
    """A record's values in ``RECORD_COLUMNS`` order (no deep copy, unlike ``dataclasses.astuple``)."""
    return tuple(getattr(rec, c) for c in RECORD_COLUMNS)


@contextmanager
def fork_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """``with fork_pool(jobs) as pool``: ``jobs`` worker processes started by fork, after ``gc.freeze()``.

    fork: workers start at once and never re-run a calling script's top level (Snakemake
    scripts); ingestion workers only use pydicom/numpy/pandas/h5py, never an OpenMP runtime
    the parent may hold. ``gc.freeze()`` keeps the parent's objects out of the workers'
    garbage collections, which would otherwise touch (and copy) every page they live on;
    the parent's collector is unfrozen when the pool is done.
    """
    gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            yield pool
    finally:
        gc.unfreeze()


def records_frame(records: Iterable[FileRecord | tuple]) -> pd.DataFrame:
    """FileRecords (or their :func:`astuple_shallow` tuples) -> a frame with the ``RECORD_SCHEMA`` columns."""
    rows = [r if isinstance(r, tuple) else astuple_shallow(r) for r in records]
    df = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    for c in ("orientation", "pixel_spacing", "frame_times", "frame_positions"):
        df[c] = df[c].map(lambda v: list(v) if v is not None and not isinstance(v, float) else None)
    return df


def scan_files(
    root: str | os.PathLike, relpaths: list[str], key: bytes, jobs: int = 1, reader: str = "fast"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scan ``relpaths`` under ``root`` with ``jobs`` processes.

    ``reader``: header reader of :func:`cinefm.dicom.header.read_file_ids` (``fast``, or
    ``pydicom``, the reference; both give the same table).

    Returns (records frame in ``relpaths`` order, id map frame with columns
    ``kind, identifier, pseudonym`` holding the raw PatientID / study keys).
    """
    fn = partial(_scan_one, root=str(root), key=key, reader=reader)
    t0 = time.perf_counter()
    if jobs <= 1 or len(relpaths) < 64:
        results = [fn(r) for r in relpaths]
    else:
        chunk = max(8, min(256, len(relpaths) // (jobs * 8) or 1))
        with fork_pool(jobs) as pool:
            results = list(pool.map(fn, relpaths, chunksize=chunk))
    dt = time.perf_counter() - t0
    log.info("scanned %d files in %.1f s (%.0f files/s, %d jobs)", len(relpaths), dt, len(relpaths) / max(dt, 1e-9), jobs)
    df = records_frame(r for r, _ in results)
    pairs = {
        (kind, raw, pseudo)
        for (rec, ids) in results
        if ids is not None
        for kind, raw, pseudo in (("patient", ids[0], rec[_PATIENT]), ("study", ids[1], rec[_STUDY]))
        if raw and pseudo
    }
    id_map = pd.DataFrame(sorted(pairs), columns=["kind", "identifier", "pseudonym"])
    return df, id_map


def write_id_map(id_map: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the real-id -> pseudonym map with 0600 permissions (owner only), atomically.

    It holds PatientIDs (MRNs) and accession numbers: keep it outside ``results/``.
    """
    with atomic_path(path) as tmp:
        os.chmod(tmp, 0o600)
        id_map.to_csv(tmp, index=False)
    os.chmod(path, 0o600)


def scan_shard(
    filelist: str | os.PathLike,
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    shard: int,
    shards: int,
    phantom: bool = False,
    key_file: str | os.PathLike | None = None,
    jobs: int = 1,
    id_map_out: str | os.PathLike | None = None,
    reader: str = "fast",
) -> pd.DataFrame:
    """Scan the files of ``shard`` (of ``shards``) listed in ``filelist``; write ``out`` (Parquet).

    ``reader``: the header reader of :func:`scan_files`.

    The pseudonymization key comes from :func:`cinefm.privacy.load_key` (real data
    without a key stops with PrivacyError before any file is read).
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1} (config ingest.shards = {shards})")
    key = load_key(key_file, phantom=phantom)
    files = pd.read_parquet(filelist)
    mine = [r for r in files["relpath"] if shard_of(r, shards) == shard]
    log.info("shard %d/%d: %d of %d files", shard, shards, len(mine), len(files))
    df, id_map = scan_files(root, mine, key, jobs, reader=reader)
    write_table(df, out, RECORD_SCHEMA)
    if id_map_out:
        write_id_map(id_map, id_map_out)
    return df
