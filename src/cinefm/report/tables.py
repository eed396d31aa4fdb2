"""Reader-friendly tables of the report: AUROC, DeLong comparisons, operating points, regression.

Pure functions from the ``results/stats`` frames (columns documented in
:mod:`cinefm.stats.experiments`) to display frames, and one HTML renderer that
escapes every cell.
"""

from __future__ import annotations

import math

import pandas as pd
import yaml

from cinefm.config import ABSENT

TASK_NAMES = {
    "hcm": "Hypertrophic cardiomyopathy",
    "dcm": "Dilated cardiomyopathy",
    "prior_mi": "Prior myocardial infarction",
    "rv_dilation": "RV dilation",
    "pericardial_effusion": "Pericardial effusion",
    "amyloidosis": "Cardiac amyloidosis",
    "heart_failure": "Heart failure (LVEF < cut-off)",
    "lvef": "LVEF",
}
POINT_NAMES = {"youden": "Youden-optimal"}
METRIC_NAMES = {
    "mae": "MAE (%)",
    "mse": "MSE (%²)",
    "rmse": "RMSE (%)",
    "r2": "R²",
    "pearson_r": "Pearson r",
    "bland_altman_bias": "Bland–Altman bias (%)",
    "bland_altman_sd": "SD of differences (%)",
    "bland_altman_loa_low": "Lower limit of agreement (%)",
    "bland_altman_loa_high": "Upper limit of agreement (%)",
    "mae_mean_predictor": "MAE of the training mean (%)",
}


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt(x, digits: int = 3) -> str:
    """Number with ``digits`` decimals; empty for missing values."""
    return "" if _isnan(x) else f"{float(x):.{digits}f}"


def fmt_ci(value, low, high, digits: int = 3) -> str:
    """``0.731 (0.630–0.833)``; without CI when the bounds are missing."""
    if _isnan(value):
        return "—"
    if _isnan(low) or _isnan(high):
        return fmt(value, digits)
    return f"{fmt(value, digits)} ({fmt(low, digits)}–{fmt(high, digits)})"


def fmt_p(p) -> str:
    """p value as in clinical journals: ``<0.001`` or three decimals."""
    if _isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _text(s: pd.Series) -> pd.Series:
    """Strings with missing values as empty text (columns read back as all-NaN floats included)."""
    return s.astype(object).where(s.notna(), "")


def task_name(task: str) -> str:
    return TASK_NAMES.get(task, str(task))


def _fraction(f) -> str:
    return "" if _isnan(f) else f"{f} %"


def auroc_display(df: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment: task, experiment, n (cases/controls), AUROC (CI), note."""
    level = df["level"].iloc[0] if len(df) else 0.95
    return pd.DataFrame({
        "Task": df["task"].map(task_name),
        "Experiment": df["experiment"],
        "Initialisation": _text(df["init"]),
        "Mode": _text(df["mode"]),
        "Training data": df["fraction"].map(_fraction),
        "n (cases / controls)": [f"{int(n)} ({'' if _isnan(c) else int(c)} / {'' if _isnan(k) else int(k)})"
                                 for n, c, k in zip(df["n"], df["n_cases"], df["n_controls"], strict=True)],
        f"AUROC ({level:.0%} CI, DeLong)": [fmt_ci(a, lo, hi) for a, lo, hi in
                                            zip(df["auc"], df["ci_low"], df["ci_high"], strict=True)],
        "Note": _text(df["note"]),
    })


def delong_display(df: pd.DataFrame) -> pd.DataFrame:
    """One row per pre-trained vs baseline pair: AUROCs, difference (CI), Z, p."""
    level = df["level"].iloc[0] if len(df) else 0.95
    return pd.DataFrame({
        "Task": df["task"].map(task_name),
        "Mode": _text(df["mode"]),
        "Training data": df["fraction"].map(_fraction),
        "Pre-trained (A)": df["experiment_a"],
        "Baseline (B)": df["experiment_b"],
        "n": df["n"].astype(int),
        "AUROC A": df["auc_a"].map(fmt),
        "AUROC B": df["auc_b"].map(fmt),
        f"A − B ({level:.0%} CI)": [fmt_ci(d, lo, hi) for d, lo, hi in
                                    zip(df["difference"], df["ci_low"], df["ci_high"], strict=True)],
        "Z": df["statistic"].map(lambda z: fmt(z, 2)),
        "p (DeLong)": df["p_value"].map(fmt_p),
        "Note": _text(df["note"]),
    })


def external_display(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cohort, experiment, task and metric of ``stats/external.csv``: value with its CI."""
    return pd.DataFrame({
        "Cohort": df["cohort"],
        "Experiment": df["experiment"],
        "Task": df["task"].map(task_name),
        "Metric": df["metric"].map(lambda m: "AUROC" if m == "auroc" else METRIC_NAMES.get(m, m)),
        "Value (CI)": [fmt_ci(v, lo, hi, 3 if m == "auroc" else 2) for v, lo, hi, m in
                       zip(df["value"], df["ci_low"], df["ci_high"], df["metric"], strict=True)],
        "n": df["n"].map(lambda n: "" if _isnan(n) else str(int(n))),
    })


def external_delong_display(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`delong_display` with the cohort the pair was tested on."""
    shown = delong_display(df)
    shown.insert(0, "Cohort", df["cohort"].to_numpy())
    return shown


def thresholds_display(df: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment and operating point."""
    def point(p: str) -> str:
        if p in POINT_NAMES:
            return POINT_NAMES[p]
        metric, _, target = p.partition("_")
        return f"{metric.capitalize()} ≥ {float(target):.0%}" if target else p

    return pd.DataFrame({
        "Experiment": df["experiment"],
        "Task": df["task"].map(task_name),
        "Operating point": df["point"].map(point),
        **({"Chosen on": df["chosen_on"], "Split": df["split"]} if "split" in df else {}),
        "Threshold": df["threshold"].map(lambda t: fmt(t, 4)),
        "Sensitivity": df["sensitivity"].map(fmt),
        "Specificity": df["specificity"].map(fmt),
        "Accuracy": df["accuracy"].map(fmt),
        "TP / FP / TN / FN": [f"{int(a)} / {int(b)} / {int(c)} / {int(d)}"
                              for a, b, c, d in zip(df["tp"], df["fp"], df["tn"], df["fn"], strict=True)],
    })


def regression_display(df: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment and metric, value with its CI."""
    return pd.DataFrame({
        "Experiment": df["experiment"],
        "Metric": df["metric"].map(lambda m: METRIC_NAMES.get(m, m)),
        "Value (CI)": [fmt_ci(v, lo, hi, 2) for v, lo, hi in zip(df["value"], df["ci_low"], df["ci_high"],
                                                                strict=True)],
        "n": df["n"].astype(int),
    })


def subgroup_name(key: str) -> str:
    """``hcm+prior_mi`` -> ``Hypertrophic cardiomyopathy + Prior myocardial infarction``; ``none``."""
    if key == "none":
        return "None of the diseases"
    return " + ".join(task_name(k) for k in key.split("+"))


def subgroups_display(df: pd.DataFrame) -> pd.DataFrame:
    """LVEF error per experiment and disease subgroup (``lvef_subgroups.csv``), unseen subgroups marked."""
    return pd.DataFrame({
        "Experiment": df["experiment"],
        "Subgroup": df["subgroup"].map(subgroup_name),
        "Training studies": df["n_train"].astype(int),
        "Test studies": df["n_test"].astype(int),
        "MAE (%)": df["mae"].map(lambda v: fmt(v, 1)),
        "Bias ± SD (%)": [f"{b:+.1f} ± {fmt(sd, 1)}" if not _isnan(sd) else f"{b:+.1f}"
                          for b, sd in zip(df["bias"], df["error_sd"], strict=True)],
        "Note": df["n_train"].map(lambda n: "no training study" if n == 0 else ""),
    })


def view_attention_display(df: pd.DataFrame) -> pd.DataFrame:
    """Mean attention share per experiment/task (rows) and view plane (columns), from ``view_attention.csv``.

    A cell reads ``share (±relative)``: the relative part (the share minus the mean over the
    model's tasks) only for models with several tasks, where it shows which task leans on the view.
    """
    if df.empty:
        return pd.DataFrame()
    several = df.groupby("model")["task"].transform("nunique") > 1
    cell = [f"{s:.2f} ({r:+.2f})" if multi else f"{s:.2f}"
            for s, r, multi in zip(df["share"], df["relative"], several, strict=True)]
    wide = df.assign(cell=cell).pivot_table(index="experiment", columns="view", values="cell", aggfunc="first")
    wide = wide.reindex(index=list(dict.fromkeys(df["experiment"])), columns=list(dict.fromkeys(df["view"])))
    return wide.fillna("").rename_axis(columns=None).reset_index().rename(columns={"experiment": "Experiment"})


def mean_predictor_display(metrics: pd.DataFrame) -> pd.DataFrame:
    """Test MAE of each LVEF experiment next to the MAE of predicting the training mean.

    ``metrics``: the rows of ``finetune/*/metrics.csv`` (:mod:`cinefm.train.finetune`) with
    stage ``best``, split ``test`` and metric ``mae`` or ``mae_train_mean``; the ratio is
    the model's MAE over the mean predictor's (below 1: better than no model).
    """
    rows = metrics[(metrics["stage"] == "best") & (metrics["split"] == "test")
                   & metrics["metric"].isin(["mae", "mae_train_mean"])]
    wide = rows.pivot_table(index="experiment", columns="metric", values="value", aggfunc="first")
    if wide.empty or not {"mae", "mae_train_mean"} <= set(wide.columns):
        return pd.DataFrame()
    return pd.DataFrame({
        "Experiment": wide.index,
        "Test MAE (%)": wide["mae"].map(lambda v: fmt(v, 2)).to_numpy(),
        "MAE of the training mean (%)": wide["mae_train_mean"].map(lambda v: fmt(v, 2)).to_numpy(),
        "Ratio": (wide["mae"] / wide["mae_train_mean"]).map(lambda v: fmt(v, 2)).to_numpy(),
    })


def echo_comparison_display(df: pd.DataFrame) -> pd.DataFrame:
    """One row per pair of echo experiments: MAEs, MAE difference (CI), Wilcoxon W and p."""
    level = df["level"].iloc[0] if len(df) else 0.95
    return pd.DataFrame({
        "A": df["experiment_a"],
        "B": df["experiment_b"],
        "n": df["n"].astype(int),
        "MAE A (%)": df["mae_a"].map(lambda x: fmt(x, 2)),
        "MAE B (%)": df["mae_b"].map(lambda x: fmt(x, 2)),
        f"MAE A − B ({level:.0%} CI)": [fmt_ci(d, lo, hi, 2) for d, lo, hi in
                                        zip(df["difference"], df["ci_low"], df["ci_high"], strict=True)],
        "A closer (videos)": df["n_a_better"].map(lambda x: "" if _isnan(x) else str(int(x))),
        "W": df["statistic"].map(lambda x: fmt(x, 1)),
        "p (Wilcoxon)": df["p_value"].map(fmt_p),
        "Note": _text(df["note"]),
    })


def setting_value(value) -> str:
    """A config value as the YAML file would spell it (``null``, ``true``, ``[8, 10]``), or "not set"."""
    if value is ABSENT:
        return "(not set)"
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def settings_display(rows: list[tuple[str, object, object]]) -> pd.DataFrame:
    """One row per setting that differs from the method (:func:`cinefm.config.differences`)."""
    return pd.DataFrame({"Setting": [k for k, _, _ in rows],
                         "This run": [setting_value(v) for _, v, _ in rows],
                         "The method (config/paper.yaml)": [setting_value(v) for _, _, v in rows]})


def table_html(df: pd.DataFrame, float_digits: int = 3) -> str:
    """HTML table with every cell escaped; floats with ``float_digits`` decimals; a note when empty."""
    if df.empty:
        return '<p class="lead">This run produced no rows for this table.</p>'
    return df.to_html(index=False, escape=True, border=0, classes="data", na_rep="",
                      float_format=lambda x: f"{x:.{float_digits}f}")
