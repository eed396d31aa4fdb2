"""Disease structure of the validation embeddings as a number (``structure.csv``).

The UMAP (:mod:`cinefm.embed.umap_plot`) shows whether studies of a disease lie close
together; this module measures it. For each target (a disease key of ``labels.csv``, and
``heart_failure``), every validation study with a known label (1/0; empty = unknown is
left out) is scored by leave-one-out k-nearest-neighbour voting: its score is the mean
label of its ``k`` most cosine-similar labelled studies **of other patients** (a
patient's repeat studies are near-duplicates and would otherwise vote for each other).
The AUROC of these scores (:func:`cinefm.stats.roc.auroc`: Mann–Whitney, ties counted ½) is 0.5 when the embedding
holds no information about the target and 1 when every study's neighbours share its
label (a k-NN probe as in Wu et al. 2018 and the DINO k-NN evaluation, Caron et al. 2021).

Reference: the same AUROC with the labels permuted among the studies, ``permutations``
times (seeded): ``null_mean``/``null_sd`` and the permutation p-value
``(1 + #{null ≥ observed}) / (1 + permutations)`` (Phipson & Smyth 2010). The row
``target = mean`` averages the targets' AUROCs, its null the same average per permutation.

Embeddings: ``video`` — a study's normalised mean clip embedding (as in retrieval);
``text`` — its report embedding. Targets whose positives or negatives come from fewer
than 2 patients are left out (logged): no study could have a neighbour of its class.
Leave-one-out voting is biased below 0.5 under the null (a study's own class has one
member fewer among its candidates), so compare ``auroc`` with ``null_mean``, not 0.5.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cinefm.atomic import write_csv
from cinefm.embed.retrieval import normalize_rows, study_video_embeddings
from cinefm.embed.store import EmbeddingSet, read_embeddings
from cinefm.stats.roc import auroc  # the package's one AUROC (matches pROC)

log = logging.getLogger(__name__)

COLUMNS = ["embedding", "target", "n_studies", "positives", "k", "auroc", "null_mean", "null_sd", "p_value",
           "permutations"]


def neighbour_index(x: np.ndarray, groups: Sequence[str], k: int) -> np.ndarray:
    """``(n, k')`` indices of each row's most cosine-similar rows of another group (k' = min(k, allowed)).

    ``groups``: one id per row (the patient); rows of the same group are never neighbours.
    """
    sim = normalize_rows(x) @ normalize_rows(x).T
    g = np.asarray(groups)
    sim[g[:, None] == g[None, :]] = -np.inf
    allowed = int((np.isfinite(sim)).sum(axis=1).min())
    if allowed < 1:
        raise ValueError("k-NN needs every study to have a study of another patient to compare with")
    k = min(int(k), allowed)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def knn_auroc(neighbours: np.ndarray, y: np.ndarray) -> float:
    """AUROC of the leave-one-out k-NN score (mean neighbour label) for labels ``y`` (0/1)."""
    y = np.asarray(y, dtype=np.float64)
    return auroc(y.astype(bool), y[neighbours].mean(axis=1))


def structure_rows(x: np.ndarray, patients: Sequence[str], labels: pd.DataFrame, targets: Sequence[str], *,
                   embedding: str, k: int, permutations: int, seed: int) -> list[dict]:
    """Rows of :data:`COLUMNS` for one embedding ``x`` (one row per study, ``labels`` aligned to it)."""
    rng = np.random.default_rng(seed)
    rows, nulls = [], []
    for target in targets:
        y = pd.to_numeric(labels[target], errors="coerce").to_numpy()
        known = np.isin(y, (0.0, 1.0))
        yk, pk = y[known], np.asarray(patients)[known]
        n_pos, n_neg = len(set(pk[yk == 1])), len(set(pk[yk == 0]))
        if min(n_pos, n_neg) < 2:
            log.info("structure (%s): %s left out: positives from %d patient(s), negatives from %d (need 2 each)",
                     embedding, target, n_pos, n_neg)
            continue
        nn = neighbour_index(x[known], pk, k)
        observed = knn_auroc(nn, yk)
        null = np.array([knn_auroc(nn, rng.permutation(yk)) for _ in range(permutations)])
        nulls.append(null)
        rows.append(_row(embedding, target, int(known.sum()), int((yk == 1).sum()), nn.shape[1], observed, null))
    if rows:
        observed = float(np.mean([r["auroc"] for r in rows]))
        null = np.mean(nulls, axis=0) if permutations else np.array([])
        rows.append(_row(embedding, "mean", len(x), sum(r["positives"] for r in rows), int(rows[0]["k"]),
                         observed, null))
    return rows


def _row(embedding: str, target: str, n: int, positives: int, k: int, observed: float, null: np.ndarray) -> dict:
    has_null = len(null) > 0
    return {"embedding": embedding, "target": target, "n_studies": n, "positives": positives, "k": k,
            "auroc": observed, "null_mean": float(null.mean()) if has_null else np.nan,
            "null_sd": float(null.std(ddof=1)) if len(null) > 1 else np.nan,
            "p_value": float((1 + (null >= observed - 1e-12).sum()) / (1 + len(null))) if has_null else np.nan,
            "permutations": len(null)}


def structure_table(emb: EmbeddingSet, labels: pd.DataFrame, targets: Sequence[str], *, k: int = 5,
                    permutations: int = 200, seed: int = 0) -> pd.DataFrame:
    """k-NN disease AUROC vs permuted labels for the study video and report embeddings (module docstring)."""
    missing = [c for c in ("study_id", *targets) if c not in labels.columns]
    if missing:
        raise ValueError(f"labels table lacks column(s) {missing}; it needs study_id and one column per target")
    if k < 1 or permutations < 0:
        raise ValueError(f"k must be >= 1 and permutations >= 0; got k={k}, permutations={permutations}")
    studies = list(emb.report_study)
    table = labels.drop_duplicates("study_id").set_index("study_id").reindex(studies)
    unlabelled = int(table[list(targets)].isna().all(axis=1).sum())
    if unlabelled:
        log.info("structure: %d of %d validation studies have no label row or only unknown labels",
                 unlabelled, len(studies))
    video = study_video_embeddings(emb.clip_video, emb.clip_study, studies)
    rows = []
    for name, x in (("video", video), ("text", np.asarray(emb.report_text, dtype=np.float64))):
        rows += structure_rows(x, list(emb.report_patient), table, targets, embedding=name, k=k,
                               permutations=permutations, seed=seed)
    return pd.DataFrame(rows, columns=COLUMNS)


def write_structure(embeddings_h5: str | os.PathLike, labels_csv: str | os.PathLike, out_csv: str | os.PathLike,
                    targets: Sequence[str], *, k: int = 5, permutations: int = 200, seed: int = 0) -> pd.DataFrame:
    """Read ``embeddings.h5`` and ``labels.csv``; write ``structure.csv`` (columns :data:`COLUMNS`) atomically."""
    labels = pd.read_csv(labels_csv, dtype={"study_id": str})
    # heart_failure is derived by the labels stage; a table without it is scored on the diseases alone
    targets = [t for t in targets if t in labels.columns or t != "heart_failure"]
    table = structure_table(read_embeddings(embeddings_h5), labels, targets, k=k, permutations=permutations,
                            seed=seed)
    write_csv(table, out_csv, float_format="%.6g")
    log.info("wrote %s (%d rows)", out_csv, len(table))
    return table
