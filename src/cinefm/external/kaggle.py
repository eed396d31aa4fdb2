"""Kaggle Second Annual Data Science Bowl adapter: the download as distributed -> per-study HDF5 and volumes.

Input (https://www.kaggle.com/c/second-annual-data-science-bowl/data; 500 train, 200 validate,
440 test studies, Ids 1..1140), a folder holding:

- ``train/``, ``validate/``, ``test/``, each with ``{Id}/study/{sax_N, 2ch_N, 4ch_N}/*.dcm``: one
  folder per series, single-frame cine DICOM files ``IM-{series}-{frame:04d}.dcm``, 30 per cine
  (the DSB tutorials list ``train/1/study/sax_5/IM-4557-0001.dcm`` ... ``IM-4557-0030.dcm``).
  Many downloads unpack into a doubled folder, ``train/train/{Id}/study`` (public loaders read
  ``second-annual-data-science-bowl/train/train/10/study/sax_5/...``; CineMA
  ``cinema/data/kaggle/preprocess.py`` reads ``data_dir / split / split``); both are accepted.
- ``train.csv`` and ``validate.csv``: ``Id,Systole,Diastole`` (LV volumes, ml);
  ``solution.csv`` (released after the contest) for the test set: ``Id,Volume,Usage`` with
  ``Id`` = ``{n}_Diastole`` / ``{n}_Systole`` (CineMA pivots it on the suffix after ``_``).

Known quirks of the set: SAX slices with another matrix or orientation (CineMA's
``filter_sax_images`` keeps the longest run of SAX slices with equal size, spacing and direction;
its ``PIDS_TO_SKIP`` lists an all-black study), repeated acquisitions at one slice location,
missing slices, frame counts other than 30 (CineMA notes a study with 30 SAX and 21 LAX frames),
and folders with files that are not images. Each SAX folder is checked
(:func:`cinefm.external.release.select_sax`) and its fate recorded in ``series.csv``; the stack
keeps one series per position (the latest), the majority orientation and matrix; other frame
counts are resampled to the common count by ingestion's periodic interpolation (noted).

``LVEF = 100 (Diastole - Systole) / Diastole``; ``edv_ml`` = Diastole, ``esv_ml`` = Systole. Split:
``train`` / ``val`` (validate) / ``test``. Unit statuses (one unit per study folder, plus one per
CSV row without a folder): ``missing`` (a CSV row whose study folder is absent), ``no_cine`` (no
``study/`` folder or no usable series: e.g. folders without DICOM), ``duplicate`` (one Id in two
split folders; the first of train, validate, test is read). ``patient_id = pseudonymize("kaggle:" + Id)``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.external.release import (
    ExternalError,
    Preprocess,
    SeriesFiles,
    Study,
    assemble_series,
    check_series,
    digest_of,
    map_units,
    reuse_existing,
    to_number,
    unit_row,
    write_outputs,
    write_study,
)
from cinefm.privacy import pseudonymize

log = logging.getLogger(__name__)

COHORT = "kaggle"
SPLITS = {"train": "train", "validate": "val", "test": "test"}
SERIES = re.compile(r"^(sax|2ch|4ch)_(\d+)$")
VIEW_OF = {"sax": "SAX", "2ch": "2CH", "4ch": "4CH"}


def study_folders(root: Path) -> dict[str, list[tuple[str, Path]]]:
    """Id -> [(split, folder)] for ``{split}/{Id}`` and ``{split}/{split}/{Id}`` folders."""
    found: dict[str, list[tuple[str, Path]]] = {}
    for name, split in SPLITS.items():
        for base in (root / name, root / name / name):
            if not base.is_dir():
                continue
            for p in sorted(base.iterdir(), key=lambda q: (len(q.name), q.name)):
                if p.is_dir() and p.name.isdigit():
                    found.setdefault(p.name, []).append((split, p))
                elif p.name != name:  # the doubled nesting folder itself is expected
                    log.warning("kaggle: %s is not an {Id} study folder; left out", p.relative_to(root))
    return found


def read_volumes(root: Path) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """{Id: (systole, diastole)} and {Id: csv name} from train.csv, validate.csv and solution.csv."""
    vols, where = {}, {}
    for name in ("train.csv", "validate.csv"):
        path = root / name
        if not path.is_file():
            continue
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"Id", "Systole", "Diastole"} - set(df.columns)
        if missing:
            raise ExternalError(f"{path}: missing column(s) {sorted(missing)}; expected Id,Systole,Diastole")
        for r in df.itertuples(index=False):
            vols[r.Id.strip()] = (to_number(r.Systole), to_number(r.Diastole))
            where[r.Id.strip()] = name
    path = root / "solution.csv"
    if path.is_file():
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if not {"Id", "Volume"} <= set(df.columns):
            raise ExternalError(f"{path}: expected columns Id,Volume[,Usage] with Id like 701_Diastole")
        pairs: dict[str, dict[str, float]] = {}
        for r in df.itertuples(index=False):
            n, _, phase = r.Id.strip().partition("_")
            pairs.setdefault(n, {})[phase.lower()] = to_number(r.Volume)
        for n, p in pairs.items():
            vols[n] = (p.get("systole", np.nan), p.get("diastole", np.nan))
            where[n] = "solution.csv"
    return vols, where


def list_series(study_dir: Path, root: Path) -> list[SeriesFiles]:
    """The series folders of one ``study/`` folder (``sax_N`` ordered by N), files relative to ``root``."""
    out = []
    for d in sorted((p for p in study_dir.iterdir() if p.is_dir()), key=lambda p: (p.name.split("_")[0],
                                                                                     _index(p.name))):
        m = SERIES.match(d.name)
        files = tuple(sorted(f.relative_to(root).as_posix() for f in d.iterdir() if f.is_file()))
        if m:
            out.append(SeriesFiles(d.name, VIEW_OF[m.group(1)], files))
        else:
            out.append(SeriesFiles(d.name, "", files, "skipped: not a sax_N, 2ch_N or 4ch_N folder"))
    return out


def _index(name: str) -> int:
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def convert_study(sid: str, split: str, folder: Path, root: Path, key: bytes, h5_root: Path, pre: Preprocess,
                  volumes: tuple[float, float] | None) -> tuple[Study, dict]:
    """One ``{Id}`` folder -> (study, files.csv row). Never raises for data problems."""
    rel = folder.relative_to(root).as_posix()
    study = Study(COHORT, pseudonymize(f"kaggle:{sid}", key, "patient"), pseudonymize(f"kaggle:{sid}", key, "study"),
                  split=split)
    ids = {"patient_id": study.patient_id, "study_id": study.study_id, "split": split}
    study_dir = folder / "study"
    if not study_dir.is_dir():
        study.status, study.reason = "failed", "no_cine: no study/ folder"
        return study, unit_row(sid, rel, "no_cine", study.reason, **ids)
    series = list_series(study_dir, root)
    stats = [(f, (root / f).stat()) for s in series for f in s.relpaths]
    study.digest = digest_of([(f, st.st_size, st.st_mtime_ns) for f, st in stats], pre, {"volumes": volumes})
    if not reuse_existing(study, h5_root):
        groups = check_series(root, series, key, pre, "", study)
        assemble_series(root, study, groups, pre, "kaggle:folder")
        if volumes is not None:
            sys_, dia = volumes
            study.labels = {"esv_ml": sys_, "edv_ml": dia,
                            "lvef": 100.0 * (dia - sys_) / dia if np.isfinite(dia) and dia > 0 else np.nan}
            if not np.isfinite(study.labels["lvef"]):
                study.notes.append("volumes_invalid: Systole/Diastole not numbers or Diastole <= 0")
        if not study.volumes:
            dropped = [r["reason"] for r in study.series if r["status"] not in ("kept", "skipped")]
            study.reason = ("no_cine: no usable series (" + "; ".join(dropped)[:250] + ")") if dropped else \
                "no_cine: no sax/2ch/4ch series folder"
        write_study(study, h5_root, pre)
    status = "ok" if study.status != "failed" else "no_cine"
    return study, unit_row(sid, rel, status, study.reason if status != "ok" else "; ".join(study.notes), **ids)


def run_kaggle(root: str | os.PathLike, out: str | os.PathLike, *, key: bytes, pre: Preprocess | None = None,
               jobs: int = 1) -> pd.DataFrame:
    """Convert the Data Science Bowl download under ``root`` into ``out`` (module docstring); return files.csv."""
    pre = pre or Preprocess()
    root, out = Path(root), Path(out)
    if not any((root / s).is_dir() for s in SPLITS):
        raise ExternalError(f"{root}: none of train/, validate/, test/ — --root must be the unpacked "
                            "second-annual-data-science-bowl download")
    found = study_folders(root)
    vols, where = read_volumes(root)
    units, studies = [], []
    ids = sorted(found, key=int)
    work = [(sid, *found[sid][0], root, key, out / "h5", pre, vols.get(sid)) for sid in ids]
    for sid, (study, row) in zip(ids, map_units(convert_study, work, jobs, "kaggle studies", "study"), strict=True):
        (_, folder), *others = found[sid]
        studies.append(study)
        units.append(row)
        for split2, folder2 in others:
            units.append(unit_row(sid, folder2.relative_to(root).as_posix(), "duplicate",
                                  f"duplicate: Id {sid} also under {folder.relative_to(root).as_posix()} (read)",
                                  patient_id=study.patient_id, study_id=study.study_id, split=split2))
    for sid in sorted(set(vols) - set(found), key=lambda s: (len(s), s)):
        units.append(unit_row(sid, where[sid], "missing", f"missing: {where[sid]} lists Id {sid} but no "
                              f"{{train,validate,test}}/{sid}/study folder exists",
                              patient_id=pseudonymize(f"kaggle:{sid}", key, "patient"),
                              study_id=pseudonymize(f"kaggle:{sid}", key, "study")))
    return write_outputs(out, COHORT, units, studies, [], "folders")
