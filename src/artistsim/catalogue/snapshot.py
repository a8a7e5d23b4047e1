"""An open catalogue in memory: an immutable snapshot that queries read and adds replace.

Why immutable: the service answers queries on many threads while tracks are added. A
snapshot is never changed after it is made; an add builds a new snapshot that shares
the main segment and index (read-only) and owns a longer tail, and the service swaps a
single reference under a lock. A query takes the reference once at its start, so it
sees every track of one generation or of the next, never a half-added track. FAISS
searches on an index nobody mutates are thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from artistsim.catalogue.store import (UNKNOWN_ARTIST, CatalogueError, Manifest, Part, concat_parts, read_index,
                                       read_segment)
from artistsim.runs import file_sha256
from artistsim.search.backend import COSINE, Backend
from artistsim.search.exact import search_prepared

EF_SEARCH = 128
NPROBE = 16
# IVF-PQ lists are ~sqrt(N) (fewer, larger than IVF's) and its codes coarse: more lists are
# visited. Measured at 1M clustered tracks (bench_serve): same-artist recall 0.70 / 0.81 /
# 0.88 at nprobe 16 / 32 / 64 (HNSW: 0.91), 0.6 / 0.8 / 1.3 ms per query.
NPROBE_PQ = 64
RESCORE = 4  # IVF-PQ: candidates per wanted neighbour, re-scored exactly from the segment
MAX_K = 1000
SMALL_SEARCH = 2**22  # query x row pairs up to which exact search is one numpy product


def check_runs(manifest: Manifest, root: Path) -> list[str]:
    """Problems with the runs the catalogue was built with: changed checkpoints raise, missing ones are listed.

    A checkpoint whose bytes differ from the recorded fingerprint would embed new tracks
    in another space than the catalogue's: opening refuses it. A run that is gone only
    disables embedding (features / audio queries and adds); trackid queries still work.
    """
    missing = []
    for run in manifest.runs:
        ckpt = Path(run["path"]) / run["checkpoint"]
        if not ckpt.is_file():
            missing.append(str(ckpt))
            continue
        if file_sha256(ckpt) != run["sha256"]:
            raise CatalogueError(f"{root}: run {ckpt} changed since the catalogue was built (fingerprint "
                                 f"differs); rebuild the catalogue with `artistsim index build`")
    return missing


@dataclass(frozen=True)
class Snapshot:
    """One generation of the catalogue: main rows (indexed) then tail rows (exact)."""

    generation: int
    main: Part
    index: Any  # FAISS index over main.embeddings, or None for exact search
    tail: Part
    main_order: np.ndarray  # argsort of main.trackids
    tail_order: np.ndarray
    # the ranking's back end: exact search runs over its keys of the rows, the index was built for it
    backend: Backend = COSINE
    # main + tail trackids and artists, concatenated once per snapshot rather than per query
    all_trackids: np.ndarray = field(init=False, repr=False)
    all_artists: np.ndarray = field(init=False, repr=False)
    main_keys: np.ndarray = field(init=False, repr=False)  # exact search's rows (main under no index)
    tail_keys: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "all_trackids", np.concatenate([self.main.trackids, self.tail.trackids]))
        object.__setattr__(self, "all_artists", np.concatenate([self.main.artists, self.tail.artists]))
        object.__setattr__(self, "main_keys", self._keys(self.main.embeddings) if self.index is None
                           else self.main.embeddings)
        object.__setattr__(self, "tail_keys", self._keys(self.tail.embeddings))

    def _keys(self, x: np.ndarray) -> np.ndarray:
        """Rows as exact search reads them: their back end's keys, or the rows themselves (cosine; no copy)."""
        return x if self.backend is COSINE else self.backend.rows(np.asarray(x))

    @property
    def size(self) -> int:
        return len(self.main) + len(self.tail)

    @property
    def dim(self) -> int:
        return int(self.main.embeddings.shape[1])

    def trackids(self) -> np.ndarray:
        return self.all_trackids

    def artists(self) -> np.ndarray:
        return self.all_artists

    def embeddings(self) -> np.ndarray:
        """All rows (N, d); copies the main segment: for audits, not for queries."""
        return np.concatenate([np.asarray(self.main.embeddings), self.tail.embeddings])

    def rows_of(self, trackids: np.ndarray) -> np.ndarray:
        """Catalogue row of each trackid, -1 where unknown (vectorised binary searches)."""
        t = np.asarray(trackids, dtype=np.int64)
        out = np.full(len(t), -1, dtype=np.int64)
        for ids, order, offset in ((self.main.trackids, self.main_order, 0),
                                   (self.tail.trackids, self.tail_order, len(self.main))):
            if len(ids) == 0:
                continue
            pos = np.minimum(np.searchsorted(ids, t, sorter=order), len(ids) - 1)
            hit = ids[order[pos]] == t
            out[hit] = order[pos[hit]] + offset
        return out

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        n0 = len(self.main)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        in_main = rows < n0
        out[in_main] = self.main.embeddings[rows[in_main]]
        out[~in_main] = self.tail.embeddings[rows[~in_main] - n0]
        return out

    def row_stats(self, rows: np.ndarray) -> np.ndarray | None:
        """(n, 2) stored AS-norm cohort statistics of rows, or None when the catalogue has none."""
        if self.main.stats is None:
            return None
        rows = np.asarray(rows, dtype=np.int64)
        n0 = len(self.main)
        out = np.empty((len(rows), 2), dtype=np.float32)
        in_main = rows < n0
        out[in_main] = self.main.stats[rows[in_main]]
        if self.tail.stats is not None:
            out[~in_main] = self.tail.stats[rows[~in_main] - n0]
        return out

    def with_tail(self, part: Part, generation: int) -> Snapshot:
        """A new snapshot with `part` appended to the tail; this one is left untouched."""
        tail = concat_parts([self.tail, part]) if len(self.tail) else part
        return Snapshot(generation, self.main, self.index, tail, self.main_order,
                        np.argsort(tail.trackids, kind="stable"), self.backend)

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k catalogue rows by the back end's score (cosine, or PLDA's up to a per-query constant) for
        L2-normalised queries; `exclude` (Q,) drops one row each.

        The main segment goes through its index (or exact search), the tail through exact
        search, and the two lists are merged by score. Slots beyond the catalogue's size
        hold -1 / -inf, as in `artistsim.search.exact`.
        """
        raw = np.ascontiguousarray(queries, dtype=np.float32)
        q = self.backend.queries(raw)
        nq = q.shape[0]
        ex = np.full(nq, -1, dtype=np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
        want = k + 1 if exclude is not None else k
        s_main, i_main = self._search_main(raw, q, want, np.where(ex < len(self.main), ex, -1))
        s_tail, i_tail = self._exact(q, self.tail_keys, want, np.where(ex >= len(self.main),
                                                                               ex - len(self.main), -1))
        i_tail = np.where(i_tail >= 0, i_tail + len(self.main), -1)
        scores = np.concatenate([s_main, s_tail], axis=1)
        idx = np.concatenate([i_main, i_tail], axis=1)
        scores = np.where((idx == ex[:, None]) | (idx < 0), -np.inf, scores)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        scores, idx = np.take_along_axis(scores, order, axis=1), np.take_along_axis(idx, order, axis=1)
        return scores.astype(np.float32), np.where(np.isfinite(scores), idx, -1)

    def _search_main(self, raw: np.ndarray, q: np.ndarray, k: int, exclude: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """`raw` the queries, `q` their back end's keys (the exact search's and re-scoring's)."""
        if self.index is None:
            return self._exact(q, self.main_keys, k, exclude)
        if hasattr(self.index, "pq"):  # IVF-PQ: its scores are coarse; re-score RESCORE * k candidates exactly
            _, cand = self.index.search(self.backend.index_queries(raw), min(RESCORE * k, len(self.main)))
            scores, idx = self._rescore(q, cand.astype(np.int64))
            return scores[:, :k], idx[:, :k]
        scores, idx = self.index.search(self.backend.index_queries(raw), min(k, len(self.main)))
        if self.backend is not COSINE:  # an L2 index's distances: the keys' inner products are what merge
            return self._rescore(q, idx.astype(np.int64))
        return scores, idx.astype(np.int64)

    def _rescore(self, q: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 key inner products of candidates (-1 = none), in descending order."""
        vecs = self._keys(np.asarray(self.main.embeddings)[np.maximum(cand, 0).ravel()]).reshape(*cand.shape, -1)
        exact = np.where(cand >= 0, np.einsum("qcd,qd->qc", vecs, q), -np.inf).astype(np.float32)
        top = np.argsort(-exact, axis=1, kind="stable")
        scores, idx = np.take_along_axis(exact, top, axis=1), np.take_along_axis(cand, top, axis=1)
        return scores, np.where(np.isfinite(scores), idx, -1).astype(np.int64)

    @staticmethod
    def _exact(q: np.ndarray, catalogue: np.ndarray, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k; a few queries (the service's case) by one numpy product and a partition.

        `search_prepared`'s canonical tie order and chunking cost ~2 ms of fixed overhead
        per call, more than the product itself for one query against 10,000 rows. The
        product goes through torch, which keeps to the threads the process set (the
        server: one), where numpy's OpenBLAS starts a team of its own per call: measured
        against 41,377 rows, 0.8 ms of CPU per query alone and 0.2 ms in a batch of 8,
        against 2.4 ms and 1 ms through numpy with its default threads.
        """
        n = len(catalogue)
        k = min(k, n)
        if n == 0:
            return np.full((len(q), 0), -np.inf, np.float32), np.full((len(q), 0), -1, np.int64)
        if len(q) * n > SMALL_SEARCH:
            with torch.no_grad():
                return search_prepared(torch.from_numpy(q), torch.from_numpy(catalogue), k, exclude[:, None],
                                       4096, "auto")
        cat = np.asarray(catalogue)
        if cat.flags.writeable and q.flags.writeable:  # torch.from_numpy wants writeable arrays
            with torch.no_grad():
                s = (torch.from_numpy(q) @ torch.from_numpy(cat).T).numpy()
        else:
            s = q @ cat.T
        rows = np.flatnonzero(exclude >= 0)
        s[rows, exclude[rows]] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < n else np.broadcast_to(np.arange(n), s.shape)
        vals = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        return np.take_along_axis(vals, order, axis=1), np.take_along_axis(top, order, axis=1).astype(np.int64)


def read_tail(root: Path, manifest: Manifest) -> Part:
    """The tail segments' rows, concatenated in memory (they are small by construction)."""
    tails = [read_segment(root, s, mmap=False, dim=manifest.dim) for s in manifest.tail]
    if tails:
        return concat_parts(tails)
    d = manifest.dim
    return Part(np.empty((0, d), np.float32), np.empty(0, np.int64), np.empty(0, np.int64),
                np.empty((0, 2), np.float32))


def reopen(root: str | Path, manifest: Manifest, previous: Snapshot, previous_manifest: Manifest) -> Snapshot:
    """The snapshot of `manifest`, reusing `previous`'s main segment and index when unchanged.

    Another writer's adds (or a merge of the tail's segments) only change the tail: the
    index, the costly part to read, is kept.
    """
    same_main = (manifest.main == previous_manifest.main
                 and manifest.index.get("file") == previous_manifest.index.get("file"))
    if not same_main:
        return open_snapshot(root, manifest, previous.backend)
    tail = read_tail(Path(root), manifest)
    return Snapshot(manifest.generation, previous.main, previous.index, tail, previous.main_order,
                    np.argsort(tail.trackids, kind="stable"), previous.backend)


def open_snapshot(root: str | Path, manifest: Manifest | None = None, backend: Backend = COSINE) -> Snapshot:
    """Read the generation the manifest names (main segment mapped, tail loaded, index read).

    `backend`: the ranking pipeline's (`PipelineState.backend`), for snapshots that rank.
    """
    root = Path(root)
    manifest = manifest or Manifest.read(root)
    # Exact search reads every row per query: held in memory. Under an index only trackid
    # lookups read rows, so the segment stays mapped (the index holds its own copy).
    main = read_segment(root, manifest.main, mmap=bool(manifest.index.get("file")), dim=manifest.dim)
    # a plain ndarray view of the map: row gathers skip np.memmap's per-call bookkeeping
    main = Part(np.asarray(main.embeddings), main.trackids, main.artists, main.stats)
    tail = read_tail(root, manifest)
    index = read_index(root, manifest)
    if index is not None and index.ntotal != len(main):
        raise CatalogueError(f"{root}: index holds {index.ntotal} vectors but the main segment {len(main)}")
    # Search parameters are set once here, before any query: searches never write the index.
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = EF_SEARCH  # FAISS searches max(efSearch, k) candidates
    elif index is not None:
        index.nprobe = min(NPROBE_PQ if hasattr(index, "pq") else NPROBE, index.nlist)
    return Snapshot(manifest.generation, main, index, tail, np.argsort(main.trackids, kind="stable"),
                    np.argsort(tail.trackids, kind="stable"), backend)


def search_settings(index: Any) -> dict[str, Any]:
    """The search parameters a snapshot's index answers with (recorded in /stats and `index` output)."""
    if index is None:
        return {"method": "exact"}
    if hasattr(index, "hnsw"):
        return {"method": "hnsw", "efSearch": int(index.hnsw.efSearch)}
    if hasattr(index, "pq"):
        return {"method": "ivfpq", "nprobe": int(index.nprobe), "rescored_candidates_per_k": RESCORE}
    return {"method": "ivf", "nprobe": int(index.nprobe)}


def labelled(snapshot: Snapshot) -> np.ndarray:
    """Rows whose artist is known."""
    return np.flatnonzero(snapshot.artists() != UNKNOWN_ARTIST)


class SnapshotSearcher:
    """A snapshot as the ranking pipeline's `Searcher`: its index (or exact search) and tail."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot
        self.size = snapshot.size

    def candidates(self, queries: np.ndarray, width: int) -> np.ndarray:
        return self.snapshot.search(queries, min(width, self.size))[1]

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        return self.snapshot.vectors(rows)

    def keys(self, rows: np.ndarray) -> np.ndarray | None:
        return None  # computed from the vectors: an indexed main segment holds none

    def row_stats(self, rows: np.ndarray) -> np.ndarray | None:
        return self.snapshot.row_stats(rows)
