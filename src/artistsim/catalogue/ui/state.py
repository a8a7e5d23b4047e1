"""What the curator pages compute once per generation of the catalogue, and keep.

Why cached: the artist centroids, the audit's ranking and the map read every labelled
track (seconds at a million tracks); the pages that show them are opened again and
again between two changes of the catalogue. Each is computed on first need for the
snapshot's generation and kept until the generation moves (an add, a relabel); one lock
per value keeps two requests from computing the same thing twice (and a long audit from
holding up a page that only needs the names). Track pages need none of it:
they read the snapshot and the names only, which keeps them fast at any size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from artistsim.catalogue.audit import Audit, audit
from artistsim.catalogue.live import LiveCatalogue, Unavailable
from artistsim.catalogue.names import Names, read_names
from artistsim.catalogue.snapshot import Snapshot, labelled
from artistsim.search.scorenorm import artist_centroids

T = TypeVar("T")


@dataclass(frozen=True)
class Artists:
    """Centroids of the labelled artists of one generation (cosine of normalised tracks' means)."""

    ids: np.ndarray  # (A,) sorted artist ids
    centroids: np.ndarray  # (A, d) L2-normalised
    sums: np.ndarray  # (A, d) sums of the tracks' vectors (leave-one-out similarities)
    counts: np.ndarray  # (A,)

    def column(self, artist: int) -> int:
        pos = int(np.searchsorted(self.ids, artist))
        return pos if pos < len(self.ids) and self.ids[pos] == artist else -1

    def similarity(self, vector: np.ndarray, artist: int, without_self: bool = False) -> float | None:
        """Cosine of a (normalised) track vector to an artist's centroid; `without_self`: the track left out."""
        col = self.column(artist)
        if col < 0:
            return None
        c = self.sums[col] - (vector if without_self else 0.0)
        norm = float(np.linalg.norm(c))
        return float(c @ vector) / norm if norm > 1e-9 else None


@dataclass(frozen=True)
class Review:
    """The audit of one generation: catalogue trackids most suspect first."""

    audit: Audit
    trackids: np.ndarray  # (n,) trackid of each ranked row, in the audit's order


class CuratorState:
    """Per-generation caches over a live catalogue (thread-safe)."""

    def __init__(self, cat: LiveCatalogue, audit_method: str = "plda"):
        self.cat = cat
        self.audit_method = audit_method
        self._locks = {key: threading.Lock() for key in ("names", "artists", "review", "map")}
        self._cache: dict[str, tuple[Any, Any]] = {}

    def _cached(self, key: str, stamp: Any, make: Callable[[], T]) -> T:
        hit = self._cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        with self._locks[key]:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[1]
            value = make()
            self._cache[key] = (stamp, value)
            return value

    def names(self) -> Names:
        manifest = self.cat.manifest
        return self._cached("names", manifest.names, lambda: read_names(self.cat.root, manifest))

    def artists(self, snap: Snapshot) -> Artists:
        return self._cached("artists", snap.generation, lambda: _artists(snap))

    def review(self, snap: Snapshot) -> Review:
        return self._cached("review", snap.generation, lambda: _review(snap, self.audit_method))

    def cached(self, key: str, snap: Snapshot, make: Callable[[], T]) -> T:
        """Any other per-generation value (the map's picture)."""
        return self._cached(key, snap.generation, make)


def _artists(snap: Snapshot) -> Artists:
    rows = labelled(snap)
    if len(rows) == 0:
        raise Unavailable("the catalogue has no labelled tracks: no artists to show")
    labels = snap.artists()[rows]
    vectors = snap.vectors(rows)
    ids, centroids = artist_centroids(vectors, labels)
    inverse = np.searchsorted(ids, labels)
    sums = np.zeros((len(ids), snap.dim), dtype=np.float64)
    np.add.at(sums, inverse, vectors)
    return Artists(ids, centroids, sums.astype(np.float32), np.bincount(inverse, minlength=len(ids)))


def _review(snap: Snapshot, method: str) -> Review:
    rows = labelled(snap)
    if len(np.unique(snap.artists()[rows])) < 2:
        raise Unavailable("an audit needs at least two labelled artists in the catalogue")
    result = audit(snap.vectors(rows), snap.artists()[rows], method=method)
    return Review(result, snap.trackids()[rows][result.rows])
