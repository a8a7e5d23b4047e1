"""Synthetic catalogues of clustered unit vectors, and the recall a same-artist search cares about.

Shared by the index benchmark (bench_ann) and the service benchmark (bench_serve), which
measure the same catalogues in-process and over HTTP.
"""

from __future__ import annotations

import numpy as np

DIM = 128


def make_catalogue(n: int, d: int = DIM, seed: int = 0, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """N clustered unit vectors (artists of ~10) and each row's artist, built chunk by chunk."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    artists = max(1, n // 10)
    centres = torch.randn(artists, d, generator=gen)
    spread = 0.25 + 0.65 * torch.rand(artists, 1, generator=gen)
    out = np.empty((n, d), dtype=np.float32)
    owners = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        owner = torch.randint(0, artists, (stop - start,), generator=gen)
        owners[start:stop] = owner.numpy()
        x = centres[owner] + spread[owner] * torch.randn(stop - start, d, generator=gen)
        out[start:stop] = torch.nn.functional.normalize(x, dim=1).numpy()
    return out, owners


def artist_recall(found: np.ndarray, rows: np.ndarray, owners: np.ndarray) -> float:
    """Share of each query's same-artist rows (itself excluded, at most k) among its results.

    The recall a user of same-artist search cares about: on this catalogue a query has ~9
    artist-mates well above the rest, and its other ~90 exact neighbours are noise vectors
    whose order is nearly arbitrary, which an approximate index cannot be expected to
    reproduce (hence its low plain recall@100).
    """
    mates = np.bincount(owners)[owners[rows]] - 1
    hits = ((owners[np.maximum(found, 0)] == owners[rows][:, None]) & (found >= 0) & (found != rows[:, None])).sum(1)
    want = np.minimum(mates, found.shape[1])
    return float(hits[want > 0].sum() / max(1, want[want > 0].sum()))
