"""UMAP of the validation embeddings, coloured by disease (``umap.png``).

Two panels: every clip's video embedding, and every study's report embedding, each
projected to 2-D with UMAP (McInnes, Healy & Melville 2018, arXiv:1802.03426; the
method used default settings: 15 neighbours, min_dist 0.1) and coloured by the study's
disease category from ``labels.csv``:

- the disease key when exactly one disease is present (value 1);
- ``multiple`` when several are present;
- ``none`` when every disease is 0; ``uncertain`` when none is 1 but some is unknown;
- ``unlabelled`` when the study has no row in the labels table.

With few points UMAP's neighbourhood shrinks to ``min(n_neighbors, n − 1)`` and the
spectral initialisation (which needs more points than dimensions) is replaced by a
random one; fewer than 3 points are drawn as they are (no projection).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cinefm.atomic import save_figure
from cinefm.embed.store import EmbeddingSet, read_embeddings

log = logging.getLogger(__name__)

# Categories that are not a disease, drawn in greys after the diseases.
OTHER_CATEGORIES = ("multiple", "none", "uncertain", "unlabelled")
DISEASE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
                   "#17becf", "#bcbd22")
OTHER_COLOURS = {"multiple": "#000000", "none": "#7f7f7f", "uncertain": "#c7c7c7", "unlabelled": "#e0e0e0"}


def disease_categories(study_ids: Sequence[str], labels: pd.DataFrame, diseases: Sequence[str]) -> list[str]:
    """One category per study (module docstring) from a labels table (``study_id`` + disease columns)."""
    missing = [d for d in diseases if d not in labels.columns]
    if "study_id" not in labels.columns or missing:
        raise ValueError(f"labels table needs study_id and the disease columns; missing "
                         f"{(['study_id'] if 'study_id' not in labels.columns else []) + missing}")
    table = labels.drop_duplicates("study_id").set_index("study_id")
    values = table[list(diseases)].apply(pd.to_numeric, errors="coerce")
    out = []
    for sid in study_ids:
        if sid not in values.index:
            out.append("unlabelled")
            continue
        row = values.loc[sid]
        present = [d for d in diseases if row[d] == 1]
        if len(present) == 1:
            out.append(present[0])
        elif present:
            out.append("multiple")
        elif row.isna().any():
            out.append("uncertain")
        else:
            out.append("none")
    return out


def project_2d(x: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """``(n, P) -> (n, 2)`` UMAP coordinates (cosine metric, fixed ``seed``) for n ≥ 3 points."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    if n < 3:
        return np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - x.shape[1]))))
    import umap

    init = "spectral" if n > 10 else "random"
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist, metric="cosine",
                        random_state=seed, init=init, n_jobs=1)
    return reducer.fit_transform(x)


def _colours(categories: Sequence[str], diseases: Sequence[str]) -> dict[str, str]:
    palette = {d: DISEASE_COLOURS[i % len(DISEASE_COLOURS)] for i, d in enumerate(diseases)}
    palette.update(OTHER_COLOURS)
    return {c: palette.get(c, "#aaaaaa") for c in categories}


def umap_figure(emb: EmbeddingSet, labels: pd.DataFrame, diseases: Sequence[str], *,
                n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0):
    """Figure with the clip (video) and report (text) UMAPs, coloured by disease category."""
    from matplotlib.figure import Figure

    report_cat = dict(zip(emb.report_study, disease_categories(list(emb.report_study), labels, diseases),
                          strict=True))
    panels = [
        (f"video: {len(emb.clip_video)} clips", emb.clip_video, [report_cat[s] for s in emb.clip_study], "clips"),
        (f"reports: {len(emb.report_text)} studies", emb.report_text, [report_cat[s] for s in emb.report_study],
         "studies"),
    ]
    order = [c for c in (*diseases, *OTHER_CATEGORIES) if c in set(report_cat.values())]
    colours = _colours(order, diseases)
    fig = Figure(figsize=(11, 5))
    axes = fig.subplots(1, 2)
    for ax, (title, x, cats, unit) in zip(axes, panels, strict=True):
        xy = project_2d(x, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
        cats = np.asarray(cats)
        for c in order:
            sel = cats == c
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=colours[c], label=f"{c} ({int(sel.sum())} {unit})",
                           alpha=0.8, linewidths=0)
        ax.set_title(title)
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    run = emb.attrs.get("run")
    fig.suptitle(f"Validation embeddings{f' ({run})' if run else ''}, coloured by disease")
    return fig


def write_umap(embeddings_h5: str | os.PathLike, labels_csv: str | os.PathLike, out_png: str | os.PathLike,
               diseases: Sequence[str], *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0) -> None:
    """Read embeddings and labels, write the UMAP figure atomically."""
    labels = pd.read_csv(labels_csv, dtype={"study_id": str})
    emb = read_embeddings(embeddings_h5)
    fig = umap_figure(emb, labels, diseases, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed)
    save_figure(fig, out_png, dpi=120)
    log.info("wrote %s (%d clips, %d reports)", out_png, len(emb.clip_video), len(emb.report_text))
