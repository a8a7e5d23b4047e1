"""A catalogue open for questions and additions: what the CLI verbs and the HTTP service share.

`LiveCatalogue` owns the current snapshot (swapped whole under a lock by `add`, so a
query never sees a half-added track), the embedder (loaded on first need: trackid
queries work without the runs), and the artist model for identification (rebuilt
lazily for the generation that asks for it).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artistsim.catalogue.build import Embedder, check_features
from artistsim.catalogue.enrol import PldaArtists, served_model
from artistsim.catalogue.identify import ArtistModel, identify
from artistsim.catalogue.snapshot import (MAX_K, Snapshot, check_runs, labelled, open_snapshot, reopen,
                                          search_settings)
from artistsim.catalogue.store import MANIFEST, UNKNOWN_ARTIST, CatalogueError, Manifest, Part, append, check_part
from artistsim.data.layout import MAX_FRAMES, read_features

RERANK_THRESHOLD = 0.85


class NotFound(ValueError):
    """A trackid that is not in the catalogue (a ValueError: the CLI exits 2, HTTP answers 404)."""


class Unavailable(ValueError):
    """A capability this catalogue cannot offer now (runs gone, no audio front end, no labels).

    `status` is the HTTP status the service answers with (the request cannot be served
    as sent: 409 for the catalogue's state, 415 for an input kind it cannot read).
    """

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


def featurize_audio(path: str | Path) -> np.ndarray:
    """(512, T) features of an audio file through `artistsim.data.featurize` (when installed).

    Tracks longer than the models' 81 frames keep their central 81 frames.
    """
    try:
        from artistsim.data.featurize import featurize_file  # lands with the audio front end
    except ImportError:
        raise Unavailable("audio input needs artistsim.data.featurize, which this installation lacks; "
                          "send features (512, T) instead", status=415) from None
    x = np.asarray(featurize_file(path), dtype=np.float32)
    if x.ndim == 2 and x.shape[1] > MAX_FRAMES:
        start = (x.shape[1] - MAX_FRAMES) // 2
        x = x[:, start : start + MAX_FRAMES]
    return check_features(x, str(path))


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in 1..{MAX_K}, got {k}")
    return int(k)


@dataclass
class Neighbours:
    trackids: np.ndarray  # (Q, k)
    scores: np.ndarray
    artists: np.ndarray


class LiveCatalogue:
    """The catalogue at `root`, open for queries, identification and adds (thread-safe)."""

    def __init__(self, root: str | Path, device: str | None = None):
        self.root = Path(root)
        self.device = device
        manifest = Manifest.read(self.root)
        self.missing_runs = check_runs(manifest, self.root)
        self.manifest = manifest
        self.snapshot: Snapshot = open_snapshot(self.root, manifest)
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None
        self._artists: tuple[int, ArtistModel | PldaArtists] | None = None
        self._last_look = time.monotonic()
        self._stamp = os.stat(self.root / MANIFEST).st_mtime_ns

    # ------------------------------------------------------------------ embedding

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                if not self.manifest.runs:
                    raise Unavailable("the catalogue was built from embeddings without runs: only trackid and "
                                      "embedding queries are possible")
                if self.missing_runs:
                    raise Unavailable(f"the catalogue's run checkpoint(s) {self.missing_runs} are gone: "
                                      f"only trackid queries are possible")
                self._embedder = Embedder.for_manifest(self.manifest, self.device)
            return self._embedder

    def embed(self, tracks: list[np.ndarray]) -> np.ndarray:
        return self.embedder().embed_arrays(tracks)

    # ------------------------------------------------------------------ questions

    def similar(self, vectors: np.ndarray, k: int, exclude_rows: np.ndarray | None = None,
                rerank: bool = False, snapshot: Snapshot | None = None) -> Neighbours:
        """The k catalogue tracks nearest to each vector (cosine), optionally query-expanded.

        `snapshot` pins the generation `exclude_rows` were read from (`vectors_of`), so
        that an add swapping snapshots in between cannot shift what a row means.
        """
        k = check_k(k)
        snap = snapshot or self.snapshot  # one generation for the whole answer
        scores, rows = snap.search(vectors, k, exclude_rows)
        if rerank:
            scores, rows = _expand(snap, np.asarray(vectors, np.float32), scores, rows, k, exclude_rows)
        ids, arts = snap.trackids(), snap.artists()
        safe = np.maximum(rows, 0)
        return Neighbours(np.where(rows >= 0, ids[safe], -1), scores, np.where(rows >= 0, arts[safe], UNKNOWN_ARTIST))

    def vectors_of(self, trackids: np.ndarray, snapshot: Snapshot | None = None) -> tuple[np.ndarray, np.ndarray]:
        snap = snapshot or self.snapshot
        rows = snap.rows_of(trackids)
        if (rows < 0).any():
            raise NotFound(f"trackid {int(np.asarray(trackids)[rows < 0][0])} is not in the catalogue")
        return snap.vectors(rows), rows

    def artist_model(self) -> ArtistModel | PldaArtists:
        snap = self.snapshot
        cached = self._artists
        if cached is not None and cached[0] == snap.generation:
            return cached[1]
        rows = labelled(snap)
        if len(np.unique(snap.artists()[rows])) < 2:
            raise Unavailable("identification needs at least two labelled artists in the catalogue")
        model = served_model(self.manifest.calibration, snap.vectors(rows), snap.artists()[rows])
        self._artists = (snap.generation, model)
        return model

    def identify(self, vectors: np.ndarray, k: int = 5, threshold: float | None = None) -> dict[str, Any]:
        model = self.artist_model()
        cal = self.manifest.calibration or {}
        thr = threshold if threshold is not None else cal.get("threshold")
        result = identify(model, vectors, float("-inf") if thr is None else thr, k)
        return {"threshold": thr, "calibrated": thr is not None and threshold is None, "result": result}

    # ------------------------------------------------------------------ additions

    def add(self, embeddings: np.ndarray, trackids: np.ndarray, artists: np.ndarray | None = None) -> int:
        """Persist new tracks (a new generation on disk), then swap in a snapshot holding them."""
        trackids = np.asarray(trackids, dtype=np.int64).reshape(-1)
        artists = np.full(len(trackids), UNKNOWN_ARTIST) if artists is None else np.asarray(artists, np.int64)
        part = check_part(embeddings, trackids, artists, self.snapshot.dim)
        with self._lock:
            clash = self.snapshot.rows_of(part.trackids) >= 0
            if clash.any():
                raise CatalogueError(f"trackid(s) already in the catalogue: {part.trackids[clash][:10].tolist()}")
            manifest = append(self.root, part, compact=False)
            if manifest.main == self.manifest.main and manifest.tail[:-1] == self.manifest.tail:
                self.snapshot = self.snapshot.with_tail(part, manifest.generation)
            else:  # another writer's adds, or the tail's segments merged: read what changed
                self.snapshot = reopen(self.root, manifest, self.snapshot, self.manifest)
            self.manifest = manifest
            return manifest.generation

    def refresh(self) -> bool:
        """Take in what other writers (`artistsim index add`) committed since; True if anything changed."""
        with self._lock:
            manifest = Manifest.read(self.root)
            if manifest.generation == self.manifest.generation:
                return False
            self.snapshot = reopen(self.root, manifest, self.snapshot, self.manifest)
            self.manifest = manifest
            return True

    def maybe_refresh(self, interval: float = 1.0) -> None:
        """`refresh` when the manifest file changed, looking at most once per `interval` seconds.

        A failed read (a concurrent compaction swept the files just named) keeps the
        current snapshot; the next look tries again.
        """
        now = time.monotonic()
        if now - self._last_look < interval:
            return
        self._last_look = now
        try:
            stamp = os.stat(self.root / MANIFEST).st_mtime_ns
            if stamp != self._stamp:
                self.refresh()
                self._stamp = stamp
        except (OSError, CatalogueError):
            return

    def stats(self) -> dict[str, Any]:
        snap, m = self.snapshot, self.manifest
        arts = snap.artists()
        return {"tracks": snap.size, "indexed": len(snap.main), "tail": len(snap.tail), "dim": snap.dim,
                "generation": snap.generation, "labelled_tracks": int((arts != UNKNOWN_ARTIST).sum()),
                "artists": int(len(np.unique(arts[arts != UNKNOWN_ARTIST]))), "index": m.index,
                "search": search_settings(snap.index),
                "runs": [{k: r[k] for k in ("path", "sha256", "model")} for r in m.runs], "embed": m.embed,
                "runs_available": not self.missing_runs, "calibration": m.calibration}


def _expand(snap: Snapshot, q: np.ndarray, scores: np.ndarray, rows: np.ndarray, k: int,
            exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The seed's threshold query expansion for ad-hoc queries (see `artistsim.search.rerank`).

    Neighbours above RERANK_THRESHOLD stay first; the rest of the list is refilled with the
    tracks nearest to the sum of the query and those neighbours, listed ones skipped.
    """
    above = (rows >= 0) & (scores > RERANK_THRESHOLD)
    m = above.sum(axis=1)
    todo = np.flatnonzero((m > 0) & (m < k))
    if todo.size == 0:
        return scores, rows
    vec = q[todo] + _sum_vectors(snap, rows[todo], above[todo])
    vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    wide = int(m.max()) + k + 1
    s2, r2 = snap.search(vec, wide, None)
    listed = np.where(above[todo], rows[todo], -2)
    skip = (r2[:, :, None] == listed[:, None, :]).any(axis=2) | (r2 < 0)
    if exclude is not None:
        skip |= r2 == np.asarray(exclude)[todo][:, None]
    order = np.argsort(skip, axis=1, kind="stable")
    fill_r, fill_s = np.take_along_axis(r2, order, axis=1), np.take_along_axis(s2, order, axis=1)
    cols = np.arange(k)[None, :]
    mq = m[todo][:, None]
    head = np.argsort(~above[todo], axis=1, kind="stable")
    head_r, head_s = np.take_along_axis(rows[todo], head, axis=1), np.take_along_axis(scores[todo], head, axis=1)
    pick = np.maximum(cols - mq, 0)
    out_r, out_s = rows.copy(), scores.copy()
    out_r[todo] = np.where(cols < mq, head_r, np.take_along_axis(fill_r, pick, axis=1))
    out_s[todo] = np.where(cols < mq, head_s, np.take_along_axis(fill_s, pick, axis=1))
    return out_s, out_r


def _sum_vectors(snap: Snapshot, rows: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Sum of the kept rows' vectors per query: one gather, no loop over queries."""
    flat = snap.vectors(np.maximum(rows, 0).ravel()).reshape(rows.shape[0], rows.shape[1], -1)
    return (flat * keep[:, :, None]).sum(axis=1)


def load_features_file(path: str | Path) -> np.ndarray:
    """A (512, T) .npy features file, checked (`artistsim.data.layout.read_features`: complete,
    float, no pickles, finite; then `check_features`: magnitudes)."""
    return check_features(read_features(Path(path)), str(path))


def part_from(embeddings: np.ndarray, trackids: np.ndarray, artists: np.ndarray | None) -> Part:
    a = np.full(len(trackids), UNKNOWN_ARTIST) if artists is None else artists
    return Part(embeddings, np.asarray(trackids, np.int64), np.asarray(a, np.int64))
