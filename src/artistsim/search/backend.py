"""The score a ranking orders by: cosine, or the PLDA log-likelihood ratio as an inner product.

Why a search space apart from the embedding space: the pipeline's searches (first list,
query expansion, rerank refill) are top-k inner-product searches. Under cosine the
searched rows are the L2-normalised embeddings themselves. Under PLDA (two-covariance,
`artistsim.scoring.plda.PairLLR`) a catalogue row is searched by its *track key*
[u, g . u^2] and a query by its *query key* [u, 1]: their inner product orders candidates
exactly as the pairwise LLR does, so the same exact search and float64 re-scoring
serve both back ends. An approximate index (HNSW, IVF) is built over other coordinates of
the same tracks, its `index_rows` (`metric` "ip": the rows themselves; "l2": PLDA's
points, whose nearest neighbours to a query's point are its candidates by LLR, see
`PairLLR.points`), because graph and cluster indexes search inner products of keys whose
norms differ badly (measured: recall 0.02 of the exact top 100 under HNSW, 0.96 over
the points, in a quick run at 20,000 tracks). What stays in the embedding space under
either back end: the vectors the searcher hands back (`Searcher.vectors`), the weighted
sums of query expansion and rerank (averages of embeddings, re-normalised, then scored
by the back end), and the cosines their weights and thresholds are stated in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from artistsim.scoring.plda import PairLLR


class Backend(Protocol):
    """How queries and rows enter the inner-product search, and what completes the score."""

    name: str

    def queries(self, q: np.ndarray) -> np.ndarray:
        """(Q, e) float32 query keys of L2-normalised query vectors."""

    def rows(self, x: np.ndarray) -> np.ndarray:
        """(n, e) float32 track keys of L2-normalised row vectors."""

    def offset(self, q: np.ndarray) -> np.ndarray:
        """(Q,) float64 added to every score of a query (its own terms of a symmetric score)."""

    metric: str  # of an approximate index over `index_rows`: "ip" (inner product) or "l2"

    def index_rows(self, x: np.ndarray) -> np.ndarray:
        """(n, d) float32 what an approximate index holds of rows."""

    def index_queries(self, q: np.ndarray) -> np.ndarray:
        """(Q, d) float32 what an approximate index is asked with."""


@dataclass(frozen=True)
class Cosine:
    """The seed's score: rows and queries are searched as they are."""

    name: str = "cosine"
    metric: str = "ip"

    def queries(self, q: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(q, dtype=np.float32)

    def rows(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    def offset(self, q: np.ndarray) -> np.ndarray:
        return np.zeros(len(q))

    index_rows = rows
    index_queries = queries


@dataclass(frozen=True)
class Plda:
    """The pairwise two-covariance LLR (nats): key inner product + the query's own term + constant."""

    model: PairLLR
    name: str = "plda"
    metric: str = "l2"

    def queries(self, q: np.ndarray) -> np.ndarray:
        return self.model.query_keys(q)

    def rows(self, x: np.ndarray) -> np.ndarray:
        return self.model.track_keys(x)

    def offset(self, q: np.ndarray) -> np.ndarray:
        # the query's g . u^2 as its float32 track key holds it: the same value whichever block it came in
        return self.model.track_keys(q)[:, -1].astype(np.float64) + self.model.const

    def index_rows(self, x: np.ndarray) -> np.ndarray:
        return self.model.points(x)

    def index_queries(self, q: np.ndarray) -> np.ndarray:
        return self.model.query_points(q)


COSINE = Cosine()

__all__ = ["COSINE", "Backend", "Cosine", "Plda"]
