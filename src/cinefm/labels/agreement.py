"""Agreement of the label backend with human annotators, and between annotators.

Per disease and per pair of raters (the model vs each annotator, each annotator pair),
on the studies both rated: ``n_studies``; ``n`` with a known label from both;
``n_unknown_rater`` / ``n_unknown_reference`` (empty labels); and on the ``n``:
``prevalence`` (reference positives / n), percent ``agreement``, Cohen's ``kappa``
(Cohen, "A coefficient of agreement for nominal scales", Educ Psychol Meas 1960:
κ = (p_o − p_e) / (1 − p_e)), and ``sensitivity``, ``specificity`` and ``f1`` of the
rater against the reference, each with a percentile bootstrap interval (Efron &
Tibshirani, "An Introduction to the Bootstrap", 1993). All these statistics depend
only on the 2×2 table, so a bootstrap resample is a multinomial draw of its four
cells: O(B) memory whatever the cohort size. Undefined values (κ when both raters
are constant, sensitivity without positives) are NaN. The rows of the model carry the
``backend``, ``model`` and ``cue_set`` of ``labels.csv`` (which parser and cue set made
the labels); rows between annotators leave them empty.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cinefm.atomic import save_figure, write_csv
from cinefm.privacy import pseudonymize

log = logging.getLogger(__name__)

METRICS = ("agreement", "kappa", "sensitivity", "specificity", "f1")
PROVENANCE = ("backend", "model", "cue_set")  # columns of labels.csv copied to the model's rows


def table_metrics(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of a rater against a reference from 2×2 cell counts (arrays broadcast)."""
    tp, fp, fn, tn = (np.asarray(x, dtype=float) for x in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        po = (tp + tn) / n
        p_rater, p_ref = (tp + fp) / n, (tp + fn) / n
        pe = p_rater * p_ref + (1 - p_rater) * (1 - p_ref)
        kappa = np.where(np.isclose(pe, 1.0), np.nan, (po - pe) / (1 - pe))
        return {
            "prevalence": p_ref,
            "agreement": po,
            "kappa": kappa,
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "f1": 2 * tp / (2 * tp + fp + fn),
        }


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float:
    """Cohen's kappa of two binary label sequences (NaN when undefined)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    cells = (np.sum(a & b), np.sum(a & ~b), np.sum(~a & b), np.sum(~a & ~b))
    return float(table_metrics(*cells)["kappa"])


def compare(rater: pd.Series, reference: pd.Series, n_boot: int, seed: int, level: float) -> dict[str, float]:
    """Counts, metrics and bootstrap intervals of ``rater`` vs ``reference`` (aligned, Int 1/0/NA)."""
    both = rater.index.intersection(reference.index)
    r, f = rater.reindex(both), reference.reindex(both)
    known = r.notna() & f.notna()
    rk, fk = r[known].astype(bool).to_numpy(), f[known].astype(bool).to_numpy()
    cells = np.array([np.sum(rk & fk), np.sum(rk & ~fk), np.sum(~rk & fk), np.sum(~rk & ~fk)])
    n = int(cells.sum())
    row: dict[str, float] = {
        "n_studies": len(both), "n": n,
        "n_unknown_rater": int(r.isna().sum()), "n_unknown_reference": int(f.isna().sum()),
    }
    point = table_metrics(*cells)
    row.update({k: float(v) for k, v in point.items()})
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, cells / n, size=n_boot) if n else np.zeros((0, 4))
    boot = table_metrics(*draws.T) if n else {}
    alpha = (1 - level) / 2
    for k in METRICS:
        vals = boot[k][np.isfinite(boot[k])] if n else np.array([])
        lo, hi = (np.quantile(vals, [alpha, 1 - alpha]) if vals.size else (np.nan, np.nan))
        row[f"{k}_low"], row[f"{k}_high"] = float(lo), float(hi)
    return row


def _label_values(col: pd.Series, where: str) -> pd.Series:
    """'1'/'0'/'1.0'/empty -> Int8 1/0/NA; anything else is an error naming ``where``."""
    s = col.astype("string").str.strip()
    s = s.mask(s.isin(["", "nan", "NaN", "None", "<NA>"]))
    num = pd.to_numeric(s, errors="coerce")
    bad = s.notna() & ~num.isin([0, 1])
    if bad.any():
        raise ValueError(f"{where}: values must be 1, 0 or empty; found {sorted(set(s[bad]))[:5]}")
    return num.astype("Int8")


def human_raters(human: pd.DataFrame, diseases: Sequence[str], key: bytes | None, source: str = "human labels") -> dict[str, pd.DataFrame]:
    """``{annotator: frame indexed by study_id with one Int8 column per disease}``.

    ``human`` has ``annotator`` and either ``study_id`` or ``accession_number`` (then
    pseudonymized with ``key``, as the report stage does).
    """
    if "study_id" not in human:
        if "accession_number" not in human:
            raise ValueError(f"{source}: needs a study_id or accession_number column")
        if key is None:
            raise ValueError(f"{source}: accession numbers need the pseudonymization key to join labels")
        human = human.assign(study_id=[pseudonymize(str(a), key, "study") for a in human["accession_number"]])
    missing = [c for c in ["annotator", *diseases] if c not in human]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}")
    out = {}
    for name, g in human.groupby(human["annotator"].astype(str), sort=True):
        dup = g["study_id"].duplicated()
        if dup.any():
            log.warning("%s: annotator %s labels %d studies twice; the first row counts", source, name, int(dup.sum()))
            g = g[~dup]
        out[name] = pd.DataFrame({d: _label_values(g[d], f"{source} ({d})").to_numpy() for d in diseases},
                                 index=pd.Index(g["study_id"].astype(str), name="study_id"))
    return out


def agreement_table(
    raters: dict[str, pd.DataFrame], pairs: Sequence[tuple[str, str]], diseases: Sequence[str],
    n_boot: int = 2000, seed: int = 0, level: float = 0.95,
) -> pd.DataFrame:
    """One row per (disease, rater, reference) pair (see the module docstring)."""
    rows = []
    for d in diseases:
        for a, b in pairs:
            rows.append({"disease": d, "rater": a, "reference": b,
                         **compare(raters[a][d], raters[b][d], n_boot, seed, level)})
    return pd.DataFrame(rows)


def plot_agreement(df: pd.DataFrame):
    """Grouped bars of Cohen's kappa per disease and rater pair, with bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diseases = list(dict.fromkeys(df["disease"]))
    pairs = list(dict.fromkeys(zip(df["rater"], df["reference"], strict=True)))
    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(diseases), 3.6))
    width = 0.8 / max(len(pairs), 1)
    x = np.arange(len(diseases))
    for j, (a, b) in enumerate(pairs):
        sub = df[(df["rater"] == a) & (df["reference"] == b)].set_index("disease").reindex(diseases)
        k = sub["kappa"].to_numpy(dtype=float)
        err = np.abs(np.vstack([k - sub["kappa_low"].to_numpy(float), sub["kappa_high"].to_numpy(float) - k]))
        ax.bar(x + (j - (len(pairs) - 1) / 2) * width, np.nan_to_num(k), width, yerr=np.nan_to_num(err),
               capsize=2, label=f"{a} vs {b}")
    ax.set_xticks(x, [d.replace("_", " ") for d in diseases], rotation=20, ha="right")
    ax.set_ylabel("Cohen's κ")
    ax.set_ylim(min(0.0, float(np.nanmin(df["kappa"])) if df["kappa"].notna().any() else 0.0), 1.05)
    ax.axhline(0.8, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=8, frameon=False, ncol=min(len(pairs), 3), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig


def run_agreement(
    labels_csv: str | os.PathLike,
    human_csv: str | os.PathLike,
    out_csv: str | os.PathLike,
    figure: str | os.PathLike | None,
    diseases: Sequence[str],
    *,
    key: bytes | None = None,
    model_name: str = "model",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Compare ``labels_csv`` (the label stage) with ``human_csv``; write the table and figure."""
    labels = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)
    model = pd.DataFrame({d: _label_values(labels[d], f"{labels_csv} ({d})").to_numpy() for d in diseases},
                         index=pd.Index(labels["study_id"], name="study_id"))
    humans = human_raters(pd.read_csv(human_csv, dtype=str, keep_default_na=False), diseases, key, str(human_csv))
    if model_name in humans:
        raise ValueError(f"{human_csv}: an annotator is called {model_name!r}, the model's name here")
    without = sorted(set().union(*(h.index for h in humans.values())) - set(model.index))
    if without:
        log.warning("agreement: %d human-labelled studies have no model label (not in %s)", len(without), labels_csv)
    raters = {model_name: model, **humans}
    pairs = [(model_name, h) for h in humans] + list(itertools.combinations(humans, 2))
    df = agreement_table(raters, pairs, diseases, n_boot=n_boot, seed=seed, level=level)
    for col in PROVENANCE:
        value = ";".join(sorted(set(labels[col]) - {""})) if col in labels else ""
        df[col] = [value if r == model_name else "" for r in df["rater"]]
    write_csv(df, out_csv)
    if figure:
        import matplotlib.pyplot as plt

        fig = plot_agreement(df)
        save_figure(fig, figure, dpi=150)
        plt.close(fig)
    for r in df.itertuples():
        log.info("agreement %-22s %s vs %s: n=%d kappa=%.2f [%.2f, %.2f] agreement=%.2f", r.disease, r.rater,
                 r.reference, r.n, r.kappa, r.kappa_low, r.kappa_high, r.agreement)
    return df
