"""Approximate (and exact) FAISS indexes for catalogues too large for exact search.

`faiss_topk` searches every row of a catalogue against all rows through a FAISS flat,
IVF or HNSW index; `build_faiss_index` builds one; `recall_at_k` measures what an
approximate index loses against exact search (`artistsim.search.exact`).
Conventions (cosine, result shapes, -1 / -inf for empty slots) are exact search's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch.nn.functional as F

from artistsim.search._faiss import omp_threads
from artistsim.search.backend import COSINE, Backend
from artistsim.search.exact import ArrayLike, as_matrix

__all__ = ["IndexSearcher", "faiss_topk", "build_faiss_index", "recall_at_k"]


def _default_nlist(n: int) -> int:
    """About 4 sqrt(N) lists, but at least 39 training points per list (FAISS's minimum)."""
    return int(max(1, min(round(4 * np.sqrt(n)), n // 39)))


def build_faiss_index(
    faiss: Any, x: np.ndarray, kind: str, nlist: int | None, hnsw_m: int, seed: int, metric: str = "ip"
) -> tuple[Any, list[Any]]:
    """Build and fill an inner-product (or, `metric` "l2", Euclidean) index; also return objects it needs kept alive."""
    n, d = x.shape
    x = np.ascontiguousarray(x, dtype=np.float32)
    ip = metric == "ip"
    flat, measure = (faiss.IndexFlatIP, faiss.METRIC_INNER_PRODUCT) if ip else (faiss.IndexFlatL2, faiss.METRIC_L2)
    if kind == "flat":
        index = flat(d)
        keep: list[Any] = []
    elif kind == "ivf":
        lists = nlist if nlist else _default_nlist(n)
        if not 1 <= lists <= n:
            raise ValueError(f"nlist must be in [1, {n}] for {n} vectors, got {lists}")
        quantizer = flat(d)
        index = faiss.IndexIVFFlat(quantizer, d, lists, measure)
        keep = [quantizer]
        rng = np.random.default_rng(seed)
        sample = rng.choice(n, size=min(n, 256 * lists), replace=False)
        index.train(x[np.sort(sample)])
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, measure)
        keep = []
    else:
        raise ValueError(f"index must be 'flat', 'ivf' or 'hnsw', got {kind!r}")
    index.add(x)
    return index, keep


def _drop_self(scores: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id from its k+1 results; rows without it lose their last slot."""
    n = indices.shape[0]
    drop = indices == np.arange(n)[:, None]
    drop[~drop.any(axis=1), -1] = True
    order = np.argsort(drop, axis=1, kind="stable")[:, : indices.shape[1] - 1]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(indices, order, axis=1)


def faiss_topk(
    embeddings: ArrayLike,
    k: int = 100,
    *,
    index: str = "flat",
    nlist: int | None = None,
    nprobe: int = 16,
    hnsw_m: int = 32,
    ef_search: int = 128,
    exclude_self: bool = True,
    threads: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top-k of every row against all rows through a FAISS index.

    `index`: "flat" (IndexFlatIP, exact), "ivf" (IndexIVFFlat, inner product, trained on a
    seeded sample of up to 256 points per list; `nlist` defaults to ~4 sqrt(N), `nprobe`
    lists are visited) or "hnsw" (IndexHNSWFlat with inner-product metric, `hnsw_m` links,
    efSearch = max(`ef_search`, k + 1)). Rows are L2-normalised so inner product is
    cosine. With `exclude_self` k + 1 neighbours are fetched and the row itself dropped
    (or the last one, if an approximate index missed it). Same output conventions as
    `topk`, except that tie order follows FAISS.
    """
    import faiss

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    x = np.ascontiguousarray(F.normalize(as_matrix(embeddings, "embeddings"), dim=1).cpu().numpy())
    n = x.shape[0]
    want = min(k + 1 if exclude_self else k, n)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    indices = np.full((n, k), -1, dtype=np.int64)
    if want == 0:
        return scores, indices
    with omp_threads(faiss, threads):
        built, _keep = build_faiss_index(faiss, x, index, nlist, hnsw_m, seed)
        if index == "ivf":
            built.nprobe = min(nprobe, built.nlist)
        elif index == "hnsw":
            built.hnsw.efSearch = max(ef_search, want)
        found_scores, found = built.search(x, want)
    found = found.astype(np.int64)
    if exclude_self:
        found_scores, found = _drop_self(found_scores, found)
    found_scores = np.where(found < 0, -np.inf, found_scores).astype(np.float32)
    scores[:, : found.shape[1]] = found_scores
    indices[:, : found.shape[1]] = found
    return scores, indices


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Share of the exact neighbours that the approximate lists also contain.

    Pooled over all queries (total hits / total exact neighbours, ignoring -1 slots),
    which equals the mean per-query recall when every exact list is full.
    """
    approx = np.asarray(approx_idx, dtype=np.int64)
    exact = np.asarray(exact_idx, dtype=np.int64)
    if approx.ndim != 2 or exact.ndim != 2 or approx.shape[0] != exact.shape[0]:
        raise ValueError(f"expected two (Q, k) arrays with the same Q, got {approx.shape} and {exact.shape}")
    width = int(max(approx.max(initial=-1), exact.max(initial=-1))) + 2
    approx_codes = (np.arange(approx.shape[0])[:, None] * width + approx)[approx >= 0]
    exact_codes = (np.arange(exact.shape[0])[:, None] * width + exact)[exact >= 0]
    if exact_codes.size == 0:
        raise ValueError("the exact lists hold no neighbour: recall is undefined")
    return float(np.isin(exact_codes, approx_codes).mean())


class IndexSearcher:
    """A FAISS index over L2-normalised rows as the ranking pipeline's `Searcher`.

    Why: `predict --index hnsw` and `baseline --index` rank millions of tracks through the
    same pipeline steps as exact search, only with approximate candidates.
    """

    def __init__(self, vectors: np.ndarray, index: str = "flat", nlist: int | None = None, nprobe: int = 16,
                 hnsw_m: int = 32, ef_search: int = 128, seed: int = 0, stats: np.ndarray | None = None,
                 backend: Backend = COSINE):
        import faiss

        self._faiss = faiss
        self.matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        self.size, self.stats, self.kind, self.ef_search = len(self.matrix), stats, index, ef_search
        self.backend = backend  # PLDA: an L2 index over the rows' points (`artistsim.search.backend`)
        self._keys = None if backend is COSINE else backend.rows(self.matrix)  # re-scoring reads them
        with omp_threads(faiss, None):
            self.index, self._keep = build_faiss_index(faiss, backend.index_rows(self.matrix), index, nlist, hnsw_m,
                                                       seed, backend.metric)
        if index == "ivf":
            self.index.nprobe = min(nprobe, self.index.nlist)

    def candidates(self, queries: np.ndarray, width: int) -> np.ndarray:
        width = min(width, self.size)
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.ef_search, width)
        with omp_threads(self._faiss, None):
            return self.index.search(self.backend.index_queries(queries), width)[1].astype(np.int64)

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self.matrix[rows]

    def keys(self, rows: np.ndarray) -> np.ndarray | None:
        return None if self._keys is None else self._keys[rows]

    def row_stats(self, rows: np.ndarray) -> np.ndarray | None:
        return None if self.stats is None else self.stats[rows]
