"""External test cohorts by name: the tasks each has a reference for, and how the tables name it.

Kept free of torch and pandas imports: the workflow reads it while it builds the DAG.
"""

from __future__ import annotations

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


def cohort_tasks(cohort: str) -> tuple[str, ...] | None:
    """Tasks the cohort has references for; None = every task (a hospital site)."""
    if cohort.startswith(SITE_PREFIX):
        return None
    if cohort not in COHORT_TASKS:
        raise ValueError(f"external cohort {cohort!r}: no known reference tasks (known: {sorted(COHORT_TASKS)}, "
                         f"{SITE_PREFIX}<name>)")
    return COHORT_TASKS[cohort]


__all__ = ["COHORT_LABELS", "COHORT_TASKS", "SITE_PREFIX", "cohort_label", "cohort_tasks"]
