"""Cross-modal retrieval: recall@k of video→text and text→video, next to chance.

A query *hits* at k when at least one of its positives is among the k candidates most
similar to it (cosine similarity of the L2-normalised embeddings; ties broken by
candidate order). Recall@k is the fraction of queries that hit (the retrieval metric of
CLIP/ConVIRT-style evaluations, e.g. Zhang et al. 2022, Sec. 4).

Chance: a query with m positives among N candidates, ranked at random, hits at k with
probability ``1 − C(N−m, k) / C(N, k)`` (hypergeometric: no positive among the k drawn);
the table reports the mean over queries (``k/N`` when every query has one positive).

Is the recall above chance? ``p_value`` is a permutation test of that: the reports are
re-assigned to the videos at random (the embeddings stay as they are) ``permutations``
times, and ``p = (1 + #{null recall >= observed}) / (1 + permutations)`` (one-sided;
Phipson & Smyth 2010). It answers for this validation set, whose size ``n_queries``
limits how small p can get.

Two levels (``retrieval.csv``, one row per level × direction × k):

- ``study``: a study's video embedding is the normalised mean of its clips' embeddings;
  each study queries the reports of all N studies (one positive) and vice versa.
- ``clip``: every clip queries the N reports (positive: its study's report), and every
  report queries all clips (positives: all clips of its study).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cinefm.atomic import write_csv
from cinefm.embed.store import EmbeddingSet, read_embeddings

COLUMNS = ["level", "direction", "k", "recall", "chance", "ratio", "p_value", "permutations", "n_queries",
           "n_candidates"]


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def recall_at_k(similarity: np.ndarray, positive: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Fraction of queries (rows) with a positive among their top-k candidates (columns).

    ``similarity`` and ``positive`` are ``(Q, N)``; every query needs at least one positive.
    k larger than N counts as N.
    """
    similarity, positive = np.asarray(similarity), np.asarray(positive, dtype=bool)
    if similarity.shape != positive.shape or similarity.ndim != 2:
        raise ValueError(f"similarity {similarity.shape} and positive {positive.shape} must be the same (Q, N)")
    if not positive.any(axis=1).all():
        raise ValueError("every query needs at least one positive candidate")
    return dict(zip((int(k) for k in ks), _recalls(_ranking(similarity), positive, ks), strict=True))


def _ranking(similarity: np.ndarray) -> np.ndarray:
    """Candidates of each query (row), most similar first (ties: candidate order)."""
    return np.argsort(-np.asarray(similarity), axis=1, kind="stable")


def _recalls(order: np.ndarray, positive: np.ndarray, ks: Sequence[int]) -> list[float]:
    """Recall@k for each k of queries ranked by ``order`` with ``positive`` candidates."""
    first_hit = np.take_along_axis(positive, order, axis=1).argmax(axis=1)  # rank of the best positive
    n = order.shape[1]
    return [float(np.mean(first_hit < min(int(k), n))) for k in ks]


def chance_at_k(n_candidates: int, n_positive: np.ndarray, k: int) -> float:
    """Mean over queries of ``1 − C(N−m, k)/C(N, k)``: the recall@k of a random ranking."""
    n, k = int(n_candidates), min(int(k), int(n_candidates))
    m = np.asarray(n_positive, dtype=np.int64)
    if n < 1 or (m < 1).any() or (m > n).any():
        raise ValueError(f"need 1 <= positives <= candidates ({n}); got {m.min()}..{m.max()}")
    # C(N−m, k)/C(N, k) = Π_{j<k} (N−m−j)/(N−j), computed as a product to avoid huge binomials.
    j = np.arange(k)
    miss = np.prod(np.clip((n - m[:, None] - j[None, :]) / (n - j[None, :]), 0.0, None), axis=1)
    return float(np.mean(1.0 - miss))


def study_video_embeddings(clip_video: np.ndarray, clip_study: np.ndarray,
                           studies: Sequence[str]) -> np.ndarray:
    """``(len(studies), P)``: normalised mean of each study's clip embeddings, in ``studies`` order."""
    clip_study = np.asarray(clip_study)
    index = {s: i for i, s in enumerate(studies)}
    rows = np.array([index[s] for s in clip_study])
    sums = np.zeros((len(studies), clip_video.shape[1]))
    np.add.at(sums, rows, normalize_rows(clip_video))
    return normalize_rows(sums)


def null_recalls(similarity: np.ndarray, positive: np.ndarray, ks: Sequence[int], permutations: int,
                 rng: np.random.Generator, report_axis: int) -> np.ndarray:
    """``(permutations, len(ks))`` recall@k with the reports (``report_axis`` of ``positive``:
    1 = candidates, 0 = queries) re-assigned at random; the similarities stay as they are."""
    order = _ranking(similarity)  # the similarities do not change: rank once
    positive = np.asarray(positive, dtype=bool)
    out = np.empty((permutations, len(ks)))
    for p in range(permutations):
        perm = rng.permutation(positive.shape[report_axis])
        out[p] = _recalls(order, positive[:, perm] if report_axis == 1 else positive[perm], ks)
    return out


def _rows(level: str, direction: str, similarity: np.ndarray, positive: np.ndarray,
          ks: Sequence[int], permutations: int = 0, seed: int = 0) -> list[dict]:
    recalls = recall_at_k(similarity, positive, ks)
    n_pos = positive.sum(axis=1)
    null = None
    if permutations > 0:
        rng = np.random.default_rng([seed, len(level), len(direction)])
        null = null_recalls(similarity, positive, ks, permutations, rng,
                            report_axis=1 if direction == "video_to_text" else 0)
    out = []
    for i, k in enumerate(ks):
        chance = chance_at_k(positive.shape[1], n_pos, k)
        p_value = (float((1 + np.sum(null[:, i] >= recalls[int(k)] - 1e-12)) / (1 + permutations))
                   if null is not None else float("nan"))
        out.append({"level": level, "direction": direction, "k": int(k), "recall": recalls[int(k)],
                    "chance": chance, "ratio": recalls[int(k)] / chance, "p_value": p_value,
                    "permutations": int(permutations), "n_queries": positive.shape[0],
                    "n_candidates": positive.shape[1]})
    return out


def study_retrieval(video: np.ndarray, text: np.ndarray, ks: Sequence[int], permutations: int = 0,
                    seed: int = 0) -> list[dict]:
    """Rows of study-level retrieval for paired ``(N, P)`` study video/report embeddings (row i ↔ row i)."""
    sim = normalize_rows(video) @ normalize_rows(text).T
    eye = np.eye(len(sim), dtype=bool)
    return (_rows("study", "video_to_text", sim, eye, ks, permutations, seed)
            + _rows("study", "text_to_video", sim.T, eye, ks, permutations, seed))


def retrieval_table(emb: EmbeddingSet, ks: Sequence[int] = (1, 5, 10), permutations: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """Recall@k against chance, with a permutation p-value, at the study and clip level, both
    directions (module docstring). ``permutations`` 0 leaves ``p_value`` empty."""
    if len(emb.report_text) < 2:
        raise ValueError(f"retrieval needs at least 2 studies with clips and reports, got {len(emb.report_text)}")
    studies = list(emb.report_study)
    text = normalize_rows(emb.report_text)
    rows = study_retrieval(study_video_embeddings(emb.clip_video, emb.clip_study, studies), text, ks,
                           permutations, seed)
    clip_sim = normalize_rows(emb.clip_video) @ text.T                     # (n_clips, N)
    clip_pos = np.asarray(emb.clip_study)[:, None] == np.asarray(studies)[None, :]
    rows += _rows("clip", "video_to_text", clip_sim, clip_pos, ks, permutations, seed)
    rows += _rows("clip", "text_to_video", clip_sim.T, clip_pos.T, ks, permutations, seed)
    return pd.DataFrame(rows, columns=COLUMNS)


def write_retrieval(embeddings_h5: str | os.PathLike, out_csv: str | os.PathLike,
                    ks: Sequence[int] = (1, 5, 10), permutations: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Read ``embeddings.h5``, write ``retrieval.csv`` (columns ``COLUMNS``) atomically."""
    table = retrieval_table(read_embeddings(embeddings_h5), ks, permutations, seed)
    write_csv(table, out_csv, float_format="%.6g")
    return table
