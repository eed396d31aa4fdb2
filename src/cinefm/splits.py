"""Patient-level splits that never leak a patient and never move when the cohort grows.

Each patient is placed by a keyed hash: ``u = HMAC-SHA256(key=seed, msg=salt:patient_id)``
read as a number in [0, 1) and compared with cumulative thresholds. The assignment of a
patient therefore depends only on its own id and the seed, so adding patients never moves
existing ones, and every study of a patient lands on the same side.

Levels (fractions from ``config.splits``; the paper's values in brackets):

* pre-training vs downstream by ``u_stage < pretrain_fraction`` [75:25];
* pre-training into train/val by ``u_split < pretrain_val_fraction`` (val) [66:33];
* downstream into train/val/test by ``u_split`` against the cumulative
  ``downstream.train``, ``+ downstream.val`` [50:25:25];
* external cohorts: test only.

Training on a fraction of the downstream training set ranks its patients by a third keyed
hash under ``fraction_seed`` and keeps the first ``round(f * n)``: the subsets are nested
(10 % ⊂ 25 % ⊂ 50 %) and reproducible from the recorded seed.

Output table (``results/splits/splits.csv``): ``patient_id, study_id, cohort, stage, split``
with stage in {pretrain, downstream, external} and split in {train, val, test}.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cinefm.atomic import write_csv

log = logging.getLogger(__name__)

SPLIT_COLUMNS = ["patient_id", "study_id", "cohort", "stage", "split"]
FRACTION_COLUMNS = ["patient_id", "study_id", "train_fraction", "fraction_seed"]
# Which splits each stage may hold; anything else in a splits table is an error.
ALLOWED = {
    "pretrain": ("train", "val"),
    "downstream": ("train", "val", "test"),
    "external": ("test",),
}
_SUM_TOL = 1e-6


class SplitError(ValueError):
    """A splits table or its inputs are inconsistent; the message names the row and the fix."""


class LeakageError(SplitError):
    """A patient (or study) sits on two sides of a split."""


@dataclass(frozen=True)
class SplitFractions:
    """Thresholds of the patient-level assignment (see the module docstring)."""

    pretrain: float = 0.75
    pretrain_val: float = 0.33
    downstream_train: float = 0.5
    downstream_val: float = 0.25
    downstream_test: float = 0.25

    def __post_init__(self) -> None:
        for name in ("pretrain", "pretrain_val"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SplitError(f"config.splits: {name} fraction must lie in [0, 1], got {value}")
        total = self.downstream_train + self.downstream_val + self.downstream_test
        if abs(total - 1.0) > _SUM_TOL or min(self.downstream_train, self.downstream_val,
                                             self.downstream_test) < 0:
            raise SplitError(
                "config.splits.downstream: train + val + test must be non-negative and sum to 1, "
                f"got {self.downstream_train} + {self.downstream_val} + {self.downstream_test} = {total}"
            )

    @classmethod
    def from_config(cls, splits_cfg: Mapping) -> SplitFractions:
        """Build from the ``splits:`` section of the configuration."""
        down = splits_cfg["downstream"]
        return cls(
            pretrain=float(splits_cfg["pretrain_fraction"]),
            pretrain_val=float(splits_cfg["pretrain_val_fraction"]),
            downstream_train=float(down["train"]),
            downstream_val=float(down["val"]),
            downstream_test=float(down["test"]),
        )


@dataclass(frozen=True)
class FractionSubset:
    """A seeded subset of the downstream training set; ``seed`` is what reproduces it."""

    studies: pd.DataFrame  # rows of the splits table (downstream, train) that are kept
    fraction: float
    seed: int
    n_patients: int  # patients kept
    n_available: int  # patients in the full downstream training set


def keyed_uniform(key: str, seed: int, salt: str) -> float:
    """Map ``(key, seed, salt)`` to a number in [0, 1): HMAC-SHA256(seed, "salt:key"), top 53 bits."""
    digest = hmac.new(str(int(seed)).encode(), f"{salt}:{key}".encode(), hashlib.sha256).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def assign_patient(patient_id: str, seed: int, fractions: SplitFractions) -> tuple[str, str]:
    """Return ``(stage, split)`` of one internal-cohort patient."""
    u_stage = keyed_uniform(patient_id, seed, "stage")
    u_split = keyed_uniform(patient_id, seed, "split")
    if u_stage < fractions.pretrain:
        return "pretrain", ("val" if u_split < fractions.pretrain_val else "train")
    if u_split < fractions.downstream_train:
        return "downstream", "train"
    if u_split < fractions.downstream_train + fractions.downstream_val:
        return "downstream", "val"
    return "downstream", "test"


def _study_table(studies: pd.DataFrame, source: str) -> pd.DataFrame:
    """Validate ``patient_id, study_id`` of a studies table; one row per study."""
    missing = {"patient_id", "study_id"} - set(studies.columns)
    if missing:
        raise SplitError(f"{source}: missing column(s) {sorted(missing)}; "
                         "expected one row per study with patient_id and study_id")
    table = studies[["patient_id", "study_id"]].astype("string")
    empty = table[table.isna().any(axis=1) | (table == "").any(axis=1)]
    if len(empty):
        raise SplitError(f"{source}: row {int(empty.index[0])} has an empty patient_id or study_id; "
                         "fix the upstream table (every study needs both ids)")
    table = table.drop_duplicates()
    clash = table[table.duplicated("study_id", keep=False)]
    if len(clash):
        sid = clash["study_id"].iloc[0]
        owners = sorted(clash.loc[clash["study_id"] == sid, "patient_id"])
        raise SplitError(f"{source}: study {sid} belongs to several patients {owners}; "
                         "a study has exactly one patient — check the pseudonymization inputs")
    return table.reset_index(drop=True)


def assign_splits(
    studies: pd.DataFrame,
    cohort: str,
    seed: int,
    fractions: SplitFractions,
    external: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Split the internal cohort by patient and append external cohorts as test-only.

    ``studies`` and each external table need ``patient_id`` and ``study_id`` columns.
    Returns the splits table (``SPLIT_COLUMNS``), already checked by :func:`check_leakage`.
    """
    table = _study_table(studies, f"studies of cohort {cohort}")
    patients = table["patient_id"].unique()
    placed = {pid: assign_patient(str(pid), seed, fractions) for pid in patients}
    frames = [table.assign(
        cohort=cohort,
        stage=table["patient_id"].map(lambda p: placed[p][0]),
        split=table["patient_id"].map(lambda p: placed[p][1]),
    )]
    for name, ext in (external or {}).items():
        if name == cohort:
            raise SplitError(f"config.splits.external: {name!r} is also the internal cohort's name; "
                             "external cohorts must be other cohorts")
        frames.append(_study_table(ext, f"external cohort {name}").assign(
            cohort=name, stage="external", split="test"))
    out = pd.concat(frames, ignore_index=True)[SPLIT_COLUMNS]
    out = out.sort_values(["cohort", "patient_id", "study_id"], kind="stable").reset_index(drop=True)
    check_leakage(out)
    return out


def check_leakage(splits: pd.DataFrame) -> None:
    """Raise :class:`LeakageError` naming the first patient or study on two sides of a split.

    A side is the triple (cohort, stage, split); stage/split pairs outside ``ALLOWED`` and
    studies listed twice are errors too. Run on every table that is written or read.
    """
    missing = set(SPLIT_COLUMNS) - set(splits.columns)
    if missing:
        raise SplitError(f"splits table: missing column(s) {sorted(missing)}")
    for stage, split in splits[["stage", "split"]].drop_duplicates().itertuples(index=False):
        if split not in ALLOWED.get(stage, ()):
            raise SplitError(f"splits table: stage {stage!r} with split {split!r} is not allowed; "
                             f"allowed: {ALLOWED}")
    sides = splits["cohort"].astype(str) + "/" + splits["stage"].astype(str) + "/" + splits["split"].astype(str)
    per_patient = sides.groupby(splits["patient_id"]).nunique()
    leaked = per_patient[per_patient > 1]
    if len(leaked):
        pid = leaked.index[0]
        where = sorted(sides[splits["patient_id"] == pid].unique())
        raise LeakageError(
            f"patient {pid} appears on {len(where)} sides of the split: {where} "
            f"({len(leaked)} patient(s) leak in total); every study of a patient must share one "
            "side — regenerate the splits instead of editing them by hand"
        )
    dup = splits[splits["study_id"].duplicated(keep=False)]
    if len(dup):
        sid = dup["study_id"].iloc[0]
        raise LeakageError(f"study {sid} is listed {int((dup['study_id'] == sid).sum())} times in "
                           "the splits table; each study must appear once")


def read_splits(path: str | os.PathLike) -> pd.DataFrame:
    """Read a splits CSV and check it for leakage (ids stay strings)."""
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"{path}: splits table not found — run the `splits` rule first")
    splits = pd.read_csv(path, dtype=str, keep_default_na=False)
    try:
        check_leakage(splits)
    except SplitError as err:
        raise type(err)(f"{path}: {err}") from None
    return splits


def train_fraction_subset(splits: pd.DataFrame, fraction: float, seed: int) -> FractionSubset:
    """Keep ``round(fraction * n)`` patients (at least one) of the downstream training set.

    Patients are ranked by ``keyed_uniform(patient_id, seed, "fraction")`` and the first ones
    are kept, so smaller fractions are subsets of larger ones for the same seed.
    """
    if not 0.0 < fraction <= 1.0:
        raise SplitError(f"train fraction must lie in (0, 1], got {fraction}")
    train = splits[(splits["stage"] == "downstream") & (splits["split"] == "train")]
    patients = sorted(train["patient_id"].unique(), key=lambda p: keyed_uniform(str(p), seed, "fraction"))
    n_keep = max(1, round(fraction * len(patients))) if patients else 0
    keep = set(patients[:n_keep])
    subset = train[train["patient_id"].isin(keep)].reset_index(drop=True)
    return FractionSubset(subset, float(fraction), int(seed), n_keep, len(patients))


def fraction_table(splits: pd.DataFrame, fractions: Sequence[float], seed: int) -> pd.DataFrame:
    """One row per (study, train fraction) it belongs to, with the seed that drew it."""
    rows = []
    for f in sorted(set(float(x) for x in fractions)):
        sub = train_fraction_subset(splits, f, seed)
        rows.append(sub.studies[["patient_id", "study_id"]].assign(train_fraction=f, fraction_seed=seed))
        log.info("train fraction %.3g: %d of %d downstream training patients (seed %d)",
                 f, sub.n_patients, sub.n_available, seed)
    if not rows:
        return pd.DataFrame(columns=FRACTION_COLUMNS)
    return pd.concat(rows, ignore_index=True)[FRACTION_COLUMNS]


def _summary(splits: pd.DataFrame) -> str:
    counts = splits.groupby(["cohort", "stage", "split"])["patient_id"].nunique()
    return ", ".join(f"{c}/{s}/{p}: {n} patients" for (c, s, p), n in counts.items())


def _read_table(path: str | os.PathLike, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"{path}: {what} not found")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _with_images(manifest: pd.DataFrame, source: str | os.PathLike) -> pd.DataFrame:
    """Studies of a manifest that have an HDF5 file (ingestion's ``status`` is not ``failed``)."""
    if "status" in manifest.columns:
        failed = manifest["status"].eq("failed")
        if failed.any():
            log.info("%s: %d studies failed extraction and are not split", source, int(failed.sum()))
        manifest = manifest[~failed]
    return _study_table(manifest, str(source))


def make_splits(
    studies_csv: str | os.PathLike,
    labels_csv: str | os.PathLike,
    out_csv: str | os.PathLike,
    fractions_csv: str | os.PathLike,
    *,
    cohort: str,
    seed: int,
    fractions: SplitFractions,
    train_fractions: Sequence[float],
    fraction_seed: int,
    external: Mapping[str, str | os.PathLike] | None = None,
) -> pd.DataFrame:
    """Read the study manifest and labels, write ``splits.csv`` and ``train_fractions.csv``.

    Studies with images (rows of ``studies_csv`` whose ``status``, if given, is not
    ``failed``) are split. ``labels_csv`` is checked for
    consistency: a study whose patient differs between the two tables is an error; labelled
    studies without images are counted in the log.
    """
    studies = _with_images(_read_table(studies_csv, "study manifest"), studies_csv)
    labels = _read_table(labels_csv, "labels table")
    if {"patient_id", "study_id"} <= set(labels.columns):
        lab = _study_table(labels, str(labels_csv))
        both = studies.merge(lab, on="study_id", suffixes=("", "_labels"))
        bad = both[both["patient_id"] != both["patient_id_labels"]]
        if len(bad):
            row = bad.iloc[0]
            raise SplitError(f"{labels_csv}: study {row['study_id']} has patient {row['patient_id_labels']}"
                             f" but {studies_csv} says {row['patient_id']}; both must come from the "
                             "same pseudonymization key")
        no_images = len(set(lab["study_id"]) - set(studies["study_id"]))
        no_labels = len(set(studies["study_id"]) - set(lab["study_id"]))
        log.info("%d labelled studies have no images (not split); %d studies with images have no "
                 "labels (split, usable for pre-training only)", no_images, no_labels)
    else:
        log.warning("%s: no patient_id/study_id columns; labels not cross-checked", labels_csv)
    ext = {name: _with_images(_read_table(p, f"study manifest of external cohort {name}"), p)
           for name, p in (external or {}).items()}
    splits = assign_splits(studies, cohort, seed, fractions, ext)
    log.info("splits: %s", _summary(splits))
    write_csv(splits, out_csv)
    write_csv(fraction_table(splits, train_fractions, fraction_seed), fractions_csv)
    return splits


__all__ = [
    "ALLOWED", "FRACTION_COLUMNS", "SPLIT_COLUMNS", "FractionSubset", "LeakageError", "SplitError",
    "SplitFractions", "assign_patient", "assign_splits", "check_leakage", "fraction_table",
    "keyed_uniform", "make_splits", "read_splits", "train_fraction_subset",
]
