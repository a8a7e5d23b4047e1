"""The seed's threshold query expansion (rerank), vectorised over queries.

Why apart from search: it is a second pass over a first search's lists, whose own
nearest-neighbour step reuses `artistsim.search.exact.search_prepared`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from artistsim.search.exact import ArrayLike, as_matrix, search_prepared

__all__ = ["rerank"]


def _neighbour_sums(e: torch.Tensor, query_rows: np.ndarray, listed: np.ndarray) -> torch.Tensor:
    """e[q] + e[n1] + e[n2] + ... per query, adding listed neighbours in list order (-1 = none).

    The loop runs over list positions (at most k), never over queries.
    """
    rows = torch.from_numpy(query_rows).to(e.device)
    cols = torch.from_numpy(listed).to(e.device)
    sums = e[rows].clone()
    for j in range(cols.shape[1]):
        present = cols[:, j] >= 0
        sums += e[cols[:, j].clamp(min=0)] * present[:, None].to(e.dtype)
    return sums


def rerank(
    embeddings: ArrayLike,
    scores: np.ndarray,
    indices: np.ndarray,
    *,
    threshold: float = 0.85,
    k: int = 100,
    chunk_size: int = 4096,
    backend: str = "auto",
) -> np.ndarray:
    """The seed's threshold query expansion, vectorised over queries; int64 (N, k).

    Exact definition, for query row q with ranked list `indices[q, :k]` and its cosine
    `scores[q, :k]` (the query itself must not be in its list):

    1. The neighbours with score > `threshold` (compared in float64) are kept first, in
       their list order; call them n_1..n_m.
    2. If m == 0 the original list is returned unchanged (padded with -1 to k).
    3. Otherwise the query's L2-normalised embedding and those of n_1..n_m are averaged
       with equal weights; the remaining k - m slots are filled with the catalogue rows
       nearest to that average by cosine, skipping the query itself and n_1..n_m, ties
       broken by lower row index. (Ranking by the dot product of the normalised rows with
       the sum e_q + e_n1 + ... + e_nm is the same order, so that is what is computed.)
       If m >= k the list is n_1..n_k.

    The seed searched the k + 1 nearest rows of the average and skipped the listed ones;
    excluding them inside the search gives the same list whenever the seed's was full,
    and never leaves slots empty when it was not. `backend` chooses the search's backend,
    as in `search`.
    """
    e = F.normalize(as_matrix(embeddings, "embeddings"), dim=1)
    n = e.shape[0]
    scores = np.asarray(scores)
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[0] != n or scores.shape != indices.shape:
        raise ValueError(
            f"scores and indices must both have shape ({n}, L), got {scores.shape} and {indices.shape}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    idx = indices[:, :k].astype(np.int64)
    sc = scores[:, :k].astype(np.float64)
    if idx.size and (idx.min() < -1 or idx.max() >= n):
        raise ValueError(f"indices hold row indices outside [-1, {n})")
    own = idx == np.arange(n)[:, None]
    if own.any():
        first = int(np.flatnonzero(own.any(axis=1))[0])
        raise ValueError(f"query row {first} is in its own list; exclude self first")

    above = (idx >= 0) & (sc > threshold)
    m = above.sum(axis=1)
    width = idx.shape[1]
    order = np.argsort(~above, axis=1, kind="stable")
    listed = np.where(np.arange(width) < m[:, None], np.take_along_axis(idx, order, axis=1), -1)

    out = np.full((n, k), -1, dtype=np.int64)
    out[:, :width] = idx
    full = m >= k
    out[full] = listed[full, :k]

    todo = np.flatnonzero((m > 0) & (m < k))
    if todo.size == 0:
        return out
    mq = m[todo][:, None]
    head = listed[todo, : int(mq.max())]
    with torch.no_grad():
        sums = _neighbour_sums(e, todo, head)  # (T, d): small, the search chunks it
        exclude = np.concatenate([todo[:, None], head], axis=1)
        _, fill = search_prepared(sums, e, k, exclude, chunk_size, backend)
    columns = np.arange(k)
    from_list = listed[todo][:, np.minimum(columns, width - 1)]
    from_fill = np.take_along_axis(fill, np.maximum(columns[None, :] - mq, 0), axis=1)
    out[todo] = np.where(columns[None, :] < mq, from_list, from_fill)
    return out
