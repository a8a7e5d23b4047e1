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

The ranking pipeline (`artistsim.search.pipeline`) reorders a first search's candidate
list by s' (it keeps the candidates, only reorders them), with each catalogue row's
statistics computed once (`cohort_stats_exact`); identification normalises artist
scores with `cohort_stats` against the catalogue's own tracks. Whether it helps depends
on the data; `evaluate` chooses it on validation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["artist_centroids", "cohort_stats", "cohort_stats_exact", "as_norm", "stats_of_scores"]


def _matrix(x, name: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), got shape {tuple(t.shape)}")
    return t.to(torch.float32)

# Floor on a cohort standard deviation: a row whose cohort scores are all equal (a tiny
# cohort, or duplicates) would otherwise divide by zero.
_MIN_STD = 1e-6


def artist_centroids(embeddings, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique labels (A,) and the L2-normalised mean of each label's normalised rows (A, d).

    Rows are normalised before averaging so a long or loud track does not outweigh the
    artist's others. One scatter-add over all rows; no loop over artists.
    """
    e = F.normalize(_matrix(embeddings, "embeddings"), dim=1)
    labels = np.asarray(labels)
    if labels.shape != (e.shape[0],):
        raise ValueError(f"labels must have shape ({e.shape[0]},), got {labels.shape}")
    unique, inverse = np.unique(labels, return_inverse=True)
    sums = torch.zeros((len(unique), e.shape[1]), dtype=e.dtype, device=e.device)
    sums.index_add_(0, torch.from_numpy(inverse.astype(np.int64)).to(e.device), e)
    return unique, F.normalize(sums, dim=1).cpu().numpy().astype(np.float32)


def cohort_stats(x, cohort, top_k: int = 200, *, exclude: np.ndarray | None = None,
                 chunk_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `x`: mean and std of its `top_k` highest cosine scores against `cohort`.

    `exclude` (shape (N,) or (N, m), -1 = none) drops cohort rows per row of `x`: a
    training track must not be normalised against its own artist's centroid. `top_k` is
    capped at the cohort's size. Returns float32 (N,) means and (N,) stds (>= 1e-6).
    Chunked products and a top-k of values (which rows win does not matter here).
    """
    q = F.normalize(_matrix(x, "queries"), dim=1)
    c = F.normalize(_matrix(cohort, "cohort"), dim=1)
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    k = min(int(top_k), c.shape[0])
    if k < 1:
        raise ValueError("the cohort is empty")
    ex = None if exclude is None else np.asarray(exclude, dtype=np.int64).reshape(len(q), -1)
    step = max(1, min(chunk_size, (1 << 26) // max(c.shape[0], 1)))
    out = np.empty((len(q), k), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(q), step):  # blocks of rows bound the (block, cohort) product
            s = q[start : start + step] @ c.T
            if ex is not None:
                block = torch.from_numpy(ex[start : start + step])
                rows = torch.arange(len(s))[:, None].expand_as(block)
                keep = block >= 0
                s[rows[keep], block[keep]] = float("-inf")
            out[start : start + step] = torch.topk(s, k, dim=1).values.numpy()
    return stats_of_scores(out)


def cohort_stats_exact(x: np.ndarray, cohort: np.ndarray, top_k: int, chunk: int = 4096
                       ) -> tuple[np.ndarray, np.ndarray]:
    """`cohort_stats` of L2-normalised rows from float64 products, without exclusions.

    Why float64: a row's statistics must not depend on which other rows were computed
    with it (a catalogue stores them per row; `predict` computes them for a whole split);
    a float32 product's last bit does, a float64 one's rounds away in the float32 result.
    """
    c = np.asarray(cohort, np.float64)
    k = min(int(top_k), len(c))
    means, stds = [np.empty(0, np.float32)], [np.empty(0, np.float32)]
    for start in range(0, len(x), chunk):
        s = np.asarray(x[start : start + chunk], np.float64) @ c.T
        top = -np.partition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else s
        m, sd = stats_of_scores(top)
        means.append(m)
        stds.append(sd)
    return np.concatenate(means), np.concatenate(stds)


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
