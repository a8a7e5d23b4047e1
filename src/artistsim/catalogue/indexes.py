"""A catalogue's FAISS index files: which kind for how many tracks, building one, reading one.

Why apart from `store`: the store decides which files a generation names; this module
knows what is inside an index file. The index is built for the catalogue's ranking back
end (`artistsim.search.backend`): over the L2-normalised rows by inner product (cosine),
or over the tracks' PLDA points by Euclidean distance (PLDA).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from artistsim.atomic import atomic_path
from artistsim.catalogue.manifest import INDEX_KINDS, CatalogueError, Manifest
from artistsim.search.backend import COSINE, Backend

__all__ = ["AUTO_EXACT_MAX", "HNSW_M", "build_index", "choose_index", "read_index", "write_index"]

# "auto" keeps exact search up to this many tracks (41,377 tracks answer one query in
# ~1 ms exactly) and builds HNSW above it.
AUTO_EXACT_MAX = 250_000
HNSW_M = 32
# IVF-PQ, the kind for catalogues larger than memory: ~sqrt(N) lists trained on up to
# 64 points per list, one byte-code per PQ_DIMS dimensions (128-d: 32 bytes per track).
PQ_DIMS = 4
PQ_TRAIN_PER_LIST = 64


def choose_index(kind: str, n: int) -> str:
    """The index kind for n tracks: exact ("flat") below AUTO_EXACT_MAX under "auto"."""
    if kind not in INDEX_KINDS:
        raise CatalogueError(f"index must be one of {INDEX_KINDS}, got {kind!r}")
    if kind == "auto":
        return "flat" if n <= AUTO_EXACT_MAX else "hnsw"
    return kind


def build_index(x: np.ndarray, kind: str, seed: int = 0, backend: Backend = COSINE) -> Any:
    """A FAISS index over the ranking back end's `index_rows` of x (cosine: x, inner product); None: exact."""
    if kind == "flat":
        return None
    x = backend.index_rows(np.asarray(x))
    import faiss

    from artistsim.search._faiss import omp_threads
    from artistsim.search.ann import build_faiss_index

    with omp_threads(faiss, None):
        if kind == "ivfpq":
            return _build_ivfpq(faiss, x, seed, backend.metric)
        index, _keep = build_faiss_index(faiss, x, kind, None, HNSW_M, seed, backend.metric)
    return index


def _build_ivfpq(faiss: Any, x: np.ndarray, seed: int, metric: str = "ip") -> Any:
    """IVF lists of PQ codes (inner product, or `metric` "l2"): ~sqrt(N) lists, a PQ_DIMS-dimension byte per code.

    Why these sizes: the codes are what must be read per query, so they stay small (32
    bytes per 128-d track against 512 for the vector); sqrt(N) lists keep the coarse
    k-means trainable in seconds on a sample. The search re-scores its candidates exactly
    from the memory-mapped segment (`Snapshot`), so PQ's coarse scores only pick them.
    """
    n, d = x.shape
    lists = int(max(1, min(round(np.sqrt(n)), n // 39)))
    m = d // PQ_DIMS if d % PQ_DIMS == 0 else d
    quantizer = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
    index = faiss.IndexIVFPQ(quantizer, d, lists, m, 8, quantizer.metric_type)  # holds a ref to quantizer
    sample = np.random.default_rng(seed).choice(n, size=min(n, max(PQ_TRAIN_PER_LIST * lists, 256)), replace=False)
    index.train(x[np.sort(sample)])
    index.add(x)
    return index


def write_index(root: Path, name: str, index: Any) -> None:
    import faiss

    with atomic_path(root / name, suffix=".faiss") as tmp:
        faiss.write_index(index, str(tmp))


def read_index(root: Path, manifest: Manifest) -> Any:
    if not manifest.index.get("file"):
        return None
    import faiss

    path = root / manifest.index["file"]
    if not path.is_file():
        raise CatalogueError(f"catalogue damaged: {path}: index file not found")
    # IVF-PQ's lists stay in the file, memory-mapped: only the lists a query visits are
    # paged in, and the page cache, not the process, holds them. HNSW's vectors and graph
    # are mapped in place (zero-copy): opening takes no time, and every process serving
    # the catalogue (`serve --workers`) shares one copy in the page cache instead of
    # holding its own. Index files are never written after they are named in a manifest.
    kind = manifest.index.get("kind")
    flags = faiss.IO_FLAG_MMAP if kind == "ivfpq" else faiss.IO_FLAG_MMAP_IFC if kind == "hnsw" else 0
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError:  # FAISS's message may quote the file's first bytes: never shown
        raise CatalogueError(f"catalogue damaged: {path}: not a readable FAISS index") from None
    return index
