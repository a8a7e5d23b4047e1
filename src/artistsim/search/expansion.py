"""Weighted top-k query expansion (alpha-QE): a second search from a weighted average.

Why beside the seed's threshold rerank: the threshold (0.85) is a cosine on one data's
scale; here the expansion uses the first `depth` neighbours whatever their scores, each
weighted by its cosine to the power `alpha` (so weak neighbours count little), a form
that transfers across similarity scales. Callers choose depth on validation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from artistsim.search.exact import ArrayLike, as_matrix, search_prepared

__all__ = ["expand_queries"]


def expand_queries(embeddings: ArrayLike, scores: np.ndarray, indices: np.ndarray, *, depth: int,
                   alpha: float = 3.0, k: int = 100, chunk_size: int = 4096,
                   backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Search again from q' = e_q + sum_{j<depth} max(s_j, 0)^alpha e_{n_j}; self excluded.

    `scores`/`indices` (N, L) are a first search of the catalogue against itself (-1 =
    empty slot). Returns (scores, indices) (N, k) of the expanded queries, vectorised over
    queries (the loop runs over the `depth` list positions only).
    """
    e = F.normalize(as_matrix(embeddings, "embeddings"), dim=1)
    idx = np.asarray(indices)[:, :depth].astype(np.int64)
    w = np.where(idx >= 0, np.maximum(np.asarray(scores)[:, :depth], 0.0), 0.0) ** alpha
    if depth < 1 or alpha < 0:
        raise ValueError(f"depth must be >= 1 and alpha >= 0, got {depth}, {alpha}")
    with torch.no_grad():
        q = e.clone()
        cols = torch.from_numpy(np.maximum(idx, 0))
        weights = torch.from_numpy(w.astype(np.float32))
        for j in range(idx.shape[1]):
            q += weights[:, j : j + 1] * e[cols[:, j]]
        q = F.normalize(q, dim=1)
        return search_prepared(q, e, min(k, len(e) - 1), np.arange(len(e))[:, None], chunk_size, backend)
