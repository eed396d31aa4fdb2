"""External validation tables: every trained model on every external cohort's test units.

Input: ``results/external_test/<cohort>/<run>/predictions.csv`` (:mod:`cinefm.external.evaluate`):
the internal predictions' columns plus ``test_cohort`` (``acdc``, ``kaggle_dsb``, ``site:<name>``).
The statistics are the internal test split's (:mod:`cinefm.stats.experiments`), per cohort:

- ``external.csv``: cohort, experiment, task, metric, value, ci_low, ci_high, n. Disease tasks:
  ``auroc`` with its DeLong CI (DeLong et al. 1988; Sun & Xu 2014). LVEF: ``mae``, ``mse``,
  ``rmse``, ``r2``, ``pearson_r`` (percentile bootstrap CIs, Efron & Tibshirani 1993), the
  Bland–Altman bias, SD and limits of agreement (Bland & Altman 1986, 1999; predicted − reference)
  and, as task ``heart_failure``, the AUROC of the predicted LVEF for LVEF < ``labels.heart_failure_lvef``.
  A statistic the cohort cannot give (one class only) has value NaN and ``n`` the units it had.
- ``external_delong.csv``: cohort and the columns of the internal ``delong.csv``: every init against
  the baseline init (``kinetics``) of the same task, mode and fraction, paired on the cohort's units.
- figures in ``figures_dir/<cohort>/`` (``:`` of a site label as ``_``): ``roc_<task>_<mode>_<fraction>.png``
  (every init of a group) and ``bland_altman_<experiment>.png``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.atomic import save_figure, write_csv
from cinefm.stats.bland_altman import bland_altman_plot
from cinefm.stats.experiments import (
    REGRESSION_TASK,
    TABLE_COLUMNS,
    Experiment,
    StatsSettings,
    auroc_row,
    delong_pairs,
    delong_row,
    read_experiments,
    regression_rows,
    roc_figures,
)

log = logging.getLogger(__name__)

COLUMNS = ["cohort", "experiment", "task", "metric", "value", "ci_low", "ci_high", "n"]
DELONG_COLUMNS = ["cohort", *TABLE_COLUMNS["delong.csv"]]


def read_external(path: str | os.PathLike) -> tuple[str, list[Experiment]] | None:
    """(cohort label, experiments) of one external ``predictions.csv``; None when it holds no row."""
    path = Path(path)
    head = pd.read_csv(path, dtype=str)
    if head.empty:
        log.warning("%s: no prediction (the cohort has no reference for this model's tasks)", path)
        return None
    if "test_cohort" not in head.columns or head["test_cohort"].nunique() != 1:
        raise ValueError(f"{path}: column 'test_cohort' must hold one value (the cohort); rerun its "
                         "external_test job")
    return head["test_cohort"].iloc[0], read_experiments(path, split="test")


def metric_rows(cohort: str, exp: Experiment, s: StatsSettings) -> list[dict]:
    """The ``external.csv`` rows of one experiment (one task) on one cohort."""
    auc = auroc_row(exp, s)
    rows = [{"cohort": cohort, "experiment": exp.name, "task": auc["task"], "metric": "auroc", "value": auc["auc"],
             "ci_low": auc["ci_low"], "ci_high": auc["ci_high"], "n": auc["n"]}]
    if exp.task == REGRESSION_TASK:
        rows += [{"cohort": cohort, **r} for r in regression_rows(exp, s)]
    return rows


def _figure_dir(figures: Path, cohort: str) -> Path:
    out = figures / cohort.replace(":", "_")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_external_stats(predictions_csvs: Iterable[str | os.PathLike], out_csv: str | os.PathLike,
                         out_delong: str | os.PathLike, figures_dir: str | os.PathLike, config: dict,
                         baseline_init: str = "kinetics") -> pd.DataFrame:
    """Write ``external.csv``, ``external_delong.csv`` and the per-cohort figures; return the metrics table."""
    s = StatsSettings.from_config(config)
    by_cohort: dict[str, list[Experiment]] = {}
    for path in predictions_csvs:
        found = read_external(path)
        if found is not None:
            by_cohort.setdefault(found[0], []).extend(found[1])
    figures = Path(figures_dir)
    if figures.exists():
        shutil.rmtree(figures)  # this run's figures only
    figures.mkdir(parents=True)
    rows, pairs = [], []
    for cohort, experiments in sorted(by_cohort.items()):
        log.info("%s: %d experiment-task pairs", cohort, len(experiments))
        rows += [r for e in experiments for r in metric_rows(cohort, e, s)]
        pairs += [{"cohort": cohort, **delong_row(a, b, s)} for a, b in delong_pairs(experiments, baseline_init)]
        out = _figure_dir(figures, cohort)
        roc_figures(experiments, s, out)
        for e in experiments:
            r = e.rows.dropna(subset=["target", "score"])
            if e.task != REGRESSION_TASK or len(r) < 2:
                continue
            fig = bland_altman_plot(r["score"].astype(float), r["target"].astype(float), unit="%", level=s.ci_level,
                                    title=f"{cohort} · {e.name}: predicted − reference LVEF")
            save_figure(fig, out / f"bland_altman_{e.name.replace('/', '_')}.png", dpi=110)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    table["n"] = table["n"].astype("Int64")
    write_csv(table, out_csv)
    write_csv(pd.DataFrame(pairs).reindex(columns=DELONG_COLUMNS), out_delong)
    n_auc = int(np.isfinite(table.loc[table["metric"] == "auroc", "value"].astype(float)).sum())
    log.info("external validation: %d cohorts, %d rows (%d finite AUROCs), %d paired tests", len(by_cohort),
             len(table), n_auc, len(pairs))
    return table


__all__ = ["COLUMNS", "DELONG_COLUMNS", "metric_rows", "read_external", "write_external_stats"]
