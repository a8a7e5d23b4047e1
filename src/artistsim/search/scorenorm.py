"""Adaptive score normalisation (AS-norm) against a cohort, and artist centroids.

Why: a raw cosine means different things for different tracks. A track from a crowded
genre is close to many artists' tracks; a track of an unusual artist is close to few.
Speaker verification (WeSpeaker's `score_norm`, the 3rd-place Yandex Cup solution, +0.0056
nDCG on validation) corrects for this by comparing each score with how the two sides
score against a cohort of *other* identities: for a query q and a candidate t,

    s'(q, t) = 0.5 * ((s - mu_q) / sd_q + (s - mu_t) / sd_t)

where mu_q, sd_q are the mean and standard deviation of q's `top_k` highest cosine scores
against the cohort (the adaptive part: only the most competitive cohort members count),
and likewise for t. The cohort here is the L2-normalised mean embedding of each training
artist (`artist_centroids`), so it never contains the test artists being ranked.

Re-ranking a candidate list by s' (`as_norm_lists`) keeps the first search's candidates
and only reorders them: it costs one (N x cohort) search for the statistics, vectorised.
Whether it helps depends on the data; callers choose it on validation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from artistsim.search.exact import ArrayLike, as_matrix, search

__all__ = ["artist_centroids", "cohort_stats", "as_norm", "as_norm_lists", "stats_of_scores"]

# Floor on a cohort standard deviation: a row whose cohort scores are all equal (a tiny
# cohort, or duplicates) would otherwise divide by zero.
_MIN_STD = 1e-6


def artist_centroids(embeddings: ArrayLike, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique labels (A,) and the L2-normalised mean of each label's normalised rows (A, d).

    Rows are normalised before averaging so a long or loud track does not outweigh the
    artist's others. One scatter-add over all rows; no loop over artists.
    """
    e = F.normalize(as_matrix(embeddings, "embeddings"), dim=1)
    labels = np.asarray(labels)
    if labels.shape != (e.shape[0],):
        raise ValueError(f"labels must have shape ({e.shape[0]},), got {labels.shape}")
    unique, inverse = np.unique(labels, return_inverse=True)
    sums = torch.zeros((len(unique), e.shape[1]), dtype=e.dtype, device=e.device)
    sums.index_add_(0, torch.from_numpy(inverse.astype(np.int64)).to(e.device), e)
    return unique, F.normalize(sums, dim=1).cpu().numpy().astype(np.float32)


def cohort_stats(
    x: ArrayLike,
    cohort: ArrayLike,
    top_k: int = 200,
    *,
    exclude: np.ndarray | None = None,
    chunk_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `x`: mean and std of its `top_k` highest cosine scores against `cohort`.

    `exclude` (shape (N,) or (N, m), -1 = none) drops cohort rows per row of `x`: a
    training track must not be normalised against its own artist's centroid. `top_k` is
    capped at the cohort's size. Returns float32 (N,) means and (N,) stds (>= 1e-6).
    """
    c = as_matrix(cohort, "cohort")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    k = min(int(top_k), c.shape[0])
    if k < 1:
        raise ValueError("the cohort is empty")
    scores, _ = search(x, c, k, exclude=exclude, chunk_size=chunk_size)
    return stats_of_scores(scores)


def stats_of_scores(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float32, std >= 1e-6) of each row's finite scores: the cohort statistics."""
    valid = np.isfinite(scores)
    count = np.maximum(valid.sum(axis=1), 1)
    s = np.where(valid, scores, 0.0).astype(np.float64)
    mean = s.sum(axis=1) / count
    var = np.where(valid, (s - mean[:, None]) ** 2, 0.0).sum(axis=1) / count
    return mean.astype(np.float32), np.maximum(np.sqrt(var), _MIN_STD).astype(np.float32)


def as_norm(
    scores: np.ndarray,
    query_stats: tuple[np.ndarray, np.ndarray],
    target_stats: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Symmetric AS-norm of raw scores (Q, K): 0.5 * (z-score by query + z-score by target).

    `query_stats` are (Q,) arrays; `target_stats` are (Q, K) arrays (each candidate's own
    statistics, already gathered) or (K,) arrays broadcast over queries. Non-finite
    scores (empty slots, -inf) stay -inf.
    """
    s = np.asarray(scores, dtype=np.float64)
    mq, sq = (np.asarray(a, dtype=np.float64)[:, None] for a in query_stats)
    mt, st = (np.asarray(a, dtype=np.float64) for a in target_stats)
    if mt.ndim == 1:
        mt, st = mt[None, :], st[None, :]
    out = 0.5 * ((s - mq) / sq + (s - mt) / st)
    return np.where(np.isfinite(s), out, -np.inf).astype(np.float32)


def as_norm_lists(
    embeddings: ArrayLike,
    scores: np.ndarray,
    indices: np.ndarray,
    cohort: ArrayLike,
    top_k: int = 200,
    *,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reorder each row's candidate list (from a search of `embeddings` against itself) by AS-norm.

    `scores`/`indices` (N, K) are a first search's results with -1 / -inf for empty slots.
    Returns the AS-normed scores and the indices sorted by them (descending; ties keep the
    first search's order; empty slots stay last). `stats` may pass precomputed
    `cohort_stats(embeddings, cohort, top_k)`.
    """
    idx = np.asarray(indices, dtype=np.int64)
    raw = np.asarray(scores, dtype=np.float32)
    if raw.shape != idx.shape or idx.ndim != 2:
        raise ValueError(f"scores and indices must both be (N, K), got {raw.shape} and {idx.shape}")
    mean, std = stats if stats is not None else cohort_stats(embeddings, cohort, top_k)
    present = idx >= 0
    safe = np.where(present, idx, 0)
    normed = as_norm(np.where(present, raw, -np.inf), (mean, std), (mean[safe], std[safe]))
    order = np.argsort(-normed, axis=1, kind="stable")
    return np.take_along_axis(normed, order, axis=1), np.take_along_axis(idx, order, axis=1)
