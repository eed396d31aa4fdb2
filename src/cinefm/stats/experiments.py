"""Statistics tables and figures for every fine-tuning experiment (the I/O edge of cinefm.stats).

Input: ``results/finetune/{experiment}/predictions.csv`` (:mod:`cinefm.train.finetune_module`)
with the experiment's identity — columns experiment, cohort, init, mode, fraction, read from
the file, never from its folder's name — and study_id, split, task, target, score (and
``attn_<view>``). ``task`` is ``lvef`` (regression: target = reference LVEF, score =
predicted LVEF) or a disease key (target 0/1, empty = uncertain; score = predicted
probability). ``fraction`` (a share, 0.25) appears in the tables as the percent of the
experiment names (``25``).

Output (``out_dir``, normally ``results/stats``):

- ``auroc.csv``: experiment, task, init, mode, fraction, n, n_cases, n_controls, auc,
  ci_low, ci_high, variance, direction, level, note. LVEF experiments add a
  ``heart_failure`` row: LVEF < ``labels.heart_failure_lvef`` from the predicted LVEF
  (lower = case, direction ``>``).
- ``delong.csv``: every non-baseline init against the baseline init (``kinetics``) of
  the same task/mode/fraction, paired DeLong on their common test studies:
  task, mode, fraction, experiment_a, experiment_b, n, auc_a, auc_b, difference,
  ci_low, ci_high, statistic, p_value, level, note.
- ``thresholds.csv``: experiment, task, point, chosen_on, split, threshold, sensitivity,
  specificity, accuracy, tp, fp, tn, fn: each operating point's threshold chosen on the
  validation split (``chosen_on: val``) and reported there and, unchanged, on the test split
  (:func:`cinefm.stats.thresholds.transferred_operating_points`); chosen on the test split only
  when the predictions hold no usable validation rows (``chosen_on: test``).
- ``regression.csv``: experiment, task, metric, value, ci_low, ci_high, n: MAE, MSE,
  RMSE, R², Pearson r (bootstrap CIs) and the Bland–Altman bias, SD and limits.
- ``lvef_subgroups.csv`` (when the labels, splits and training fractions are given): the
  test error of every LVEF experiment by disease subgroup, with the training studies behind
  each subgroup (:mod:`cinefm.stats.subgroups`).
- ``view_attention.csv``: the mean share of the multi-view attention that each view plane
  received, per experiment and task (:mod:`cinefm.stats.view_attention`).
- ``roc_<task>_<mode>_<fraction>.png`` (all inits of a group), ``bland_altman_<experiment>.png``,
  ``view_attention.png`` and ``lvef_subgroups.png`` (with ``lvef_subgroups.csv``) in ``figures_dir``: ``out_dir``
  itself unless given; ``results/stats/figures`` in the workflow.

Figures named like ours that this run does not produce (an experiment removed since the
last run) are deleted so that the report shows only this run. Statistics are computed
on the ``test`` split. A table row whose statistic is
undefined (e.g. a test split without cases) carries NaN and says why in ``note``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cinefm.atomic import save_figure, write_csv
from cinefm.splits import read_splits
from cinefm.stats.bland_altman import bland_altman, bland_altman_plot
from cinefm.stats.delong import delong_test
from cinefm.stats.regression import regression_metrics
from cinefm.stats.roc import RocPanel, roc_auc_ci, roc_ci_band, roc_curve, roc_figure
from cinefm.stats.subgroups import COLUMNS as SUBGROUP_COLUMNS
from cinefm.stats.subgroups import lvef_subgroups, subgroup_plot
from cinefm.stats.thresholds import operating_points, transferred_operating_points
from cinefm.stats.view_attention import COLUMNS as ATTENTION_COLUMNS
from cinefm.stats.view_attention import attention_columns, view_attention_plot, view_attention_table
from cinefm.train.experiments import fraction_label

log = logging.getLogger(__name__)

REQUIRED = ("study_id", "split", "task", "target", "score")
IDENTITY = ("experiment", "cohort", "init", "mode", "fraction")  # one value per file
REGRESSION_TASK = "lvef"
HEART_FAILURE = "heart_failure"
SUBGROUP_FIGURE = "lvef_subgroups.png"
VALIDATION = "val"  # the split label of validation rows in predictions.csv (operating points are chosen there)
ATTENTION_FIGURE = "view_attention.png"
# Column order of every table written by write_stats (documented in the module docstring).
TABLE_COLUMNS = {
    "auroc.csv": ["experiment", "task", "init", "mode", "fraction", "n", "n_cases", "n_controls", "auc",
                  "ci_low", "ci_high", "variance", "direction", "level", "note"],
    "delong.csv": ["task", "mode", "fraction", "experiment_a", "experiment_b", "n", "auc_a", "auc_b",
                   "difference", "ci_low", "ci_high", "statistic", "p_value", "level", "note"],
    "thresholds.csv": ["experiment", "task", "point", "chosen_on", "split", "threshold", "sensitivity", "specificity", "accuracy",
                       "tp", "fp", "tn", "fn"],
    "regression.csv": ["experiment", "task", "metric", "value", "ci_low", "ci_high", "n"],
    "lvef_subgroups.csv": SUBGROUP_COLUMNS,
    "view_attention.csv": ATTENTION_COLUMNS,
}


@dataclass(frozen=True)
class StatsSettings:
    """The ``stats:`` config section (plus the heart-failure LVEF cut-off from ``labels:``)."""

    ci_level: float
    bootstrap: int
    bootstrap_seed: int
    sensitivity_target: float
    specificity_target: float
    heart_failure_lvef: float

    @classmethod
    def from_config(cls, config: dict) -> StatsSettings:
        try:
            s = config["stats"]
            return cls(
                ci_level=float(s["ci_level"]),
                bootstrap=int(s["bootstrap"]),
                bootstrap_seed=int(s["bootstrap_seed"]),
                sensitivity_target=float(s["sensitivity_target"]),
                specificity_target=float(s["specificity_target"]),
                heart_failure_lvef=float(config["labels"]["heart_failure_lvef"]),
            )
        except KeyError as err:
            raise KeyError(f"config.stats / config.labels: missing key {err} — see config/config.yaml") from err


@dataclass(frozen=True)
class Experiment:
    """The test-split predictions of one fine-tuning experiment."""

    name: str
    task: str
    init: str | None
    mode: str | None
    fraction: str | None
    rows: pd.DataFrame  # study_id, target, score and attn_<view> (test split)
    val_rows: pd.DataFrame | None = None  # study_id, target, score of the validation split (thresholds)

    @property
    def model(self) -> str:
        """The run folder: the tasks of a multi-disease run (``<folder>/<task>``) share it."""
        return self.name.split("/", 1)[0]

    @property
    def group(self) -> tuple[str, str | None, str | None]:
        return (self.task, self.mode, self.fraction)


@dataclass(frozen=True)
class CohortTables:
    """The labels, splits and training-fraction tables that place test errors in disease subgroups."""

    labels_csv: Path
    splits_csv: Path
    fractions_csv: Path | None = None

    def lvef_subgroups(self, experiments: list[Experiment], diseases: list[str]) -> pd.DataFrame:
        """:func:`cinefm.stats.subgroups.lvef_subgroups` of the LVEF ``experiments``."""
        labels, splits = pd.read_csv(self.labels_csv), read_splits(self.splits_csv)
        fractions = pd.read_csv(self.fractions_csv) if self.fractions_csv is not None else None
        triples = [(e.name, int(e.fraction) / 100 if (e.fraction or "").isdigit() else 1.0, e.rows)
                   for e in experiments]
        try:
            return lvef_subgroups(triples, labels, splits, fractions, diseases)
        except ValueError as err:
            raise ValueError(f"{self.labels_csv}: {err}") from err


def parse_experiment_name(name: str) -> tuple[str, str | None, str | None, str | None]:
    """``<task>_<init>_<mode>_<fraction>`` → (task, init, mode, fraction); unparsed → (name, None, None, None).

    Only to warn when a folder's name contradicts the identity its predictions.csv carries.
    """
    parts = name.rsplit("_", 3)
    if len(parts) != 4 or not all(parts):
        return name, None, None, None
    return parts[0], parts[1], parts[2], parts[3]


def read_identity(df: pd.DataFrame, path: Path) -> dict[str, str]:
    """The experiment identity columns of a predictions table: one value each (fraction as a percent label)."""
    missing = [c for c in IDENTITY if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing identity column(s) {missing}; a predictions.csv names its experiment "
                         f"({list(IDENTITY)}) — rerun its finetune job to write them")
    identity = {}
    for column in IDENTITY:
        values = df[column].dropna().unique()
        if len(values) != 1:
            raise ValueError(f"{path}: column {column!r} must hold one value (the experiment's), found "
                             f"{sorted(map(str, values))}")
        identity[column] = values[0]
    identity["fraction"] = fraction_label(float(identity["fraction"]))
    return {k: str(v) for k, v in identity.items()}


def read_experiments(path: str | os.PathLike, split: str = "test") -> list[Experiment]:
    """Read ``<experiment>/predictions.csv``: one Experiment per task in its ``task`` column.

    The experiment's name, init, mode and fraction come from the file's identity columns;
    a multi-task run (e.g. one model for every disease) becomes ``<experiment>/<task>`` per task.
    """
    path = Path(path)
    df = pd.read_csv(path, dtype={"study_id": str, "split": str, "task": str, "experiment": str, "cohort": str,
                                  "init": str, "mode": str})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(REQUIRED)} (finetune predictions)")
    identity = read_identity(df, path)
    tasks = sorted(df["task"].dropna().unique())
    if not tasks:
        raise ValueError(f"{path}: the task column is empty")
    experiment, init, mode, fraction = (identity[k] for k in ("experiment", "init", "mode", "fraction"))
    named = parse_experiment_name(path.parent.name)
    if named[1] is not None and named[1:] != (init, mode, fraction):
        log.warning("%s: the folder name says init/mode/percent %s but the file says %s/%s/%s; using the file",
                    path, "/".join(named[1:]), init, mode, fraction)
    test = df[df["split"] == split]
    if test.empty:
        raise ValueError(f"{path}: no rows with split == {split!r} (splits present: "
                         f"{sorted(df['split'].dropna().unique())}) — predict on the test split first")
    out = []
    for task in tasks:
        rows = test[test["task"] == task]
        if rows["study_id"].duplicated().any():
            dup = rows.loc[rows["study_id"].duplicated(), "study_id"].iloc[0]
            raise ValueError(f"{path}: study {dup} appears twice in the {split} split for task {task}")
        name = experiment if len(tasks) == 1 else f"{experiment}/{task}"
        keep = ["study_id", "target", "score", *attention_columns(rows)]
        val = df[(df["split"] == VALIDATION) & (df["task"] == task)] if split != VALIDATION else df.iloc[:0]
        out.append(Experiment(name=name, task=task, init=init, mode=mode, fraction=fraction,
                              rows=rows[keep].reset_index(drop=True),
                              val_rows=val[["study_id", "target", "score"]].reset_index(drop=True)
                              if not val.empty else None))
    return out


def read_experiment(path: str | os.PathLike, split: str = "test") -> Experiment:
    """Read a single-task ``predictions.csv`` (see read_experiments for multi-task runs)."""
    experiments = read_experiments(path, split)
    if len(experiments) != 1:
        raise ValueError(f"{path}: expected one task, found {[e.task for e in experiments]}; "
                         "use read_experiments")
    return experiments[0]


def binary_view(exp: Experiment, hf_lvef: float) -> tuple[str, pd.Series, pd.Series, str] | None:
    """(task, labels, scores, direction) of the experiment's classification, or None.

    LVEF experiments are read as heart-failure detection: label = reference LVEF <
    cut-off, score = predicted LVEF, lower = case (direction ``>``).
    """
    r = exp.rows
    if exp.task == REGRESSION_TASK:
        target = pd.to_numeric(r["target"], errors="coerce")
        label = (target < hf_lvef).astype(float).where(target.notna())
        return HEART_FAILURE, label, r["score"], ">"
    return exp.task, pd.to_numeric(r["target"], errors="coerce"), r["score"], "<"


def _meta(exp: Experiment) -> dict:
    return {"experiment": exp.name, "init": exp.init, "mode": exp.mode, "fraction": exp.fraction}


def auroc_row(exp: Experiment, s: StatsSettings) -> dict:
    task, y, score, direction = binary_view(exp, s.heart_failure_lvef)
    row = {**_meta(exp), "task": task, "n": int(y.notna().sum()), "level": s.ci_level, "note": ""}
    try:
        r = roc_auc_ci(y, score, level=s.ci_level, direction=direction)
    except ValueError as err:
        return {**row, "auc": np.nan, "ci_low": np.nan, "ci_high": np.nan, "variance": np.nan, "note": str(err)}
    return {**row, "n_cases": r.n_cases, "n_controls": r.n_controls, "auc": r.auc, "ci_low": r.ci_low,
            "ci_high": r.ci_high, "variance": r.variance, "direction": r.direction}


def threshold_rows(exp: Experiment, s: StatsSettings) -> list[dict]:
    """The operating points chosen on the validation split and applied to the test split (both rows).

    Without usable validation predictions (none saved, or one class only) they are chosen on the
    test split itself, and ``chosen_on`` says so.
    """
    task, y, score, direction = binary_view(exp, s.heart_failure_lvef)
    targets = dict(direction=direction, sensitivity_target=s.sensitivity_target,
                   specificity_target=s.specificity_target)
    if exp.val_rows is not None:
        _, y_val, score_val, _ = binary_view(dataclasses.replace(exp, rows=exp.val_rows), s.heart_failure_lvef)
        try:
            ops = transferred_operating_points(y_val, score_val, y, score, **targets)
            return [{"experiment": exp.name, "task": task, "chosen_on": VALIDATION, **row}
                    for row in ops.to_dict("records")]
        except ValueError as err:
            log.warning("%s: operating points cannot be chosen on the validation split (%s); choosing them on "
                        "the test split", exp.name, err)
    else:
        log.warning("%s: no validation predictions; operating points chosen on the test split", exp.name)
    try:
        ops = operating_points(y, score, **targets)
    except ValueError as err:
        log.warning("%s: no operating points: %s", exp.name, err)
        return []
    return [{"experiment": exp.name, "task": task, "chosen_on": "test", "split": "test", **row}
            for row in ops.reset_index().to_dict("records")]


def regression_rows(exp: Experiment, s: StatsSettings) -> list[dict]:
    r = exp.rows.dropna(subset=["target", "score"])
    y, p = r["target"].astype(float), r["score"].astype(float)
    meta = {"experiment": exp.name, "task": exp.task}
    try:
        m = regression_metrics(y, p, level=s.ci_level, n_bootstrap=s.bootstrap, seed=s.bootstrap_seed)
        ba = bland_altman(p, y, level=s.ci_level)
    except ValueError as err:
        log.warning("%s: no regression metrics: %s", exp.name, err)
        return []
    rows = [{**meta, **rec} for rec in m.to_dict("records")]
    for metric, value, lo, hi in (
        ("bland_altman_bias", ba.bias, ba.bias_ci_low, ba.bias_ci_high),
        ("bland_altman_sd", ba.sd, np.nan, np.nan),
        ("bland_altman_loa_low", ba.loa_low, ba.loa_low_ci_low, ba.loa_low_ci_high),
        ("bland_altman_loa_high", ba.loa_high, ba.loa_high_ci_low, ba.loa_high_ci_high),
    ):
        rows.append({**meta, "metric": metric, "value": value, "ci_low": lo, "ci_high": hi, "n": ba.n})
    return rows


def delong_pairs(experiments: list[Experiment], baseline_init: str) -> list[tuple[Experiment, Experiment]]:
    """(other init, baseline init) pairs of experiments with the same task, mode and fraction."""
    baselines = {e.group: e for e in experiments if e.init == baseline_init}
    return [(e, baselines[e.group]) for e in experiments
            if e.init is not None and e.init != baseline_init and e.group in baselines]


def delong_row(a: Experiment, b: Experiment, s: StatsSettings) -> dict:
    task, ya, sa, direction = binary_view(a, s.heart_failure_lvef)
    _, yb, sb, _ = binary_view(b, s.heart_failure_lvef)
    left = pd.DataFrame({"study_id": a.rows["study_id"], "y": ya, "score_a": sa})
    right = pd.DataFrame({"study_id": b.rows["study_id"], "y_b": yb, "score_b": sb})
    both = left.merge(right, on="study_id", how="inner")
    row = {"task": task, "mode": a.mode, "fraction": a.fraction, "experiment_a": a.name,
           "experiment_b": b.name, "n": len(both), "level": s.ci_level, "note": ""}
    disagree = both["y"].notna() & both["y_b"].notna() & (both["y"] != both["y_b"])
    if disagree.any():
        raise ValueError(f"{a.name} vs {b.name}: study {both.loc[disagree, 'study_id'].iloc[0]} has different "
                         "targets in the two predictions.csv files — both must come from the same labels")
    if len(both) < max(len(left), len(right)):
        log.warning("%s vs %s: %d common test studies (of %d and %d)", a.name, b.name, len(both),
                    len(left), len(right))
    try:
        t = delong_test(both["y"], both["score_a"], both["score_b"], paired=True, level=s.ci_level,
                        direction=direction)
    except ValueError as err:
        nan = dict.fromkeys(("auc_a", "auc_b", "difference", "ci_low", "ci_high", "statistic", "p_value"), np.nan)
        return {**row, **nan, "note": str(err)}
    return {**row, "auc_a": t.auc_a, "auc_b": t.auc_b, "difference": t.difference, "ci_low": t.ci_low,
            "ci_high": t.ci_high, "statistic": t.statistic, "p_value": t.p_value}


def roc_figures(experiments: list[Experiment], s: StatsSettings, out_dir: Path) -> list[Path]:
    """One ROC figure per (task, mode, fraction) with every init's curve and band."""

    groups: dict[tuple, list[Experiment]] = {}
    for e in experiments:
        groups.setdefault(e.group if e.init is not None else (e.name,), []).append(e)
    written = []
    for key, members in groups.items():
        panels, task = [], None
        for e in sorted(members, key=lambda e: str(e.init)):
            task, y, score, direction = binary_view(e, s.heart_failure_lvef)
            try:
                panels.append(RocPanel(
                    label=e.init or e.name,
                    curve=roc_curve(y, score, direction=direction),
                    band=roc_ci_band(y, score, n_bootstrap=s.bootstrap, seed=s.bootstrap_seed,
                                     level=s.ci_level, direction=direction),
                    auc=roc_auc_ci(y, score, level=s.ci_level, direction=direction),
                ))
            except ValueError as err:
                log.warning("%s: no ROC curve: %s", e.name, err)
        if not panels:
            continue
        name = "_".join(str(k) for k in ((task, *key[1:]) if len(key) == 3 else key))
        title = task if len(key) == 1 else f"{task} · {key[1]} · {key[2]} % of training data"
        path = out_dir / f"roc_{name}.png"
        save_figure(roc_figure(panels, title), path, dpi=110)
        written.append(path)
    return written


def write_stats(
    predictions_csvs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: dict,
    split: str = "test",
    baseline_init: str = "kinetics",
    figures_dir: str | os.PathLike | None = None,
    cohort_tables: CohortTables | None = None,
) -> list[Path]:
    """Write auroc/delong/thresholds/regression CSVs and ROC/Bland–Altman figures; return the paths.

    ``cohort_tables`` (labels, splits, training fractions) add ``lvef_subgroups.csv``.
    Figures go to ``figures_dir`` (default ``out_dir``; the Snakemake rule uses
    ``results/stats/figures``, a directory output registered for ``snakemake --report``).
    Statistics: DeLong 1988 (AUROC CIs, paired tests), Youden 1950 (operating points),
    Efron & Tibshirani 1993 (bootstrap CIs), Bland & Altman 1986/1999 (agreement).
    """
    s = StatsSettings.from_config(config)
    out = Path(out_dir)
    figs = Path(figures_dir) if figures_dir is not None else out
    figs.mkdir(parents=True, exist_ok=True)
    experiments = [e for p in predictions_csvs for e in read_experiments(p, split=split)]
    if not experiments:
        raise ValueError("predictions_csvs: no predictions.csv given — run the finetune stage first")
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        raise ValueError(f"predictions_csvs: experiment names repeat: {sorted(names)}")
    log.info("stats for %d experiments: %s", len(experiments), ", ".join(names))
    written = []
    tables = {
        "auroc.csv": pd.DataFrame([auroc_row(e, s) for e in experiments]),
        "delong.csv": pd.DataFrame([delong_row(a, b, s) for a, b in delong_pairs(experiments, baseline_init)]),
        "thresholds.csv": pd.DataFrame([r for e in experiments for r in threshold_rows(e, s)]),
        "regression.csv": pd.DataFrame([r for e in experiments if e.task == REGRESSION_TASK
                                        for r in regression_rows(e, s)]),
    }
    tables["view_attention.csv"] = view_attention_table([(e.model, e.name, e.task, e.rows)
                                                         for e in experiments])
    if cohort_tables is not None:
        tables["lvef_subgroups.csv"] = cohort_tables.lvef_subgroups(
            [e for e in experiments if e.task == REGRESSION_TASK], config["labels"]["diseases"])
    for fname, df in tables.items():
        df = df.reindex(columns=TABLE_COLUMNS[fname])
        write_csv(df, out / fname)
        written.append(out / fname)
    written += roc_figures(experiments, s, figs)
    subgroups = tables.get("lvef_subgroups.csv")
    if subgroups is not None and (subgroups["n_test"] >= 2).any():
        save_figure(subgroup_plot(subgroups), figs / SUBGROUP_FIGURE, dpi=110)
        written.append(figs / SUBGROUP_FIGURE)
    attention = tables["view_attention.csv"]
    if not attention.empty:
        save_figure(view_attention_plot(attention), figs / ATTENTION_FIGURE, dpi=110)
        written.append(figs / ATTENTION_FIGURE)
    for e in experiments:
        if e.task != REGRESSION_TASK:
            continue
        r = e.rows.dropna(subset=["target", "score"])
        if len(r) < 2:
            continue
        fig = bland_altman_plot(r["score"].astype(float), r["target"].astype(float), unit="%",
                                level=s.ci_level, title=f"{e.name}: predicted − reference LVEF")
        path = figs / f"bland_altman_{e.name.replace('/', '_')}.png"
        save_figure(fig, path, dpi=110)
        written.append(path)
    ours = {*figs.glob("roc_*.png"), *figs.glob("bland_altman_*.png"), *figs.glob(SUBGROUP_FIGURE), *figs.glob(ATTENTION_FIGURE)}
    for stale in sorted(ours - set(written)):
        log.info("removing %s: no experiment of this run produces it any more", stale)
        stale.unlink()
    log.info("wrote %d files to %s", len(written), out)
    return written
