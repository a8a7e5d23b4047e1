"""Exact nearest-neighbour search over track embeddings (chunked matmuls or FAISS's kernel).

Why exact search first: at competition size (41,377 tracks, 128-d) an exact cosine
search done as chunked matrix products takes seconds on two CPU cores, so approximate
indexes are only worth it for much larger catalogues. `artistsim.search.ann.faiss_topk` offers FAISS flat / IVF
/ HNSW indexes for those, and `recall_at_k` measures what an approximate index loses.

Exact search has two backends with identical results. "torch" computes each chunk's
similarity block with one matmul and selects with `torch.topk`; it runs on any device.
"faiss" hands the same products to FAISS's brute-force kNN (`faiss.knn`), whose
threshold-filtered selection costs far less per score than `torch.topk` (on 2 idle CPU
cores at 41,377 x 128: 4.2 s against 6.8 s end to end, benchmarks/bench_search.py),
then restores this module's conventions (excluded rows dropped, canonical tie order,
boundary ties redone exactly by the torch path). "auto" (the default) uses FAISS for
large problems on the CPU when it is installed, torch otherwise.

Tried and not kept: a symmetric self-search (`topk` of a catalogue against itself), which
multiplies only the tiles on and above the diagonal and feeds each tile and its mirror
to FAISS's per-row heaps (`faiss.ResultHeap.add_result_subset`). At 41,377 x 128 on 2
cores the half products took 1.6 s (against ~2.8 s for all of them), but the heap
updates took 1.3 s and transposing the mirrored tiles 0.7-1.3 s (tiles of 512-4096):
3.7-4.5 s in all, against 4.3 s for `faiss.knn`. Beating it needs the mirrored half's
selection without the transposition (a per-column threshold pass), which was left for
later.

Conventions shared by every function here:

- Similarity is cosine (rows are L2-normalised first unless told otherwise).
- Results are numpy: scores float32 (Q, k) sorted descending, indices int64 (Q, k).
  Slots that cannot be filled (fewer than k candidates) hold index -1 and score -inf.
- Ties are broken deterministically: among equal scores the lower catalogue index comes
  first, including at the k-th position (which of several tied candidates makes the cut).
  `torch.topk` alone leaves tie order unspecified; reproducible rankings need this.
- Computation runs in torch on the device of the input (numpy input runs on the CPU);
  only the (Q, k) results come back to the host. The full N x N similarity matrix is
  never built: queries go through in chunks of rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F

from artistsim.search._faiss import faiss_module, omp_threads

__all__ = ["BACKENDS", "ArrayLike", "as_matrix", "search", "search_prepared", "topk"]

ArrayLike = Union[np.ndarray, torch.Tensor]

# Cap on the elements of one chunk's similarity block (1 GiB of float32), so a large
# chunk_size against a large catalogue cannot exhaust memory.
_MAX_BLOCK_ELEMENTS = 2**28

BACKENDS = ("auto", "torch", "faiss")
# "auto" picks FAISS from this many query x catalogue pairs on (below it either backend
# takes milliseconds, and the torch path has no import cost).
_FAISS_MIN_PAIRS = 2**22
# FAISS's brute-force kNN scores blocks of (queries x catalogue rows) with one sgemm and
# filters each block into per-query reservoirs. On an idle machine block sizes from
# 4096 x 1024 (FAISS's default) to 4096 x 32768 are within 3% of each other at
# 41,377 x 128, but on a shared one (another job holding a core) 4096 x 16384 (a 256 MB
# block, 16x fewer parallel regions to synchronise) took 8.2 CPU-s against 13.2.
_FAISS_QUERY_BLOCK = 4096
_FAISS_CATALOGUE_BLOCK = 16384


def as_matrix(x: Any, name: str) -> torch.Tensor:
    """A 2-D float32 tensor view/copy of `x` on its own device; rejects NaN and inf."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(x), dtype=np.float32))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dim), got shape {tuple(t.shape)}")
    t = t.to(torch.float32)
    # A finite sum proves every element finite in one reduction; `isfinite(t).all()`
    # builds an N x d mask first (0.2 s of a 1,000-query search over 1M x 128). Only a
    # non-finite sum (NaN/inf inside, or finite values overflowing) needs the exact test.
    if t.numel() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return t


def _chunk_rows(chunk_size: int, n_catalogue: int) -> int:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return max(1, min(chunk_size, _MAX_BLOCK_ELEMENTS // max(n_catalogue, 1)))


def _exclusion_matrix(exclude: np.ndarray | None, n_queries: int, n_catalogue: int) -> np.ndarray | None:
    """Normalise `exclude` to an int64 (Q, m) matrix of catalogue rows (-1 = none)."""
    if exclude is None:
        return None
    ex = np.asarray(exclude)
    if ex.size and not np.issubdtype(ex.dtype, np.integer):
        raise ValueError(f"exclude must hold integer row indices, got dtype {ex.dtype}")
    ex = ex.astype(np.int64, copy=False)
    if ex.ndim == 1:
        ex = ex[:, None]
    if ex.ndim != 2 or ex.shape[0] != n_queries:
        raise ValueError(
            f"exclude must have shape ({n_queries},) or ({n_queries}, m), got {np.shape(exclude)}"
        )
    if ex.size and (ex.min() < -1 or ex.max() >= n_catalogue):
        raise ValueError(f"exclude holds row indices outside [-1, {n_catalogue})")
    return ex


def _canonical_topk(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of every row of `sims` with ties broken by lower column index, padded to k.

    torch.topk picks an arbitrary subset of candidates tied at the k-th value. Fetching
    k + 1 values reveals such a tie (the (k+1)-th value equals the k-th) without another
    pass over the block; only those rows are redone with a full stable sort (rare on real
    embeddings, so the cost is usually nil). The k survivors are then put in (score desc,
    index asc) order by two sorts of k elements.
    """
    n_rows, n_cols = sims.shape
    kk = min(k, n_cols)
    if kk == 0:
        vals = sims.new_full((n_rows, k), float("-inf"))
        return vals, torch.full((n_rows, k), -1, dtype=torch.int64, device=sims.device)
    vals, idx = torch.topk(sims, min(kk + 1, n_cols), dim=1, largest=True, sorted=True)
    if kk < n_cols:
        tied = vals[:, kk] == vals[:, kk - 1]
        vals, idx = vals[:, :kk], idx[:, :kk]
    else:
        tied = torch.zeros(n_rows, dtype=torch.bool, device=sims.device)
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        tied_vals, tied_idx = torch.sort(sims[rows], dim=1, descending=True, stable=True)
        vals[rows], idx[rows] = tied_vals[:, :kk], tied_idx[:, :kk]
    vals, idx = _canonical_order(vals, idx)
    if kk < k:
        vals = F.pad(vals, (0, k - kk), value=float("-inf"))
        idx = F.pad(idx, (0, k - kk), value=-1)
    return vals, idx


def _canonical_order(vals: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each row's (score, index) pairs to score descending, index ascending.

    Two sorts of k elements: by index, then a stable sort by score. -inf slots get -1.
    """
    by_index = torch.argsort(idx, dim=1)
    idx, vals = idx.gather(1, by_index), vals.gather(1, by_index)
    vals, by_score = torch.sort(vals, dim=1, descending=True, stable=True)
    idx = idx.gather(1, by_score)
    idx = torch.where(torch.isneginf(vals), torch.full_like(idx, -1), idx)
    return vals, idx


def _search_tensors(queries: torch.Tensor, catalogue: torch.Tensor, k: int, exclude: np.ndarray | None,
                    chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunked inner-product top-k of prepared (already normalised if wanted) tensors."""
    n_queries, n_catalogue = queries.shape[0], catalogue.shape[0]
    scores = np.empty((n_queries, k), dtype=np.float32)
    indices = np.empty((n_queries, k), dtype=np.int64)
    rows = min(_chunk_rows(chunk_size, n_catalogue), max(n_queries, 1))
    # One similarity buffer reused by every chunk: allocating a fresh (rows, N) block per
    # chunk costs the kernel zero-filling new pages, about a third of the matmul's time.
    buffer = queries.new_empty((rows, n_catalogue))
    for start in range(0, n_queries, rows):
        stop = min(start + rows, n_queries)
        sims = buffer[: stop - start]
        torch.matmul(queries[start:stop], catalogue.T, out=sims)
        if exclude is not None:
            block = torch.from_numpy(exclude[start:stop]).to(sims.device)
            r, j = (block >= 0).nonzero(as_tuple=True)
            sims[r, block[r, j]] = float("-inf")
        vals, idx = _canonical_topk(sims, k)
        scores[start:stop] = vals.cpu().numpy()
        indices[start:stop] = idx.cpu().numpy()
    return scores, indices


def _choose_backend(backend: str, q: torch.Tensor, c: torch.Tensor) -> str:
    """Resolve "auto"; reject a FAISS request it cannot serve (GPU tensors, no faiss)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    on_cpu = q.device.type == "cpu" and c.device.type == "cpu"
    if backend == "auto":
        large = q.shape[0] * c.shape[0] >= _FAISS_MIN_PAIRS
        return "faiss" if on_cpu and large and faiss_module() is not None else "torch"
    if backend == "faiss":
        if not on_cpu:
            raise ValueError(f"backend='faiss' needs CPU inputs, got {q.device} / {c.device}")
        if faiss_module() is None:
            raise ValueError("backend='faiss' needs the faiss package (pip install faiss-cpu)")
    return backend


@contextlib.contextmanager
def _faiss_blocks(faiss: Any) -> Iterator[None]:
    """Run faiss.knn with the block sizes measured best here, restoring FAISS's globals."""
    cvar = faiss.cvar
    previous = (cvar.distance_compute_blas_query_bs, cvar.distance_compute_blas_database_bs)
    cvar.distance_compute_blas_query_bs = _FAISS_QUERY_BLOCK
    cvar.distance_compute_blas_database_bs = _FAISS_CATALOGUE_BLOCK
    try:
        yield
    finally:
        cvar.distance_compute_blas_query_bs, cvar.distance_compute_blas_database_bs = previous


def _drop_excluded(found: np.ndarray, exclude: np.ndarray | None, n_catalogue: int) -> np.ndarray:
    """Boolean (Q, w): which FAISS results survive (a real row, not excluded for its query).

    A few exclusions per query (self-exclusion: one) are compared column by column; wider
    ones (the rerank's listed neighbours) go through one sorted lookup of (query, row)
    codes, O(Q (w + m) log) rather than O(Q w m).
    """
    keep = found >= 0
    if exclude is None or exclude.size == 0:
        return keep
    if exclude.shape[1] <= 4:
        for j in range(exclude.shape[1]):
            keep &= found != exclude[:, j : j + 1]
        return keep
    rows = np.arange(found.shape[0], dtype=np.int64)[:, None]
    codes = rows * (n_catalogue + 1) + found
    banned = (rows * (n_catalogue + 1) + exclude)[exclude >= 0]
    return keep & ~np.isin(codes, banned)


def _compact(found_scores: np.ndarray, found: np.ndarray, keep: np.ndarray, width: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """The first `width` kept results of each row, in order; -inf / -1 where a row has fewer.

    One scatter per array: kept entry j of a row goes to column (kept before it), the
    rest to a spare last column that is cut off (torch's scatter is multi-threaded; the
    numpy fancy-index equivalent took ~10% of a 41,377-row search).
    """
    n = found.shape[0]
    if found.shape[1] > width and not keep[:, 0].any() and keep[:, 1 : width + 1].all():
        # Self-exclusion's usual case: each row's own id came first; the rest is a slice.
        return found_scores[:, 1 : width + 1], found[:, 1 : width + 1]
    keep_t = torch.from_numpy(keep)
    pos = keep_t.cumsum(dim=1) - 1
    dest = torch.where(keep_t & (pos < width), pos, torch.full_like(pos, width))
    scores = torch.full((n, width + 1), float("-inf"), dtype=torch.float32)
    indices = torch.full((n, width + 1), -1, dtype=torch.int64)
    scores.scatter_(1, dest, torch.from_numpy(np.ascontiguousarray(found_scores, dtype=np.float32)))
    indices.scatter_(1, dest, torch.from_numpy(found))
    return scores[:, :width].numpy(), indices[:, :width].numpy()


def _search_faiss(queries: torch.Tensor, catalogue: torch.Tensor, k: int, exclude: np.ndarray | None,
                  chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """`_search_tensors` through faiss.knn, with identical results.

    FAISS is asked for k + m + 1 neighbours (m = exclusions per query), so after dropping
    excluded rows at least k + 1 remain. A row whose k-th and (k+1)-th remaining scores
    are equal has a tie at the cut, where FAISS's choice is arbitrary: those rows (rare
    on real embeddings) are redone by the torch path. The k kept are then put in
    canonical order (score descending, index ascending).
    """
    faiss = faiss_module()
    n_queries, n_catalogue = queries.shape[0], catalogue.shape[0]
    m = exclude.shape[1] if exclude is not None else 0
    want = k + m + 1
    if want >= n_catalogue or n_queries == 0:  # small catalogue: everything is a candidate
        return _search_tensors(queries, catalogue, k, exclude, chunk_size)
    xq = np.ascontiguousarray(queries.numpy(), dtype=np.float32)
    xb = xq if catalogue is queries else np.ascontiguousarray(catalogue.numpy(), dtype=np.float32)
    with omp_threads(faiss, None), _faiss_blocks(faiss):
        found_scores, found = faiss.knn(xq, xb, want, faiss.METRIC_INNER_PRODUCT)
    found = found.astype(np.int64, copy=False)
    found_scores, found = _compact(found_scores, found, _drop_excluded(found, exclude, n_catalogue), k + 1)
    scores, indices = found_scores[:, :k].copy(), found[:, :k].copy()
    # FAISS sorts by score only: rows with equal scores inside their k need the index rule.
    unordered = np.flatnonzero((np.diff(scores, axis=1) == 0).any(axis=1))
    if unordered.size:
        vals, idx = _canonical_order(torch.from_numpy(scores[unordered]), torch.from_numpy(indices[unordered]))
        scores[unordered], indices[unordered] = vals.numpy(), idx.numpy()
    tied = (found[:, k] >= 0) & (found_scores[:, k] == found_scores[:, k - 1])
    if tied.any():
        rows = np.flatnonzero(tied)
        sub_ex = exclude[rows] if exclude is not None else None
        scores[rows], indices[rows] = _search_tensors(queries[rows], catalogue, k, sub_ex, chunk_size)
    return scores, indices


def search_prepared(queries: torch.Tensor, catalogue: torch.Tensor, k: int, exclude: np.ndarray | None,
                    chunk_size: int, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of prepared (already normalised if wanted) tensors by either backend."""
    if _choose_backend(backend, queries, catalogue) == "faiss":
        return _search_faiss(queries, catalogue, k, exclude, chunk_size)
    return _search_tensors(queries, catalogue, k, exclude, chunk_size)


def search(
    queries: ArrayLike,
    catalogue: ArrayLike,
    k: int = 100,
    *,
    exclude: np.ndarray | None = None,
    chunk_size: int = 4096,
    normalize: bool = True,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of every query row against the catalogue rows.

    `exclude` drops given catalogue rows per query: shape (Q,) (one row each) or (Q, m)
    (several), -1 meaning nothing. With `normalize` the score is cosine similarity,
    otherwise the plain inner product. Returns numpy float32 scores (Q, k), descending,
    and int64 catalogue indices (Q, k); ties and padding follow the module conventions.
    `backend`: "torch", "faiss" (CPU only) or "auto" (see the module docstring); the
    results are the same.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    same = catalogue is queries
    q = as_matrix(queries, "queries")
    c = q if same else as_matrix(catalogue, "catalogue")
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"queries have dimension {q.shape[1]} but the catalogue {c.shape[1]}")
    if q.device != c.device:
        raise ValueError(f"queries are on {q.device} but the catalogue on {c.device}")
    if normalize:
        q = F.normalize(q, dim=1)
        c = q if same else F.normalize(c, dim=1)
    ex = _exclusion_matrix(exclude, q.shape[0], c.shape[0])
    with torch.no_grad():
        return search_prepared(q, c, k, ex, chunk_size, backend)


def topk(
    embeddings: ArrayLike,
    k: int = 100,
    *,
    chunk_size: int = 4096,
    exclude_self: bool = True,
    normalize: bool = True,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k of every row against all rows (itself excluded by default).

    This is the competition ranking: each track ranks the rest of the catalogue. With
    fewer than k other rows the tail holds -1 / -inf. See the module docstring for tie
    order, devices and backends.
    """
    n = int(embeddings.shape[0])
    exclude = np.arange(n, dtype=np.int64) if exclude_self else None
    return search(embeddings, embeddings, k, exclude=exclude, chunk_size=chunk_size, normalize=normalize,
                  backend=backend)
