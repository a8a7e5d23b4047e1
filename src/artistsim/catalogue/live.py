"""A catalogue open for questions and additions: what the CLI verbs and the HTTP service share.

`LiveCatalogue` owns the current snapshot (swapped whole under a lock by `add`, so a
query never sees a half-added track), the ranking pipeline stored with the catalogue
(`artistsim.search.pipeline`: every answer is ranked by it, as `predict` ranks), the
embedder (loaded on first need: trackid queries work without the runs), and the artist
model for identification (rebuilt lazily for the generation that asks for it).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artistsim.catalogue.build import (catalogue_embedder, catalogue_frontend, check_features, pipeline_state,
                                       with_stats)
from artistsim.catalogue.enrol import PldaArtists, served_model
from artistsim.catalogue.identify import ArtistModel, identify
from artistsim.catalogue.snapshot import (MAX_K, Snapshot, SnapshotSearcher, check_runs, labelled, open_snapshot,
                                          reopen, search_settings)
from artistsim.catalogue.store import MANIFEST, UNKNOWN_ARTIST, CatalogueError, Manifest, Part, append, check_part
from artistsim.data.arrays import load_array
from artistsim.data.layout import MAX_FRAMES, DataError
from artistsim.data.provenance import Frontend
from artistsim.embed import Embedder, l2_normalise
from artistsim.search.pipeline import Ranker


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


def featurize_audio(path: str | Path, expected: Frontend) -> np.ndarray:
    """(D, T) features of an audio file by the front end the catalogue's runs were trained on.

    `expected` (the catalogue's provenance `Frontend`) names it: audio is refused (409,
    naming both) when no front end `featurize` knows makes those frames (runs trained on
    the competition's CNN features, say), since the runs would embed features they never
    saw. Tracks longer than the models' 81 frames keep their central 81 frames.
    """
    from artistsim.audio import frontends

    try:
        name = frontends.name_of(expected)
    except frontends.FrontendError as exc:
        raise Unavailable(f"audio refused: the catalogue's runs were trained on features of another front end; "
                          f"{exc}; send features of the runs' front end instead") from None
    x = np.asarray(frontends.featurize_file(path, name), dtype=np.float32)
    if x.ndim == 2 and x.shape[1] > MAX_FRAMES:
        start = (x.shape[1] - MAX_FRAMES) // 2
        x = x[:, start : start + MAX_FRAMES]
    return check_features(x, str(path), expected.dim)


def featurize_upload(data: bytes, suffix: str, expected: Frontend, field: str = "audio") -> np.ndarray:
    """(D, T) features of uploaded audio bytes: what the service and the identify page share.

    Why a temporary file: the decoders read files. A bad upload is a DataError naming
    `field` (never the server's temporary path); a catalogue whose runs cannot take audio
    stays Unavailable (409).
    """
    with tempfile.NamedTemporaryFile(prefix="artistsim-upload-", suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            return featurize_audio(tmp.name, expected)
        except Unavailable:
            raise
        except (ValueError, OSError) as exc:
            reason = (str(exc) or type(exc).__name__).replace(tmp.name, "upload").splitlines()[0]
            raise DataError(f"{field}: {reason}") from None


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
        self.state = pipeline_state(self.root, manifest)
        self.snapshot: Snapshot = open_snapshot(self.root, manifest, self.state.backend)
        self.ranker = Ranker(self.state)
        self.frontend = catalogue_frontend(manifest)
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
                self._embedder = catalogue_embedder(self.manifest, self.state, self.device)
            return self._embedder

    def embed(self, tracks: list[np.ndarray]) -> np.ndarray:
        return self.embedder().embed_arrays(tracks)

    # ------------------------------------------------------------------ questions

    def similar(self, vectors: np.ndarray, k: int, exclude_rows: np.ndarray | None = None,
                snapshot: Snapshot | None = None) -> Neighbours:
        """The k catalogue tracks the pipeline ranks first for each vector (as `predict` would).

        `exclude_rows` are the queries' own rows when they are catalogued tracks (they are
        left out of their lists, and their stored cohort statistics used); other vectors
        are L2-normalised first. `snapshot` pins the generation `exclude_rows` were read
        from (`vectors_of`), so that an add swapping snapshots in between cannot shift what
        a row means.
        """
        k = check_k(k)
        snap = snapshot or self.snapshot  # one generation for the whole answer
        stats = None
        if exclude_rows is not None:
            exclude_rows = np.asarray(exclude_rows, dtype=np.int64)
            stats = snap.row_stats(np.maximum(exclude_rows, 0)) if (exclude_rows >= 0).all() else None
            q = np.asarray(vectors, np.float32)
        else:
            q = l2_normalise(np.asarray(vectors, np.float32))
        scores, rows = self.ranker.rank(SnapshotSearcher(snap), q, k, exclude_rows, stats)
        ids, arts = snap.trackids(), snap.artists()
        safe = np.maximum(rows, 0)
        return Neighbours(np.where(rows >= 0, ids[safe], -1), scores, np.where(rows >= 0, arts[safe], UNKNOWN_ARTIST))

    def similar_tracks(self, trackids: np.ndarray, k: int) -> Neighbours:
        """Each catalogued track's k answers (itself excluded), all on one snapshot: `query --trackid`."""
        snap = self.snapshot
        vec, rows = self.vectors_of(np.asarray(trackids, dtype=np.int64), snap)
        return self.similar(vec, k, rows, snap)

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
        part = with_stats(check_part(embeddings, trackids, artists, self.snapshot.dim), self.state)
        with self._lock:
            clash = self.snapshot.rows_of(part.trackids) >= 0
            if clash.any():
                raise CatalogueError(f"trackid(s) already in the catalogue: {part.trackids[clash][:10].tolist()}")
            manifest = append(self.root, part, compact=False, backend=self.state.backend)
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
                "runs_available": not self.missing_runs, "calibration": m.calibration,
                "pipeline": self.state.settings.to_record(), "frontend": self.frontend.to_dict()}


def load_features_file(path: str | Path, dim: int | None = None) -> np.ndarray:
    """A (D, T) .npy features file, checked (`artistsim.data.arrays.load_array`: complete,
    float, no pickles, finite; then `check_features`: shape, magnitudes; D must be `dim` when given)."""
    arr = load_array(path, dtypes=("float16", "float32", "float64"), ndim=2, what="features file", max_abs=None)
    return check_features(arr, str(path), dim)


def part_from(embeddings: np.ndarray, trackids: np.ndarray, artists: np.ndarray | None) -> Part:
    """New tracks' arrays (artists unknown unless given), before their cohort statistics."""
    a = np.full(len(trackids), UNKNOWN_ARTIST) if artists is None else artists
    return Part(embeddings, np.asarray(trackids, np.int64), np.asarray(a, np.int64))
