"""What the curator pages compute once per generation of the catalogue, and keep.

Why cached: the artist centroids, the audit's ranking and the map read every labelled
track (seconds at a million tracks); the pages that show them are opened again and
again between two changes of the catalogue. Each is computed on first need for the
snapshot's generation and kept until the generation moves (an add, a relabel); one lock
per value keeps two requests from computing the same thing twice (and a long audit from
holding up a page that only needs the names). Track pages need none of it:
they read the snapshot and the names only, which keeps them fast at any size.

The audit scores every labelled track against every artist: minutes on a large
catalogue, longer than a browser waits for a page. It runs in a background thread,
started by the first page that asks; a page waits up to AUDIT_WAIT seconds for it (a
small catalogue's audit is ready by then) and otherwise says it is being computed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from artistsim.catalogue.audit import Audit, audit
from artistsim.catalogue.live import LiveCatalogue, Unavailable
from artistsim.catalogue.names import Names, read_names
from artistsim.catalogue.snapshot import Snapshot, labelled

T = TypeVar("T")
AUDIT_WAIT = 3.0  # seconds a page waits for the audit before answering "being computed"


class Job:
    """A value computed in a background thread for one generation."""

    def __init__(self, generation: int, make: Callable[[], Any]):
        self.generation = generation
        self.started = time.monotonic()
        self.done = threading.Event()
        self.value: Any = None
        self.error: Exception | None = None
        threading.Thread(target=self._run, args=(make,), name="artistsim-audit", daemon=True).start()

    def _run(self, make: Callable[[], Any]) -> None:
        try:
            self.value = make()
        except Exception as exc:  # handed to the page that asks next (a 4xx for the user's catalogue)
            self.error = exc
        finally:
            self.done.set()


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
        self._audit: Job | None = None

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

    def review(self, snap: Snapshot, wait: float | None = None) -> Review | None:
        """The generation's audit, or None while it is still being computed (started on first ask)."""
        with self._locks["review"]:
            job = self._audit
            if job is None or job.generation != snap.generation:
                job = self._audit = Job(snap.generation, lambda: _review(snap, self.audit_method))
        job.done.wait(AUDIT_WAIT if wait is None else wait)
        if job.error is not None:
            raise job.error
        return job.value

    def audit_seconds(self) -> float:
        """How long the audit being computed has run."""
        job = self._audit
        return time.monotonic() - job.started if job is not None else 0.0

    def cached(self, key: str, stamp: Any, make: Callable[[], T]) -> T:
        """Any other value computed once per `stamp` (the map's picture: generation, audit ready)."""
        return self._cached(key, stamp, make)


def _artists(snap: Snapshot) -> Artists:
    rows = labelled(snap)
    if len(rows) == 0:
        raise Unavailable("the catalogue has no labelled tracks: no artists to show")
    ids, inverse = np.unique(snap.artists()[rows], return_inverse=True)
    sums = torch.zeros((len(ids), snap.dim), dtype=torch.float64)  # one scatter-add, no loop over artists
    sums.index_add_(0, torch.from_numpy(inverse.astype(np.int64)), torch.from_numpy(snap.vectors(rows)).double())
    centroids = torch.nn.functional.normalize(sums, dim=1).float().numpy()
    return Artists(ids, centroids, sums.float().numpy(), np.bincount(inverse, minlength=len(ids)))


def _review(snap: Snapshot, method: str) -> Review:
    rows = labelled(snap)
    if len(np.unique(snap.artists()[rows])) < 2:
        raise Unavailable("an audit needs at least two labelled artists in the catalogue")
    result = audit(snap.vectors(rows), snap.artists()[rows], method=method)
    return Review(result, snap.trackids()[rows][result.rows])
