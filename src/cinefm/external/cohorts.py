"""External test cohorts by name: the tasks each has a reference for, and how the tables name it.

Kept free of torch and pandas imports: the workflow reads it while it builds the DAG.
"""

from __future__ import annotations

import os
from pathlib import Path

# tasks each public cohort has a reference for (None: every task, as a hospital site's reports)
COHORT_TASKS: dict[str, tuple[str, ...] | None] = {
    "acdc": ("lvef", "dcm", "hcm", "prior_mi", "rv_dilation"),
    "kaggle": ("lvef",),
}
COHORT_LABELS = {"acdc": "acdc", "kaggle": "kaggle_dsb"}
SITE_PREFIX = "site_"


def cohort_label(cohort: str) -> str:
    """How a cohort (its folder under ``results/external/``) is named in the tables:
    ``acdc``, ``kaggle`` → ``kaggle_dsb``, ``site_<name>`` → ``site:<name>``."""
    if cohort.startswith(SITE_PREFIX):
        return f"site:{cohort[len(SITE_PREFIX):]}"
    return COHORT_LABELS.get(cohort, cohort)


def cohort_tables(results: str, cohort: str) -> dict[str, str]:
    """Study manifest and labels table of a test-only cohort under the ``results`` folder: an adapter's
    ``external/<name>/{studies,labels}.csv``, or a site's ingestion and labels
    ``sites/<name>/{ingest/studies.csv,labels/labels.csv}`` (cohort ``site_<name>``)."""
    if cohort.startswith(SITE_PREFIX):
        site = f"{results}/sites/{cohort[len(SITE_PREFIX):]}"
        return {"studies": f"{site}/ingest/studies.csv", "labels": f"{site}/labels/labels.csv"}
    return {"studies": f"{results}/external/{cohort}/studies.csv", "labels": f"{results}/external/{cohort}/labels.csv"}


def cohort_of_folder(folder: str | os.PathLike) -> str:
    """The cohort name of a cohort folder: ``<results>/sites/<name>`` → ``site_<name>``, an adapter's
    ``<results>/external/<name>`` (or any folder holding ``studies.csv``) → its folder name."""
    path = Path(folder).resolve()
    if (path / "ingest" / "studies.csv").is_file() or path.parent.name == "sites":
        return f"{SITE_PREFIX}{path.name}"
    return path.name


def cohort_tasks(cohort: str) -> tuple[str, ...] | None:
    """Tasks the cohort has references for; None = every task (a hospital site)."""
    if cohort.startswith(SITE_PREFIX):
        return None
    if cohort not in COHORT_TASKS:
        raise ValueError(f"external cohort {cohort!r}: no known reference tasks (known: {sorted(COHORT_TASKS)}, "
                         f"{SITE_PREFIX}<name>)")
    return COHORT_TASKS[cohort]


__all__ = ["COHORT_LABELS", "COHORT_TASKS", "SITE_PREFIX", "cohort_label", "cohort_of_folder", "cohort_tables",
           "cohort_tasks"]
