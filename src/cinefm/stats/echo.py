"""Statistics of the echo comparison (EchoNet-Dynamic EF regression, one experiment per encoder).

Input: ``results/finetune/<experiment>/predictions.csv`` of the echo experiments
(``config/experiments/echonet/``; task ``lvef``: target = the release's EF, score = predicted
EF) and, when present, the ``metrics.csv`` beside each (for the mean-predictor reference).
Statistics are computed on the ``test`` split (the release's TEST videos).

Output (``out_dir``, normally ``results/stats/echonet``):

- ``regression.csv`` (columns of the MRI ``regression.csv``: experiment, task, metric, value,
  ci_low, ci_high, n): MAE, MSE, RMSE, R², Pearson r with bootstrap CIs, the Bland–Altman bias,
  SD and limits (:func:`cinefm.stats.experiments.regression_rows`), and ``mae_mean_predictor``
  — the test MAE of predicting the training mean (from metrics.csv; no CI);
- ``auroc.csv`` (columns of the MRI ``auroc.csv``): HFrEF detection, EF < ``labels.heart_failure_lvef``
  (40 %) from the predicted EF (lower = case), with DeLong CIs;
- ``thresholds.csv`` (columns of the MRI ``thresholds.csv``): HFrEF operating points of the predicted EF,
  chosen on the release's VAL videos (``chosen_on: val``) and applied unchanged to TEST
  (:func:`cinefm.stats.experiments.threshold_rows`);
- ``comparison.csv``: every pair of experiments (in name order, a before b) on their common test
  studies: experiment_a, experiment_b, n, mae_a, mae_b, difference (MAE_a − MAE_b), ci_low,
  ci_high (bootstrap), statistic (Wilcoxon W), p_value, level, n_a_better, note
  (:func:`cinefm.stats.paired_errors.compare_absolute_errors`);
- ``bland_altman_<experiment>.png`` and ``roc_hfref.png`` (every experiment's curve).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.atomic import save_figure, write_csv
from cinefm.stats.bland_altman import bland_altman_plot
from cinefm.stats.experiments import (
    REGRESSION_TASK,
    REQUIRED,
    TABLE_COLUMNS,
    VALIDATION,
    Experiment,
    StatsSettings,
    auroc_row,
    binary_view,
    read_identity,
    regression_rows,
    threshold_rows,
)
from cinefm.stats.paired_errors import compare_absolute_errors
from cinefm.stats.roc import RocPanel, roc_auc_ci, roc_ci_band, roc_curve, roc_figure

log = logging.getLogger(__name__)

COMPARISON_COLUMNS = ["experiment_a", "experiment_b", "n", "mae_a", "mae_b", "difference", "ci_low", "ci_high",
                      "statistic", "p_value", "level", "n_a_better", "note"]


def read_echo_predictions(path: str | os.PathLike, split: str = "test") -> Experiment:
    """The ``split`` rows of one echo experiment's ``predictions.csv`` (task lvef) as a stats Experiment.

    The VAL rows, when the run predicted them, ride along as ``val_rows`` (operating points are chosen there).
    """
    path = Path(path)
    df = pd.read_csv(path, dtype={"study_id": str, "split": str, "task": str, "experiment": str})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(REQUIRED)} (finetune predictions)")
    name = read_identity(df, path)["experiment"]
    rows = df[(df["split"] == split) & (df["task"] == REGRESSION_TASK)]
    if rows.empty:
        raise ValueError(f"{path}: no {REGRESSION_TASK} rows with split == {split!r} — the echo experiment "
                         "must predict EF on the release's TEST videos")
    if rows["study_id"].duplicated().any():
        raise ValueError(f"{path}: study {rows.loc[rows['study_id'].duplicated(), 'study_id'].iloc[0]} repeats")
    val = df[(df["split"] == VALIDATION) & (df["task"] == REGRESSION_TASK)] if split != VALIDATION else df.iloc[:0]
    return Experiment(name=name, task=REGRESSION_TASK, init=None, mode=None, fraction=None,
                      rows=rows[["study_id", "target", "score"]].reset_index(drop=True),
                      val_rows=val[["study_id", "target", "score"]].reset_index(drop=True) if len(val) else None)


def mean_predictor_mae(predictions_csv: str | os.PathLike, split: str = "test") -> float:
    """Test MAE of the training-mean predictor recorded by the run (``metrics.csv`` beside; NaN if absent)."""
    path = Path(predictions_csv).parent / "metrics.csv"
    if not path.is_file():
        return float("nan")
    m = pd.read_csv(path)
    hit = m[(m["stage"] == "best") & (m["split"] == split) & (m["metric"] == "mae_train_mean")]
    return float(hit["value"].iloc[0]) if len(hit) else float("nan")


def comparison_row(a: Experiment, b: Experiment, s: StatsSettings) -> dict:
    """Paired |error| comparison of ``a`` and ``b`` on their common studies (targets must agree)."""
    both = a.rows.merge(b.rows, on="study_id", suffixes=("_a", "_b")).dropna()
    row = {"experiment_a": a.name, "experiment_b": b.name, "n": len(both), "level": s.ci_level, "note": ""}
    if not np.allclose(both["target_a"].astype(float), both["target_b"].astype(float)):
        raise ValueError(f"{a.name} vs {b.name}: the same study has different targets — both predictions.csv "
                         "must come from the same labels.csv")
    try:
        c = compare_absolute_errors(both["target_a"].astype(float), both["score_a"].astype(float),
                                    both["score_b"].astype(float), level=s.ci_level, n_bootstrap=s.bootstrap,
                                    seed=s.bootstrap_seed)
    except ValueError as err:
        return {**row, "note": str(err)}
    return {**row, "mae_a": c.mae_a, "mae_b": c.mae_b, "difference": c.difference, "ci_low": c.ci_low,
            "ci_high": c.ci_high, "statistic": c.statistic, "p_value": c.p_value, "n_a_better": c.n_a_better}


def hfref_figure(experiments: list[Experiment], s: StatsSettings):
    """ROC curves of HFrEF detection (EF < cut-off) from the predicted EF, one per experiment."""

    panels = []
    for e in experiments:
        _, y, score, direction = binary_view(e, s.heart_failure_lvef)
        try:
            panels.append(RocPanel(label=e.name, curve=roc_curve(y, score, direction=direction),
                                   band=roc_ci_band(y, score, n_bootstrap=s.bootstrap, seed=s.bootstrap_seed,
                                                    level=s.ci_level, direction=direction),
                                   auc=roc_auc_ci(y, score, level=s.ci_level, direction=direction)))
        except ValueError as err:
            log.warning("%s: no HFrEF ROC curve: %s", e.name, err)
    return roc_figure(panels, f"HFrEF (EF < {s.heart_failure_lvef:g} %)") if panels else None


def write_echo_stats(predictions_csvs: Iterable[str | os.PathLike], out_dir: str | os.PathLike, config: dict,
                     split: str = "test") -> list[Path]:
    """Write regression/auroc/comparison CSVs and the figures of the echo comparison; return the paths.

    References: Efron & Tibshirani 1993 (bootstrap), Bland & Altman 1986/1999, DeLong 1988,
    Wilcoxon 1945.
    """
    s = StatsSettings.from_config(config)
    paths = [Path(p) for p in predictions_csvs]
    if not paths:
        raise ValueError("predictions_csvs: no echo predictions.csv given — run the echonet_finetune jobs first")
    read = [(read_echo_predictions(p, split), p) for p in paths]
    experiments = sorted((e for e, _ in read), key=lambda e: e.name)
    mean_mae = {e.name: mean_predictor_mae(p, split) for e, p in read}
    out = Path(out_dir)
    regression = []
    for e in experiments:
        regression += regression_rows(e, s)
        regression.append({"experiment": e.name, "task": e.task, "metric": "mae_mean_predictor",
                           "value": mean_mae[e.name], "ci_low": np.nan, "ci_high": np.nan, "n": len(e.rows)})
    tables = {
        "regression.csv": pd.DataFrame(regression).reindex(columns=TABLE_COLUMNS["regression.csv"]),
        "auroc.csv": pd.DataFrame([auroc_row(e, s) for e in experiments]).reindex(columns=TABLE_COLUMNS["auroc.csv"]),
        "thresholds.csv": pd.DataFrame([r for e in experiments for r in threshold_rows(e, s)])
                          .reindex(columns=TABLE_COLUMNS["thresholds.csv"]),
        "comparison.csv": pd.DataFrame([comparison_row(a, b, s) for a, b in itertools.combinations(experiments, 2)],
                                       columns=COMPARISON_COLUMNS),
    }
    written = []
    for name, df in tables.items():
        write_csv(df, out / name)
        written.append(out / name)
    for e in experiments:
        r = e.rows.dropna(subset=["target", "score"])
        if len(r) < 2:
            continue
        fig = bland_altman_plot(r["score"].astype(float), r["target"].astype(float), unit="%", level=s.ci_level,
                                title=f"{e.name}: predicted − reference EF")
        path = out / f"bland_altman_{e.name}.png"
        save_figure(fig, path, dpi=110)
        written.append(path)
    fig = hfref_figure(experiments, s)
    if fig is not None:
        save_figure(fig, out / "roc_hfref.png", dpi=110)
        written.append(out / "roc_hfref.png")
    for stale in sorted({*out.glob("bland_altman_*.png"), *out.glob("roc_*.png")} - set(written)):
        stale.unlink()
    log.info("echo stats: %d experiments, wrote %d files to %s", len(experiments), len(written), out)
    return written


__all__ = ["COMPARISON_COLUMNS", "comparison_row", "hfref_figure", "mean_predictor_mae", "read_echo_predictions",
           "write_echo_stats"]
