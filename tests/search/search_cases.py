"""Shared test data for the search tests: vectors with exact answers, a brute-force reference.

Tie handling is tested on "exact" embeddings: 16 of 32 coordinates are +-0.25, the rest 0,
so every row has norm exactly 1 and every dot product (of rows or of sums of rows) is
computed without rounding in float32. Scores then tie exactly wherever they tie
mathematically, and any implementation must produce bit-identical rankings.
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------- data


def exact_vectors(rng: np.random.Generator, n: int, dim: int = 32, nonzero: int = 16) -> np.ndarray:
    out = np.zeros((n, dim), dtype=np.float32)
    for row in out:
        support = rng.choice(dim, size=nonzero, replace=False)
        row[support] = rng.choice([-0.25, 0.25], size=nonzero)
    return out


def perturb(rng: np.random.Generator, v: np.ndarray, flips: int, moves: int) -> np.ndarray:
    """Flip `flips` signs and move `moves` nonzeros to empty coordinates (norm stays 1)."""
    v = v.copy()
    on = np.flatnonzero(v)
    v[rng.choice(on, size=flips, replace=False)] *= -1
    for _ in range(moves):
        src = rng.choice(np.flatnonzero(v))
        dst = rng.choice(np.flatnonzero(v == 0))
        v[dst], v[src] = v[src], 0.0
    return v


def exact_clusters(rng: np.random.Generator, n_clusters: int = 30, max_size: int = 16) -> np.ndarray:
    """Clusters of 1..max_size members 0-2 edits from a centre (some duplicates), shuffled."""
    rows = []
    for centre in exact_vectors(rng, n_clusters):
        for _ in range(int(rng.integers(1, max_size + 1))):
            edits = int(rng.integers(0, 3))
            flips = int(rng.integers(0, edits + 1))
            rows.append(perturb(rng, centre, flips, edits - flips))
    x = np.stack(rows)
    return x[rng.permutation(len(x))]


def brute_force(x: np.ndarray, k: int, exclude_self: bool = True, normalize: bool = True):
    """Full similarity matrix in float64, stable sort: score desc, then lower index."""
    x = x.astype(np.float64)
    if normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(sims, order, axis=1)
    order = np.where(np.isneginf(scores), -1, order)
    return scores, order


def assert_same_up_to_near_ties(x, indices, scores, ref_indices, ref_scores, atol=1e-5):
    """Equal indices wherever the reference scores are not within atol of a neighbour."""
    np.testing.assert_allclose(scores, ref_scores, atol=atol)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    rows, cols = np.nonzero(indices != ref_indices)
    for r, c in zip(rows, cols):
        # a swap is only acceptable between candidates whose true scores nearly tie
        assert abs(float(xn[r] @ xn[indices[r, c]]) - ref_scores[r, c]) < atol
    valid = indices >= 0
    true_scores = np.einsum("nd,nkd->nk", xn, xn[np.where(valid, indices, 0)])
    np.testing.assert_allclose(scores[valid], true_scores[valid], atol=atol)


# ----------------------------------------------------------------------------- topk / search
