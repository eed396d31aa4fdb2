"""DICOM ingestion: header scan and quarantine, view selection, frame assembly, per-study HDF5.

Stages (each a module, each usable without Snakemake):

- :mod:`cinefm.dicom.scan`: list an archive, read every file's header once (sharded,
  parallel across files) -> one row per file with a file-level status.
- :mod:`cinefm.dicom.header`: one file -> one :class:`~cinefm.dicom.header.FileRecord`
  (header-only read, truncation and pixel-length checks, enhanced multi-frame geometry).
- :mod:`cinefm.dicom.series`: archive-wide rules on the merged table: duplicates,
  non-cine and inconsistent series, view assignment (:mod:`cinefm.dicom.views`) and
  the choice of the series used per study and view -> ``files.parquet``.
- :mod:`cinefm.dicom.assemble`: pixels of the chosen files -> ordered
  ``(slices, frames, H, W)`` uint8 arrays (temporal resampling, intensity window, resize).
- :mod:`cinefm.dicom.extract`: one HDF5 per study, written atomically, per shard.
- :mod:`cinefm.dicom.flow`: exclusion counts files -> series -> studies -> patients.
- :mod:`cinefm.dicom.ingest`: the whole chain in one call (the ``cinefm ingest`` CLI).
"""
