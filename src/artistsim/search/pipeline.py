"""The one ranking pipeline: search -> AS-norm -> weighted query expansion -> rerank.

Why one: `predict` (a test split ranked against itself), `index build/add`, `query`, every
`serve` endpoint, `identify` and `audit` answer "which tracks are by this track's artist?"
and must give the same list for the same track. Each step is written once, here, over a
`Searcher` (anything that finds candidate rows and hands back their vectors): an
in-memory matrix (`MatrixSearcher`, predict and evaluate) or a catalogue snapshot (its
FAISS index plus tail). The embedding side (runs, ensemble weights, LDA fusion) is
`artistsim.embed.Embedder`; `PipelineState` is what both sides need from the settings
`evaluate --save-settings` chose on validation.

The steps, for a query vector q (L2-normalised; `self_row` its own catalogue row or -1):

1. the `depth` (>= k, 100 like the competition's lists) nearest rows by the back end's score;
2. AS-norm (`settings.as_norm_top_k` > 0): the list reordered by the symmetric
   z-scores of its cosines against a cohort of training-artist centroids
   (`artistsim.scoring.asnorm`); each row's cohort statistics are stored with it;
3. weighted query expansion (`expansion_depth` > 0): a second search from
   q + sum_j max(s_j, 0)^ALPHA e_j over the first `expansion_depth` listed rows;
4. the seed's threshold rerank (`rerank_threshold`): rows above it stay first (in list
   order), the rest of the list is refilled with the rows nearest to q + their sum (the
   query and the listed rows skipped, ties by lower row); with none above it the list
   stays as it is, with the whole list above it the list is those rows.

The back end (`settings.backend`, `artistsim.search.backend`) is the score every search
orders by: cosine, or the pairwise PLDA log-likelihood ratio (`scoring.plda.PairLLR`,
fitted on the training artists in the fused space), found by the same inner-product
search over per-track keys. Under PLDA: step 1 lists by LLR; AS-norm z-scores LLRs,
each row's cohort statistics being its LLRs against the same centroids; expansion and
rerank keep the embedding-space meaning of their settings (weights and the threshold
are cosines, the expanded query is the normalised weighted sum of embeddings) and
search from it by LLR.

Exactness: candidates come from a float32 search (exact or approximate) widened by
MARGIN rows, and are then re-scored one pair at a time in float64 and put in canonical
order (score descending, row ascending). A per-pair float64 dot product does not depend
on how many queries were batched together, where a float32 matrix product does in its
last bit; so a track queried alone through the service gets the list `predict` wrote
for it among all test tracks (tested), not one with two near-tied neighbours swapped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

import numpy as np
import torch

from artistsim.config_check import build, ranged
from artistsim.scoring.asnorm import as_norm, cohort_stats_exact
from artistsim.scoring.lda import LDA
from artistsim.scoring.plda import PairLLR
from artistsim.search.backend import COSINE, Backend, Plda
from artistsim.search.exact import search_prepared

K = 100  # the competition's list length: the depth every step works at
MARGIN = 16  # extra float32 candidates re-scored exactly, so a last-bit difference cannot drop one
ALPHA = 3.0  # weighted query expansion: neighbour weight = cosine ** ALPHA
_CHUNK = 4096  # queries per block of the pipeline (each step searches a whole block at once)
_GATHER = 1 << 22  # float64 elements of one gathered (queries, rows, dim) block: 32 MB


@dataclass
class InferenceSettings:
    """What ranking does after embedding; the defaults are the seed's (rerank at 0.85)."""

    lda_weight: float = ranged(0.0, "x >= 0")
    as_norm_top_k: int = ranged(0, "x >= 0")
    rerank_threshold: float | None = 0.85
    expansion_depth: int = ranged(0, "x >= 0")  # weighted top-k query expansion; 0 = off
    runs: list[str] = field(default_factory=list)  # run folder names these were chosen for
    validation: dict[str, float] = field(default_factory=dict)  # nDCG@100 after each step
    member_weights: list[float] = field(default_factory=lambda: [], metadata={"range": "x >= 0"})
    backend: Literal["cosine", "plda"] = "cosine"  # the score lists are ordered by (`search.backend`)
    plda_shrinkage: float = ranged(0.0, "0 <= x <= 1")  # the within scatter's shrinkage the PLDA was fitted with
    partner: Literal["lda", "wccn"] = "lda"  # which linear map `lda_weight` fuses (`evaluation.inference.tune_partner`)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, d: Any, where: str) -> InferenceSettings:
        """Settings read from JSON, every field checked by its type hint and range (ValueError naming `where`)."""
        return build(cls, d, where)


@dataclass
class PipelineState:
    """Everything ranking needs beyond the embeddings: settings, the fused LDA map, the cohort, the PLDA."""

    settings: InferenceSettings
    lda: LDA | None = None
    cohort: np.ndarray | None = None  # (C, d) training-artist centroids in the fused space
    plda: PairLLR | None = None  # fitted on the training artists in the fused space (backend "plda")

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"cohort": self.cohort if self.cohort is not None else np.zeros((0, 0), np.float32)}
        if self.lda is not None:
            out |= {"lda_mean": np.asarray(self.lda.mean_), "lda_components": self.lda.components_}
        if self.plda is not None:
            out |= self.plda.arrays()
        return out

    @cached_property
    def backend(self) -> Backend:
        """The score lists are ordered by; searchers over the rows are built with it too."""
        return Plda(self.plda) if self.settings.backend == "plda" and self.plda is not None else COSINE

    @classmethod
    def from_parts(cls, record: dict[str, Any], arrays: dict[str, np.ndarray], where: str) -> PipelineState:
        settings = InferenceSettings.from_record(record, where)
        lda = None
        if "lda_mean" in arrays:
            lda = LDA()
            lda.mean_, lda.components_ = arrays["lda_mean"], arrays["lda_components"]
        cohort = arrays.get("cohort")
        cohort = cohort if cohort is not None and cohort.size else None
        plda = PairLLR.from_arrays(arrays)
        if settings.as_norm_top_k and cohort is None:
            raise ValueError(f"{where}: AS-norm is on but no cohort was saved")
        if settings.lda_weight and lda is None:
            raise ValueError(f"{where}: LDA fusion is on but no LDA map was saved")
        if settings.backend == "plda" and plda is None:
            raise ValueError(f"{where}: the PLDA back end is on but no PLDA was saved")
        return cls(settings, lda, cohort, plda)

    def row_stats(self, vectors: np.ndarray) -> np.ndarray | None:
        """(n, 2) AS-norm cohort statistics of rows (mean, std), or None when AS-norm is off."""
        if not self.settings.as_norm_top_k or self.cohort is None:
            return None
        b = self.backend  # the cohort scored as the list is: keys' inner product + the row's own terms
        mean, std = cohort_stats_exact(b.queries(vectors), b.rows(self.cohort), self.settings.as_norm_top_k)
        if b is not COSINE:
            mean = (mean + b.offset(vectors)).astype(np.float32)
        return np.stack([mean, std], axis=1)


class Searcher(Protocol):
    """What ranking needs of a collection of L2-normalised rows.

    A searcher is built with the ranking's back end (`artistsim.search.backend`) and
    searches under it: the rows themselves for cosine, their PLDA keys (or points, in an
    approximate index) for PLDA; `vectors` hands back the rows as embedded under either.
    """

    size: int

    def candidates(self, queries: np.ndarray, width: int) -> np.ndarray:
        """(Q, <= width) rows scoring highest with these L2-normalised queries under the searcher's
        back end (-1 = none); approximate is allowed."""

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """(n, d) float32 vectors of rows (all >= 0)."""

    def keys(self, rows: np.ndarray) -> np.ndarray | None:
        """(n, e) float32 back-end keys of rows when held (None: computed from `vectors` as needed)."""

    def row_stats(self, rows: np.ndarray) -> np.ndarray | None:
        """(n, 2) stored AS-norm statistics of rows, or None when none are stored."""


class MatrixSearcher:
    """Exact search over an in-memory matrix of L2-normalised rows (predict, evaluate).

    Under `backend` PLDA the rows' track keys are searched (computed once, here).
    """

    def __init__(self, vectors: np.ndarray, stats: np.ndarray | None = None, backend: Backend = COSINE):
        self.matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        self.size = len(self.matrix)
        self.stats, self.backend = stats, backend
        self._t = torch.from_numpy(self.matrix if backend is COSINE else backend.rows(self.matrix))

    def candidates(self, queries: np.ndarray, width: int) -> np.ndarray:
        width = min(width, self.size)
        with torch.no_grad():
            return search_prepared(torch.from_numpy(self.backend.queries(queries)), self._t, width,
                                   None, 4096, "auto")[1]

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self.matrix[rows]

    def keys(self, rows: np.ndarray) -> np.ndarray | None:
        return None if self.backend is COSINE else self._t.numpy()[rows]

    def row_stats(self, rows: np.ndarray) -> np.ndarray | None:
        return None if self.stats is None else self.stats[rows]


def row_keys(searcher: Searcher, rows: np.ndarray, backend: Backend) -> np.ndarray:
    """(n, e) float32 keys of rows (all >= 0) under `backend`: the searcher's own when it holds them.

    Held or computed, a row's key is the same float32 value (`PairLLR.track_keys`), so a
    list does not depend on which searcher found it.
    """
    if backend is COSINE:
        return searcher.vectors(rows)
    held = searcher.keys(rows)
    return backend.rows(searcher.vectors(rows)) if held is None else held


def pair_scores(searcher: Searcher, q: np.ndarray, rows: np.ndarray, backend: Backend = COSINE) -> np.ndarray:
    """float64 score (cosine, or `backend`'s) of each query with each of its rows (-inf where row < 0), pair by pair.

    Each pair's dot product (of the query's key and the row's key) is summed on its own
    (numpy's pairwise sum over the last axis), so its value does not depend on the other
    queries in the block; keys are float32, computed row by row in float64 (`backend`).
    """
    out = np.empty(rows.shape, np.float64)
    keys = np.asarray(backend.queries(q), np.float64)
    step = max(1, _GATHER // max(1, rows.shape[1] * keys.shape[1]))
    for start in range(0, len(rows), step):  # blocks of queries bound the float64 gather
        sl = slice(start, start + step)
        vec = row_keys(searcher, np.maximum(rows[sl], 0).ravel(), backend).reshape(*rows[sl].shape, -1)
        vec = vec.astype(np.float64)
        out[sl] = (vec * keys[sl][:, None, :]).sum(axis=2)
    if backend is not COSINE:
        out += backend.offset(q)[:, None]
    return np.where(rows >= 0, out, -np.inf)


def weighted_sum(searcher: Searcher, q: np.ndarray, rows: np.ndarray, weights: np.ndarray,
                 normalise: bool = True) -> np.ndarray:
    """q + sum_j weights[:, j] * e[rows[:, j]] (float64; rows < 0 add nothing), L2-normalised if asked.

    Vectorised over queries and positions. Ranking by the dot product with
    the plain sum is ranking by cosine with it; left unnormalised, exact ties stay exact.
    """
    acc = np.asarray(q, np.float64).copy()
    w = np.where(rows >= 0, weights, 0.0)
    step = max(1, _GATHER // max(1, rows.shape[1] * q.shape[1]))
    for start in range(0, len(rows), step):  # blocks of queries: one gather each, bounded
        sl = slice(start, start + step)
        vec = searcher.vectors(np.maximum(rows[sl], 0).ravel()).reshape(*rows[sl].shape, -1)
        # a sum over a middle axis adds the list positions in order, for any block size
        acc[sl] += (w[sl, :, None] * vec.astype(np.float64)).sum(axis=1)
    return _normalise(acc) if normalise else acc


def exact_top(searcher: Searcher, q: np.ndarray, k: int, exclude: np.ndarray,
              backend: Backend = COSINE) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows per query (exclude (Q, m) rows, -1 = none) by `backend`'s score, re-scored exactly,
    canonical order.

    Returns float32 scores (Q, k) (-inf where empty) and int64 rows (-1 where empty).
    """
    width = k + exclude.shape[1] + MARGIN
    cand = np.asarray(searcher.candidates(q, width), dtype=np.int64)
    banned = (cand[:, :, None] == exclude[:, None, :]).any(axis=2)
    cand = np.where(banned, -1, cand)
    s = pair_scores(searcher, q, cand, backend)
    order = np.lexsort((np.where(cand >= 0, cand, np.iinfo(np.int64).max), -s), axis=1)[:, :k]
    s, cand = np.take_along_axis(s, order, axis=1), np.take_along_axis(cand, order, axis=1)
    if s.shape[1] < k:  # fewer candidates than k: pad
        pad = k - s.shape[1]
        s = np.pad(s, ((0, 0), (0, pad)), constant_values=-np.inf)
        cand = np.pad(cand, ((0, 0), (0, pad)), constant_values=-1)
    return s.astype(np.float32), np.where(np.isfinite(s), cand, -1)


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class Ranker:
    """The ranking steps of one `PipelineState`, over any `Searcher`."""

    def __init__(self, state: PipelineState, depth: int = K):
        self.state, self.settings, self.depth = state, state.settings, depth
        self.backend = state.backend

    def query_stats(self, q: np.ndarray) -> np.ndarray | None:
        return self.state.row_stats(q)

    def rank(self, searcher: Searcher, queries: np.ndarray, k: int, self_rows: np.ndarray | None = None,
             query_stats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) (Q, k) for L2-normalised queries: the whole pipeline, in query blocks.

        `self_rows` (Q,) are the queries' own rows (excluded from their lists; -1 = not in
        the collection). `query_stats` (Q, 2) are their stored AS-norm statistics (computed
        when None). Scores are the query's cosine with each listed row, under either back end.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        own = np.full(len(q), -1, np.int64) if self_rows is None else np.asarray(self_rows, np.int64)
        width = min(max(k, self.depth), searcher.size - int((own >= 0).any()))
        if width < 1 or len(q) == 0:
            return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        out_s, out_r = [], []
        for start in range(0, len(q), _CHUNK):
            sl = slice(start, start + _CHUNK)
            stats = None if query_stats is None else query_stats[sl]
            s, r = self._rank_block(searcher, q[sl], own[sl, None], width, stats)
            out_s.append(s)
            out_r.append(r)
        s, r = np.concatenate(out_s), np.concatenate(out_r)
        if k > width:
            s = np.pad(s, ((0, 0), (0, k - width)), constant_values=-np.inf)
            r = np.pad(r, ((0, 0), (0, k - width)), constant_values=-1)
        return s[:, :k], r[:, :k]

    def _rank_block(self, searcher: Searcher, q: np.ndarray, own: np.ndarray, width: int,
                    stats: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        st = self.settings
        s, r = exact_top(searcher, q, width, own, self.backend)
        if st.as_norm_top_k > 0 and self.state.cohort is not None:
            s, r = self._as_norm(searcher, q, s, r, stats)
        if self.backend is not COSINE and (st.expansion_depth > 0 or st.rerank_threshold is not None):
            s = pair_scores(searcher, q, r).astype(np.float32)  # the list stays; its weights speak cosine
        if st.expansion_depth > 0:
            s, r = self._expand(searcher, q, s, r, own, width)
        if st.rerank_threshold is not None:
            r = self._rerank(searcher, q, s, r, own, width, st.rerank_threshold)
        return pair_scores(searcher, q, r).astype(np.float32), r

    def _as_norm(self, searcher: Searcher, q: np.ndarray, s: np.ndarray, r: np.ndarray,
                 stats: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The list reordered by AS-norm (ties keep the search's order); raw cosines kept."""
        qs = stats if stats is not None else self.query_stats(q)
        ts = searcher.row_stats(np.maximum(r, 0).ravel())
        if ts is None:  # a collection without stored statistics: compute them for the listed rows
            ts = self.state.row_stats(searcher.vectors(np.maximum(r, 0).ravel()))
        ts = ts.reshape(*r.shape, 2)
        normed = as_norm(np.where(r >= 0, s, -np.inf), (qs[:, 0], qs[:, 1]), (ts[..., 0], ts[..., 1]))
        order = np.argsort(-normed, axis=1, kind="stable")
        return np.take_along_axis(s, order, axis=1), np.take_along_axis(r, order, axis=1)

    def _expand(self, searcher: Searcher, q: np.ndarray, s: np.ndarray, r: np.ndarray, own: np.ndarray,
                width: int) -> tuple[np.ndarray, np.ndarray]:
        """A second search from the query plus its first neighbours weighted by cosine ** ALPHA
        (their normalised sum, scored by the back end; the new list's scores are cosines again)."""
        d = self.settings.expansion_depth
        rows = r[:, :d]
        w = np.where(rows >= 0, np.maximum(s[:, :d].astype(np.float64), 0.0), 0.0) ** ALPHA
        s, r = exact_top(searcher, weighted_sum(searcher, q, rows, w), width, own, self.backend)
        if self.backend is not COSINE:
            s = pair_scores(searcher, q, r).astype(np.float32)
        return s, r

    def _rerank(self, searcher: Searcher, q: np.ndarray, s: np.ndarray, r: np.ndarray, own: np.ndarray,
                width: int, threshold: float) -> np.ndarray:
        """The seed's threshold rerank: rows above `threshold` first, then the rows nearest their sum."""
        above = (r >= 0) & (s.astype(np.float64) > threshold)
        m = above.sum(axis=1)
        order = np.argsort(~above, axis=1, kind="stable")
        listed = np.where(np.arange(r.shape[1]) < m[:, None], np.take_along_axis(r, order, axis=1), -1)
        out = r.copy()
        full = m >= width
        out[full] = listed[full, :width]
        todo = np.flatnonzero((m > 0) & (m < width))
        if todo.size == 0:
            return out
        mq = m[todo][:, None]
        head = listed[todo, : int(mq.max())]
        # cosine: the plain sum (exact ties stay exact); PLDA, not scale-free: the sum back on the sphere
        sums = weighted_sum(searcher, q[todo], head, np.ones(head.shape), normalise=self.backend is not COSINE)
        _, fill = exact_top(searcher, sums, width, np.concatenate([own[todo], head], axis=1), self.backend)
        cols = np.arange(width)[None, :]
        from_fill = np.take_along_axis(fill, np.maximum(cols - mq, 0), axis=1)
        out[todo] = np.where(cols < mq, listed[todo, :width], from_fill)
        return out


def rank_all(vectors: np.ndarray, state: PipelineState, k: int = K, depth: int = K,
             searcher: Searcher | None = None) -> np.ndarray:
    """Every row's list against all others (self excluded): `predict` and `evaluate`'s ranking.

    `k` is capped at N - 1 (a list of every other row); `searcher` defaults to exact
    search over `vectors` (`MatrixSearcher`), or pass an approximate one over the same rows.
    """
    stats = state.row_stats(vectors)
    searcher = searcher or MatrixSearcher(vectors, stats, state.backend)
    k = min(k, len(vectors) - 1)
    return Ranker(state, depth).rank(searcher, vectors, k, np.arange(len(vectors)), stats)[1]


__all__ = ["ALPHA", "K", "InferenceSettings", "MatrixSearcher", "PipelineState", "Ranker", "Searcher",
           "exact_top", "pair_scores", "rank_all", "weighted_sum"]
