"""Exclusion flow: how many files, series, studies and patients survive ingestion, and why not.

``flow.csv`` columns: ``level`` (files | series | studies | patients), ``stage``
(``input``, ``excluded``, ``kept``, and ``view`` for studies: how many have each view),
``status``, ``reason`` (the stable code before the colon of a reason), ``count``.

- files: every input file; excluded by status and reason code; ok files that are
  not used (a repeat series) are excluded with status ``ok`` and reason ``superseded``.
- series: series with a readable SeriesInstanceUID; a series is kept when extract
  uses any of its files, else excluded with its files' most common status/reason.
- studies: studies with a readable patient and study id; kept when their HDF5 exists (manifest status
  ``written`` or ``unchanged``), else ``no_cine_view`` or the extract failure.
- patients: kept when at least one of their studies is kept.

``flow.png`` draws the same numbers as a CONSORT-style diagram.
"""

from __future__ import annotations

import logging
import os

import pandas as pd

from cinefm.atomic import save_figure, write_csv
from cinefm.dicom.views import VIEWS

log = logging.getLogger(__name__)

FLOW_COLUMNS = ["level", "stage", "status", "reason", "count"]


def reason_code(reason: object) -> str:
    """The stable code of a reason: the text before the first colon (``''`` when empty)."""
    text = "" if reason is None or (isinstance(reason, float) and pd.isna(reason)) else str(reason)
    return text.split(":", 1)[0].strip()


def _excluded(level: str, frame: pd.DataFrame) -> list[tuple]:
    counts = frame.groupby(["status", "code"]).size().sort_values(ascending=False)
    return [(level, "excluded", s, c, int(n)) for (s, c), n in counts.items()]


def flow_table(files: pd.DataFrame, studies: pd.DataFrame) -> pd.DataFrame:
    """Counts at every step (see module docstring); ``studies`` is the concatenated manifests."""
    f = files.assign(code=files["reason"].map(reason_code), selected=files["selected"].fillna(False).astype(bool))
    kept_files = f["selected"]
    not_used = f[~kept_files].copy()
    not_used.loc[not_used["status"].eq("ok"), "code"] = not_used.loc[not_used["status"].eq("ok"), "code"].replace("", "unused")
    rows = [("files", "input", "", "", len(f))] + _excluded("files", not_used)
    rows.append(("files", "kept", "ok", "", int(kept_files.sum())))

    s = f[f["series_id"].notna()]
    used = s.groupby("series_id")["selected"].any()
    worst = s[~s["selected"]].groupby("series_id")[["status", "code"]].agg(lambda x: x.value_counts().index[0])
    worst = worst.loc[used.index[~used]]
    rows.append(("series", "input", "", "", int(len(used))))
    rows += _excluded("series", worst)
    rows.append(("series", "kept", "ok", "", int(used.sum())))

    # a file cut inside its header can carry an AccessionNumber but no PatientID: not a study
    st = f[f["study_id"].notna() & f["patient_id"].notna()].groupby("study_id").agg(patient_id=("patient_id", "first"), any_sel=("selected", "any"))
    man = studies.set_index("study_id") if len(studies) else pd.DataFrame(columns=["status", "reason", "views"])
    ok_status = man["status"].isin(["written", "unchanged"]) if len(man) else pd.Series(dtype=bool)
    st["kept"] = st.index.isin(man.index[ok_status])
    st["status"] = "excluded"
    st["code"] = "no_cine_view"
    failed = st.index.isin(man.index[~ok_status]) if len(man) else []
    st.loc[failed, "status"] = "failed"
    st.loc[failed, "code"] = [reason_code(r) or "failed" for r in man.loc[st.index[failed], "reason"]] if len(man) else []
    rows.append(("studies", "input", "", "", int(len(st))))
    rows += _excluded("studies", st[~st["kept"]])
    rows.append(("studies", "kept", "ok", "", int(st["kept"].sum())))
    if len(man):
        kept_views = man.loc[ok_status, "views"].fillna("").str.split(";")
        for v in VIEWS:
            rows.append(("studies", "view", v, "", int(kept_views.map(lambda vs, v=v: v in vs).sum())))

    pt = st.groupby("patient_id")["kept"].any()
    rows.append(("patients", "input", "", "", int(len(pt))))
    if (~pt).any():
        rows.append(("patients", "excluded", "excluded", "no_study_extracted", int((~pt).sum())))
    rows.append(("patients", "kept", "ok", "", int(pt.sum())))
    return pd.DataFrame(rows, columns=FLOW_COLUMNS)


def flow_figure(flow: pd.DataFrame):
    """CONSORT-style diagram of ``flow`` (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = ["files", "series", "studies", "patients"]
    fig, ax = plt.subplots(figsize=(10, 2.6 * len(levels)))
    ax.set_axis_off()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 3 * len(levels))
    box = dict(boxstyle="round,pad=0.4", facecolor="#eef3fb", edgecolor="#3b5b92")
    side = dict(boxstyle="round,pad=0.4", facecolor="#fbefef", edgecolor="#a04040")
    for i, level in enumerate(levels):
        y = 3 * (len(levels) - i) - 1.5
        part = flow[flow["level"].eq(level)]
        n_in = int(part.loc[part["stage"].eq("input"), "count"].sum())
        n_kept = int(part.loc[part["stage"].eq("kept"), "count"].sum())
        ax.text(2.4, y, f"{level}\n{n_in:,} in  ->  {n_kept:,} kept", ha="center", va="center", fontsize=11, bbox=box)
        exc = part[part["stage"].eq("excluded")]
        lines = [f"{r.status}/{r.reason or '-'}: {r.count:,}" for r in exc.itertuples()][:8] or ["none"]
        if len(exc) > 8:
            lines.append(f"... {len(exc) - 8} more (see flow.csv)")
        views = part[part["stage"].eq("view")]
        if len(views):
            lines.append("kept, with view: " + ", ".join(f"{r.status} {r.count:,}" for r in views.itertuples()))
        ax.text(5.2, y, "excluded\n" + "\n".join(lines), ha="left", va="center",
                fontsize=8.5, bbox=side, family="monospace")
        ax.annotate("", xy=(5.1, y), xytext=(3.9, y), arrowprops=dict(arrowstyle="->", color="#a04040"))
        if i < len(levels) - 1:
            ax.annotate("", xy=(2.4, y - 2.2), xytext=(2.4, y - 0.8), arrowprops=dict(arrowstyle="->"))
    ax.set_title("cinefm ingestion: exclusion flow", fontsize=13)
    return fig


def write_flow(
    files: str | os.PathLike | pd.DataFrame,
    manifests: list[str | os.PathLike],
    flow_csv: str | os.PathLike,
    flow_png: str | os.PathLike,
    studies_csv: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Read files.parquet and the extract manifests; write flow.csv, flow.png (and studies.csv)."""
    import matplotlib.pyplot as plt

    df = files if isinstance(files, pd.DataFrame) else pd.read_parquet(files)
    parts = [pd.read_csv(p, dtype={"reason": str}, keep_default_na=False) for p in manifests]
    studies = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(studies):
        studies = studies.sort_values(["patient_id", "study_id"], ignore_index=True)
    flow = flow_table(df, studies)
    write_csv(flow, flow_csv)
    fig = flow_figure(flow)
    save_figure(fig, flow_png, dpi=120)
    plt.close(fig)
    if studies_csv is not None:
        write_csv(studies, studies_csv)
    kept = flow[flow["stage"].eq("kept")].set_index("level")["count"].to_dict()
    log.info("flow: kept %s", kept)
    return flow
