"""Archive-wide rules on the merged scan table: duplicates, series checks, views, selection.

Input: the shard tables of :mod:`cinefm.dicom.scan` (file-level statuses). Output:
``files.parquet``, one row per input file, with these columns added or updated:

``status``/``reason``
    ``duplicate``: same bytes (SHA-256) or same SOPInstanceUID as a kept file. The kept
    copy is the one whose folder holds most files of its series (a stray copy lives
    elsewhere), then the shortest, then the first relpath.
    ``not_cine``: description matches an ``exclude`` pattern of views.yaml, or fewer
    than ``ingest.min_frames`` frames at every slice position.
    ``inconsistent``: the whole series, when its matrix sizes differ, a frame is
    missing (gap in trigger times, frames per slice differ, fewer frames than
    CardiacNumberOfImages, gap in instance numbers) or a frame is doubled.
    ``unsupported``: a cine series that no pattern and no geometry assigns to a view.
``view``, ``view_rule``
    4CH / 3CH / 2CH / SAX and the rule that decided (see :mod:`cinefm.dicom.views`).
``selected``
    True for the files extract uses. Per study and LAX view, the repeat with the
    highest SeriesNumber is used; in the SAX stack, each slice position comes from the
    highest SeriesNumber that has it. Unused ok files keep ``status == "ok"`` with a
    ``superseded:`` reason.

Reasons begin with a stable code and a colon (``missing_frame: ...``); flow.csv
counts by that code.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa

from cinefm.dicom.header import slice_normal
from cinefm.dicom.scan import RECORD_SCHEMA, fork_pool, write_table
from cinefm.dicom.views import VIEWS, ViewRules, is_oblique, load_view_rules, sax_clusters

log = logging.getLogger(__name__)

FILES_SCHEMA = pa.schema(
    [*RECORD_SCHEMA, ("view", pa.string()), ("view_rule", pa.string()), ("selected", pa.bool_())]
)
_READABLE = ("ok",)  # only usable files become duplicates; others keep their own status


@dataclass(frozen=True)
class SeriesSummary:
    """What the series rules need to know about one series (its ok files only)."""

    series_id: str
    study_id: str
    vendor: str
    description: str
    series_number: int
    normal: np.ndarray | None
    positions: tuple[float, ...]  # slice positions (mm) along ``normal``, ascending
    frames_per_slice: tuple[int, ...]
    problem: tuple[str, str] | None  # (status, reason) when the series is quarantined
    view: str | None
    view_rule: str | None


def cluster_positions(values: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Group 1-D positions that lie within ``tol`` of their neighbour: (labels, centres ascending).

    Unknown positions (NaN) form one group of their own at +inf.
    """
    v = np.where(np.isfinite(values), values, np.inf)
    order = np.argsort(v, kind="stable")
    sv = v[order]
    steps = np.diff(sv)
    new = np.concatenate([[True], ~(steps <= tol)])  # inf - inf = nan -> same group
    ids_sorted = np.cumsum(new) - 1
    labels = np.empty_like(ids_sorted)
    labels[order] = ids_sorted
    centres = np.array([np.mean(sv[ids_sorted == k]) for k in range(ids_sorted[-1] + 1)]) if len(v) else np.array([])
    return labels, centres


def _frames_table(g: pd.DataFrame) -> pd.DataFrame:
    """One row per frame of a series' files: position, time, instance (single-frame only), file."""
    parts = []
    for relpath, loc, t, inst, fpos, ftimes in zip(
        g["relpath"], g["slice_location"], g["trigger_time"], g["instance_number"],
        g["frame_positions"], g["frame_times"], strict=True,
    ):
        if fpos is not None and len(fpos) > 0:
            n = len(fpos)
            parts.append((np.asarray(fpos, float), np.asarray(ftimes, float), np.full(n, np.nan), [relpath] * n))
        else:
            parts.append((np.array([_nan(loc)]), np.array([_nan(t)]), np.array([_nan(inst)]), [relpath]))
    return pd.DataFrame(
        {
            "pos": np.concatenate([p[0] for p in parts]),
            "time": np.concatenate([p[1] for p in parts]),
            "inst": np.concatenate([p[2] for p in parts]),
            "relpath": [r for p in parts for r in p[3]],
        }
    )


def _nan(v) -> float:
    return float(v) if v is not None and pd.notna(v) else np.nan


def _mode(values) -> object:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    return Counter(vals).most_common(1)[0][0] if vals else None


def consistency_problem(frames: pd.DataFrame, g: pd.DataFrame, tol: float) -> str | None:
    """Reason text when a series misses or doubles a frame or mixes matrix sizes, else None."""
    sizes = Counter(zip(g["rows"], g["cols"], strict=True))
    if len(sizes) > 1:
        listed = ", ".join(f"{int(r)}x{int(c)} ({n} files)" for (r, c), n in sizes.most_common())
        return f"matrix: mixed matrix sizes {listed}"
    labels, centres = cluster_positions(frames["pos"].to_numpy(), tol)
    counts = np.bincount(labels)
    if len(set(counts)) > 1:
        return "missing_frame: frames per slice differ (" + ", ".join(
            f"{c:.1f} mm: {n}" for c, n in zip(centres, counts, strict=True)) + ")"
    expected = _mode(g["cardiac_images"])
    if expected and counts.max() < expected and counts.max() > 1:
        return f"missing_frame: {counts.max()} frames per slice but CardiacNumberOfImages is {int(expected)}"
    for k, centre in enumerate(centres):
        t = np.sort(frames["time"].to_numpy()[labels == k])
        if len(t) < 3 or not np.all(np.isfinite(t)):
            continue
        steps = np.diff(t)
        med = float(np.median(steps))
        if np.any(steps <= 1e-3):
            return f"duplicate_frame: two images at trigger time {t[1:][steps <= 1e-3][0]:g} ms (slice at {centre:.1f} mm)"
        if med > 0 and steps.max() > 1.5 * med:
            i = int(np.argmax(steps))
            return (f"missing_frame: trigger times jump from {t[i]:g} to {t[i + 1]:g} ms "
                    f"(median step {med:g} ms) at slice {centre:.1f} mm")
    inst = frames["inst"].to_numpy()
    inst = inst[np.isfinite(inst)]
    if len(inst) > 1:
        uniq = np.unique(inst)
        if len(uniq) < len(inst):
            return "duplicate_frame: repeated InstanceNumber within the series"
        span = int(uniq[-1] - uniq[0] + 1)
        if span > len(uniq):
            return f"missing_frame: InstanceNumber {int(uniq[0])}..{int(uniq[-1])} but {len(uniq)} images"
    return None


def summarize_series(g: pd.DataFrame, rules: ViewRules, min_frames: int) -> SeriesSummary:
    """Series-level decision for the ok files ``g`` of one series (pure)."""
    vendor = _mode(g["vendor"]) or "unknown"
    description = _mode(g["description"]) or ""
    orient = _mode(tuple(o) for o in g["orientation"] if o is not None)
    normal = slice_normal(orient) if orient is not None else None
    frames = _frames_table(g)
    tol = rules.geometry.slice_tolerance_mm
    labels, centres = cluster_positions(frames["pos"].to_numpy(), tol)
    counts = tuple(int(c) for c in np.bincount(labels))
    base = dict(
        series_id=g["series_id"].iloc[0], study_id=g["study_id"].iloc[0], vendor=vendor,
        description=description, series_number=int(_mode(g["series_number"]) or 0), normal=normal,
        positions=tuple(float(c) for c in centres), frames_per_slice=counts,
    )
    kind, view, rule = rules.match(description, vendor, _mode(g["image_type"]))
    if kind == "exclude":
        where, pattern = rule.split(":", 2)[1:]
        what = f"ImageType {_mode(g['image_type'])!r}" if where == "image_type" else f"description {description!r}"
        key = "exclude_image_type" if where == "image_type" else f"exclude.{where}"
        reason = f"exclude_pattern: {what} matches {pattern!r} ({rules.source} {key})"
        return SeriesSummary(**base, problem=("not_cine", reason), view=None, view_rule=rule)
    if max(counts) < min_frames:
        reason = f"too_few_frames: {max(counts)} frame(s) per slice position, fewer than ingest.min_frames={min_frames}"
        return SeriesSummary(**base, problem=("not_cine", reason), view=None, view_rule=rule)
    issue = consistency_problem(frames, g, tol)
    if issue:
        return SeriesSummary(**base, problem=("inconsistent", issue), view=view, view_rule=rule)
    return SeriesSummary(**base, problem=None, view=view, view_rule=rule)


def geometric_fallback(summaries: list[SeriesSummary], rules: ViewRules) -> list[SeriesSummary]:
    """Assign SAX by geometry to unmatched cine series of one study; the rest become unsupported."""
    todo = [s for s in summaries if s.problem is None and s.view is None]
    if not todo:
        return summaries
    stacks = sax_clusters([s.normal for s in todo], [list(s.positions) for s in todo], rules.geometry)
    in_stack = {i: len(stack) for stack in stacks for i in stack}
    replaced = {}
    for i, s in enumerate(todo):
        if i in in_stack:
            n_pos = sum(len(todo[j].positions) for stack in stacks if i in stack for j in stack)
            rule = f"geometry: {n_pos} parallel double-oblique slice(s) in {in_stack[i]} unmatched cine series"
            replaced[s.series_id] = _replace(s, view="SAX", view_rule=rule)
        else:
            oblique = s.normal is not None and is_oblique(s.normal, rules.geometry.oblique_min_deg)
            reason = (
                f"no_view: cine series {s.description!r} ({s.vendor}) matches no pattern in {rules.source} "
                f"and its geometry ({len(s.positions)} slice(s), {'oblique' if oblique else 'not oblique'}) "
                "does not make a SAX stack; add a pattern for it"
            )
            replaced[s.series_id] = _replace(s, problem=("unsupported", reason), view_rule="geometry: none")
    return [replaced.get(s.series_id, s) for s in summaries]


def _replace(s: SeriesSummary, **kw) -> SeriesSummary:
    from dataclasses import replace

    return replace(s, **kw)


def _keeper_order(df: pd.DataFrame) -> pd.Series:
    """Sort key that puts the most plausible original of a set of copies first."""
    folder = df["relpath"].str.rsplit("/", n=1).str[0].where(df["relpath"].str.contains("/"), "")
    same = df.groupby([folder, df["series_id"].fillna("")])["relpath"].transform("size")
    depth = df["relpath"].str.count("/")
    return pd.DataFrame({"same": -same, "depth": depth, "relpath": df["relpath"]})


def mark_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Set ``duplicate`` on every copy (same sha256, then same SOP instance) but the kept one."""
    df = df.copy()
    order = _keeper_order(df).sort_values(["same", "depth", "relpath"]).index
    for column, code, what in (("sha256", "duplicate_content", "same bytes (SHA-256) as"),
                               ("sop_id", "duplicate_sop", "same SOPInstanceUID as")):
        cand = df.loc[order]
        cand = cand[cand["status"].isin(_READABLE) & cand[column].notna()]
        first = cand.groupby(column, sort=False)["relpath"].transform("first")
        dup = cand.index[cand["relpath"] != first]
        df.loc[dup, "status"] = "duplicate"
        df.loc[dup, "reason"] = [f"{code}: {what} {k}" for k in first.loc[dup]]
    return df


def _select(df: pd.DataFrame, summaries: dict[str, SeriesSummary], tol: float) -> None:
    """Fill ``selected`` (in place) for the ok, viewed files of each study."""
    usable = [s for s in summaries.values() if s.problem is None and s.view in VIEWS]
    index = df.index[df["status"].eq("ok")]
    rows_of = {k: index[v] for k, v in df.loc[index].groupby("series_id", sort=False).indices.items()}
    by_study: dict[tuple[str, str], list[SeriesSummary]] = {}
    for s in usable:
        by_study.setdefault((s.study_id, s.view), []).append(s)
        df.loc[rows_of[s.series_id], "selected"] = True

    def supersede(series_id: str, reason: str, position: float | None = None) -> None:
        rows = rows_of[series_id]
        if position is not None:
            rows = rows[(df.loc[rows, "slice_location"].astype(float) - position).abs().to_numpy() <= tol]
        df.loc[rows, "selected"] = False
        df.loc[rows, "reason"] = reason

    for (_, view), group in by_study.items():
        group = sorted(group, key=lambda s: (s.series_number, len(s.positions)), reverse=True)
        if view != "SAX":
            for s in group[1:]:
                supersede(s.series_id, f"superseded: repeat {view} series; series number {group[0].series_number} used")
            continue
        ref = max(group, key=lambda s: (len(s.positions), s.series_number)).normal
        taken: list[float] = []
        for s in group:
            if ref is not None and s.normal is not None and abs(float(np.dot(ref, s.normal))) < 0.98:
                supersede(s.series_id, "superseded: SAX series not parallel to the study's main SAX stack")
                continue
            sign = float(np.sign(np.dot(ref, s.normal))) if ref is not None and s.normal is not None else 1.0
            for p in s.positions:
                q = p * (sign or 1.0)
                if any(abs(q - t) <= tol for t in taken):
                    supersede(s.series_id, f"superseded: SAX slice at {p:.1f} mm also in a later series (used)", p)
                else:
                    taken.append(q)


DECISION_COLUMNS = ["status", "reason", "view", "view_rule", "selected"]


def study_rules(g: pd.DataFrame, rules: ViewRules, min_frames: int) -> pd.DataFrame:
    """Series checks, views and selection for the ok files ``g`` of one study (pure).

    Returns ``g``'s ``DECISION_COLUMNS`` (same index) after the rules.
    """
    summaries = [summarize_series(s, rules, min_frames) for _, s in g.groupby("series_id", sort=False)]
    by_id = {s.series_id: s for s in geometric_fallback(summaries, rules)}
    g = g.copy()
    sid = g["series_id"]
    g["view"] = sid.map({k: s.view for k, s in by_id.items()})
    g["view_rule"] = sid.map({k: s.view_rule for k, s in by_id.items()})
    problems = {k: s.problem for k, s in by_id.items() if s.problem}
    bad = sid.isin(list(problems))
    g.loc[bad, "status"] = sid[bad].map({k: p[0] for k, p in problems.items()})
    g.loc[bad, "reason"] = sid[bad].map({k: p[1] for k, p in problems.items()})
    g["selected"] = False
    _select(g, by_id, rules.geometry.slice_tolerance_mm)
    return g[DECISION_COLUMNS]


def _study_rules_batch(groups: list[pd.DataFrame], rules: ViewRules, min_frames: int) -> list[pd.DataFrame]:
    return [study_rules(g, rules, min_frames) for g in groups]


# below this many studies per worker process, starting the processes costs more than the rules
# (≈ 0.2 CPU-s per forked worker against ≈ 40 ms per study; benchmarks/README.md, ingest)
MIN_STUDIES_PER_WORKER = 16


def apply_series_rules(files: pd.DataFrame, rules: ViewRules, min_frames: int, jobs: int = 1) -> pd.DataFrame:
    """Duplicates (archive-wide), then :func:`study_rules` per study (``jobs`` processes)."""
    df = mark_duplicates(files.sort_values("relpath", ignore_index=True))
    df["view"] = None
    df["view_rule"] = None
    df["selected"] = False
    groups = [g for _, g in df[df["status"].eq("ok")].groupby("study_id", sort=False)]
    if jobs > 1 and len(groups) >= MIN_STUDIES_PER_WORKER * jobs:
        batches = [groups[i::jobs * 4] for i in range(min(len(groups), jobs * 4))]
        with fork_pool(jobs) as pool:
            parts = [d for batch in pool.map(partial(_study_rules_batch, rules=rules, min_frames=min_frames), batches)
                     for d in batch]
    else:
        parts = [study_rules(g, rules, min_frames) for g in groups]
    if parts:
        decisions = pd.concat(parts)
        for col in DECISION_COLUMNS:
            df.loc[decisions.index, col] = decisions[col]
    df["selected"] = df["selected"].astype(bool)
    return df


def merge_scans(
    shard_tables: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    views: str | os.PathLike,
    min_frames: int,
    quarantine_csv: str | os.PathLike | None = None,
    id_map_parts: list[str | os.PathLike] | None = None,
    id_map_out: str | os.PathLike | None = None,
    jobs: int = 1,
) -> pd.DataFrame:
    """Concatenate the scan shards, apply the series rules, write ``files.parquet`` (+ quarantine.csv)."""
    from cinefm.atomic import write_csv
    from cinefm.dicom.scan import write_id_map

    rules = load_view_rules(views)
    files = pd.concat([pd.read_parquet(p) for p in shard_tables], ignore_index=True)
    df = apply_series_rules(files, rules, min_frames, jobs=jobs)
    write_table(df, out, FILES_SCHEMA)
    counts = df["status"].value_counts().to_dict()
    log.info("files.parquet: %d files, statuses %s, %d selected", len(df), counts, int(df["selected"].sum()))
    if quarantine_csv:
        q = df.loc[~df["status"].eq("ok"), ["relpath", "status", "reason", "patient_id", "study_id", "series_id"]]
        write_csv(q, quarantine_csv)
    if id_map_out:
        parts = [pd.read_csv(p, dtype=str) for p in id_map_parts or []]
        cols = ["kind", "identifier", "pseudonym"]
        merged = pd.concat(parts, ignore_index=True).drop_duplicates().sort_values(cols) if parts else pd.DataFrame(columns=cols)
        write_id_map(merged, id_map_out)
    return df
