"""The data behind ``cinefm leaderboard``: every statistics table of a run, ready to sort and filter.

A run's statistics are the CSVs that :func:`cinefm.stats.write_stats` writes to
``results/stats/`` (internal test split: auroc, delong, thresholds, regression,
lvef_subgroups, view_attention) and that the external cohorts' statistics write to
``results/stats/<cohort>/`` (e.g. ``echonet/``: regression, auroc, comparison). Each table is
read as is and given:

- ``cohort``: ``internal``, or the external cohort's folder name;
- ``task``/``init``/``mode``/``fraction`` where the table lacks them, parsed from its
  ``experiment`` (or ``experiment_a``) column (``<task>_<init>_<mode>_<fraction>``,
  :func:`cinefm.stats.experiments.parse_experiment_name`);
- a ``CI`` text column (``low–high`` at the table's ``level``) beside each ``ci_low``/``ci_high``
  pair, whose numeric columns stay for sorting.

Figures: ``results/stats/figures/roc_<task>_<mode>_<fraction>.png`` and
``bland_altman_<experiment>.png`` (and the external cohorts' PNGs); heat-map videos:
``results/attention/<experiment>/videos.csv`` (:mod:`cinefm.viz.videos`). Nothing here writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cinefm.report.tables import fmt

INTERNAL = "internal"
ALL = "(all)"
FILTERS = ("cohort", "task", "init", "mode", "fraction")
TITLES = {
    "auroc": "AUROC (DeLong CI)", "delong": "DeLong tests: pre-trained vs baseline",
    "thresholds": "Operating points", "regression": "LVEF regression", "lvef_subgroups": "LVEF error by subgroup",
    "view_attention": "Multi-view attention per view", "comparison": "Paired comparison of absolute errors",
}
# columns shown first (then the table's others; bookkeeping columns last)
FIRST = ("experiment", "experiment_a", "experiment_b", "task", "init", "mode", "fraction", "metric", "point",
         "auc", "value", "difference", "mae_a", "mae_b", "CI", "p_value", "n")
LAST = ("variance", "direction", "level", "cohort", "note")
# a leaderboard ranks: best first where the table has one obvious score
DEFAULT_SORT = {"auroc": ("auc", False), "delong": ("p_value", True)}


class NoStatistics(FileNotFoundError):
    """The results folder holds no statistics table (the message says what to run)."""


@dataclass(frozen=True)
class StatsTable:
    """One statistics CSV of the run, as read and annotated for the leaderboard."""

    key: str  # "<cohort>/<stem>", e.g. "internal/auroc", "echonet/regression"
    cohort: str
    name: str  # file stem
    path: Path
    frame: pd.DataFrame = field(repr=False)

    @property
    def title(self) -> str:
        label = TITLES.get(self.name, self.name.replace("_", " "))
        return label if self.cohort == INTERNAL else f"{label} — external: {self.cohort}"


def _experiment_column(df: pd.DataFrame) -> str | None:
    return next((c for c in ("experiment", "experiment_a") if c in df.columns), None)


def annotate(df: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """Add cohort, the experiment-name fields the table lacks, and ``CI`` text columns."""
    # imported here (it pulls in scipy): a refusal without statistics stays quick
    from cinefm.stats.experiments import parse_experiment_name

    out = df.copy()
    out.insert(0, "cohort", cohort)
    col = _experiment_column(out)
    if col is not None:
        parsed = [parse_experiment_name(str(x).split("/", 1)[0]) for x in out[col]]
        for i, key in enumerate(("task", "init", "mode", "fraction")):
            if key not in out.columns:
                out[key] = [p[i] if p[i] is not None else "" for p in parsed]
    for key in ("fraction",):
        if key in out.columns:
            out[key] = out[key].map(lambda v: "" if pd.isna(v) else str(int(v)) if isinstance(v, float)
                                    and float(v).is_integer() else str(v))
    if {"ci_low", "ci_high"} <= set(out.columns):
        level = out["level"].iloc[0] if "level" in out.columns and len(out) else None
        name = f"{fmt(100 * level, 0)} % CI" if level is not None and not pd.isna(level) else "CI"
        text = [f"{fmt(lo)}–{fmt(hi)}" if not (pd.isna(lo) or pd.isna(hi)) else ""
                for lo, hi in zip(out["ci_low"], out["ci_high"], strict=True)]
        out.insert(list(out.columns).index("ci_low"), name, text)
    num = out.select_dtypes("number").columns
    out[num] = out[num].round(4)
    ci = [c for c in out.columns if c.endswith("CI")]
    first = [c for name in FIRST for c in ([name] if name != "CI" else ci) if c in out.columns]
    last = [c for c in LAST if c in out.columns and c not in first]
    return out[first + [c for c in out.columns if c not in first and c not in last] + last]


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"fraction": str})
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: not a readable CSV ({err}) — rerun the stats rule") from err


def load_tables(results: str | os.PathLike) -> list[StatsTable]:
    """Every ``stats/*.csv`` (internal) and ``stats/<cohort>/*.csv`` (external) of ``results``.

    Raises :class:`NoStatistics` when there is none, naming the folder and the stage to run.
    """
    root = Path(results)
    stats = root / "stats"
    if not root.is_dir():
        raise NoStatistics(f"{root}: results folder not found — give the folder a run wrote (config.results)")
    found = [(INTERNAL, p) for p in sorted(stats.glob("*.csv"))]
    found += [(p.parent.name, p) for p in sorted(stats.glob("*/*.csv")) if p.parent.name != "figures"]
    if not found:
        raise NoStatistics(f"{root}: no statistics tables (stats/*.csv) — run the stats stage first "
                           "(`snakemake all_stats`, or `cinefm stats --predictions ... --out "
                           f"{stats}`); the leaderboard only shows a finished run")
    tables = []
    for cohort, path in found:
        df = _read(path)
        tables.append(StatsTable(key=f"{cohort}/{path.stem}", cohort=cohort, name=path.stem, path=path,
                                 frame=annotate(df, cohort) if not df.empty else df))
    return tables


def filter_rows(df: pd.DataFrame, selected: dict[str, str]) -> pd.DataFrame:
    """Rows matching every selected value (``ALL`` or a column the table lacks: no filter)."""
    keep = pd.Series(True, index=df.index)
    for key, value in selected.items():
        if value and value != ALL and key in df.columns:
            keep &= df[key].astype(str) == value
    return df[keep]


def sort_default(table: StatsTable, df: pd.DataFrame) -> pd.DataFrame:
    """Best first for tables with one score (AUROC descending, DeLong p ascending)."""
    column, ascending = DEFAULT_SORT.get(table.name, (None, True))
    return df.sort_values(column, ascending=ascending, na_position="last") if column in df.columns else df


def choices(tables: list[StatsTable], key: str) -> list[str]:
    """``ALL`` then every value of column ``key`` across the tables, sorted."""
    values = {str(v) for t in tables if key in t.frame.columns for v in t.frame[key].dropna() if str(v)}
    return [ALL, *sorted(values)]


def experiments_of(df: pd.DataFrame) -> list[str]:
    """Run folder names (``<folder>/<task>`` → ``<folder>``) of a table's rows."""
    col = _experiment_column(df)
    names = [] if col is None else [str(x).split("/", 1)[0] for x in df[col].dropna()]
    if "experiment_b" in df.columns:
        names += [str(x).split("/", 1)[0] for x in df["experiment_b"].dropna()]
    return sorted(set(names))


def figures_for(results: str | os.PathLike, table: StatsTable, df: pd.DataFrame) -> list[Path]:
    """ROC and Bland–Altman figures of the rows shown (by their task/mode/fraction and experiments)."""
    stats = Path(results) / "stats"
    if table.cohort != INTERNAL:
        return sorted((stats / table.cohort).glob("*.png"))
    folder = stats / "figures" if (stats / "figures").is_dir() else stats
    wanted = {f"bland_altman_{e.replace('/', '_')}.png" for e in experiments_of(df)}
    if {"task", "mode", "fraction"} <= set(df.columns):
        wanted |= {f"roc_{t}_{m}_{f}.png" for t, m, f in df[["task", "mode", "fraction"]].astype(str).itertuples(
            index=False)}
    if "task" in df.columns:  # ROC figures of experiments whose names are not <task>_<init>_<mode>_<fraction>
        wanted |= {f"roc_{t}.png" for t in df["task"].astype(str)}
    return sorted(p for p in folder.glob("*.png") if p.name in wanted)


def videos_for(results: str | os.PathLike, experiments: list[str]) -> pd.DataFrame:
    """Heat-map videos (``ok`` rows of ``attention/<experiment>/videos.csv``) of ``experiments``,
    with ``url_mp4``/``url_poster`` relative to the app (``attention/<experiment>/...``)."""
    frames = []
    for name in experiments:
        path = Path(results) / "attention" / name / "videos.csv"
        if path.is_file():
            df = pd.read_csv(path, dtype={"study_id": str}, keep_default_na=False)
            df = df[df["status"] == "ok"].assign(experiment=name)
            frames.append(df.assign(url_mp4=[f"attention/{name}/{m}" for m in df["mp4"]],
                                    url_poster=[f"attention/{name}/{p}" for p in df["poster"]]))
    cols = ["experiment", "study_id", "view", "url_mp4", "url_poster"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
