"""The catalogue on disk: segments of embeddings, one FAISS index, a manifest naming them.

Layout of CATALOGUE_DIR:

    manifest.json        what the catalogue is *now*: generation, runs, settings, parts
    seg-000001/          a segment: embeddings.npy (n, d) float32, trackids.npy (n,)
                         int64, artists.npy (n,) int64 (-1 = artist unknown), and
                         stats.npy (n, 2) float32 when the pipeline uses AS-norm (each
                         row's cohort mean and std, `artistsim.search.pipeline`)
    pipeline-000001.npz  the ranking pipeline's arrays (LDA map, AS-norm cohort); its
                         settings are in the manifest, so the catalogue ranks as `predict`
    seg-000002/ ...      tracks added later, one segment per `add`
    index-000001.faiss   the approximate index over the main segment (none when exact;
                         an "ivfpq" one is memory-mapped when opened, see `read_index`)
    .lock                writers hold an exclusive flock on it

Why a manifest and generations: a writer never changes a file the manifest names. An
`add` writes a new segment (and on compaction a new main segment and index) under new
names, then replaces `manifest.json` atomically (temp file + rename): a kill at any
moment leaves either the old manifest (the catalogue as before the add) or the new one,
never a mixture. Files no manifest names (left by a killed writer, or replaced by a
compaction) are swept by the next writer, under the lock.

The main segment (mapped read-only from disk) is what the index covers; rows added
since live in the tail, searched exactly (a few thousand rows cost microseconds) and
merged into the main index by `compact` when the tail grows past a share of the main.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artistsim.atomic import atomic_path, atomic_write_text
from artistsim.catalogue.indexes import HNSW_M, build_index, choose_index, read_index, write_index
from artistsim.catalogue.manifest import FORMAT, INDEX_KINDS, MANIFEST, CatalogueError, Manifest, verify_files
from artistsim.data.arrays import check_values, load_array
from artistsim.data.errors import DataError
from artistsim.data.ids import check_ids
from artistsim.search.backend import COSINE, Backend

__all__ = ["FORMAT", "INDEX_KINDS", "MANIFEST", "CatalogueError", "Manifest", "Part", "append", "create",
           "read_segment", "read_index", "check_part"]
UNKNOWN_ARTIST = -1
# A tail larger than this share of the main segment (and at least COMPACT_MIN rows) is
# merged into the main segment and its index by the next CLI `add`.
COMPACT_SHARE = 0.10
COMPACT_MIN = 50_000
# More tail segments than this (one per service add) are merged into one tail segment,
# so a catalogue fed track by track does not open thousands of small files.
MAX_TAIL_SEGMENTS = 64


@dataclass
class Part:
    """A segment's arrays (embeddings may be a read-only memory map)."""

    embeddings: np.ndarray
    trackids: np.ndarray
    artists: np.ndarray
    stats: np.ndarray | None = None  # (n, 2) AS-norm cohort statistics, when the pipeline uses them

    def __len__(self) -> int:
        return len(self.trackids)


@contextlib.contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Exclusive lock of the catalogue's writers (CLI adds, the server's adds)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_part(embeddings: np.ndarray, trackids: np.ndarray, artists: np.ndarray, dim: int | None,
               stats: np.ndarray | None = None) -> Part:
    """Validate the arrays of new tracks (shapes, finiteness, unique ids) as a Part."""
    e = np.ascontiguousarray(embeddings, dtype=np.float32)
    if stats is not None:
        stats = np.ascontiguousarray(stats, dtype=np.float32)
        if stats.shape != (len(e), 2) or not np.isfinite(stats).all():
            raise CatalogueError(f"cohort statistics {stats.shape} do not fit {len(e)} tracks")
    t = np.asarray(trackids, dtype=np.int64).reshape(-1)
    a = np.asarray(artists, dtype=np.int64).reshape(-1)
    if e.ndim != 2 or e.shape[0] != len(t) or len(a) != len(t):
        raise CatalogueError(f"embeddings {e.shape}, trackids {t.shape} and artists {a.shape} do not match")
    if dim is not None and e.shape[1] != dim:
        raise CatalogueError(f"embeddings have dimension {e.shape[1]}, the catalogue {dim}")
    try:
        check_values(e, "new tracks' embeddings")
        check_ids(t, "new tracks", "trackid")
        check_ids(a[a != UNKNOWN_ARTIST], "new tracks", "artist")
    except DataError as exc:
        raise CatalogueError(str(exc)) from None
    if len(e) and (np.einsum("nd,nd->n", e, e) < 1e-12).any():  # overflowed, then normalised to zero
        raise CatalogueError("new tracks' embeddings hold zero vectors (nothing to rank by)")
    uniq, counts = np.unique(t, return_counts=True)
    if (counts > 1).any():
        raise CatalogueError(f"duplicate trackid(s) among the new tracks: {uniq[counts > 1][:10].tolist()}")
    return Part(e, t, a, stats)


def _write_segment(root: Path, name: str, part: Part) -> None:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [("embeddings.npy", part.embeddings), ("trackids.npy", part.trackids), ("artists.npy", part.artists)]
    if part.stats is not None:
        arrays.append(("stats.npy", part.stats))
    for fname, arr in arrays:
        with atomic_path(folder / fname, suffix=".npy") as tmp:
            np.save(tmp, arr)


def read_segment(root: Path, name: str, mmap: bool = True, dim: int | None = None) -> Part:
    """A segment's arrays, checked (`artistsim.data.arrays.load_array`): float32 (n, dim)
    embeddings, int64 trackids (valid ids) and artists (ids or -1), lengths that agree.

    The embeddings of a mapped segment are not scanned value by value (see `load_array`).
    """
    folder = root / name
    try:
        e = load_array(folder / "embeddings.npy", dtypes=("float32",), ndim=2, what="segment file", mmap=mmap)
        t = load_array(folder / "trackids.npy", dtypes=("int64",), ndim=1, what="segment file")
        a = load_array(folder / "artists.npy", dtypes=("int64",), ndim=1, what="segment file")
        st = (load_array(folder / "stats.npy", dtypes=("float32",), ndim=2, what="segment file")
              if (folder / "stats.npy").is_file() else None)
        check_ids(t, f"{folder / 'trackids.npy'}", "trackid")
        check_ids(a[a != UNKNOWN_ARTIST], f"{folder / 'artists.npy'}", "artist")
    except DataError as exc:
        raise CatalogueError(f"catalogue damaged: {exc}") from None
    if len(e) != len(t) or len(a) != len(t) or (st is not None and st.shape != (len(t), 2)):
        raise CatalogueError(f"catalogue damaged: {folder}: arrays disagree: embeddings {e.shape}, "
                             f"trackids {t.shape}, artists {a.shape}" + (f", stats {st.shape}" if st is not None else ""))
    if dim is not None and e.shape[1] != dim:
        raise CatalogueError(f"catalogue damaged: {folder / 'embeddings.npy'}: dimension {e.shape[1]}, "
                             f"but {MANIFEST} field 'dim' says {dim}")
    return Part(e, t, a, st)


def _sweep(root: Path, manifest: Manifest) -> None:
    """Remove segments and index files no manifest names (a killed writer's leftovers)."""
    keep = {manifest.main, *manifest.tail, MANIFEST, ".lock"}
    if manifest.pipeline and manifest.pipeline.get("arrays"):
        keep.add(manifest.pipeline["arrays"])
    if manifest.index.get("file"):
        keep.add(manifest.index["file"])
    if manifest.names:
        keep.add(manifest.names)
    for p in root.iterdir():
        if p.name in keep:
            continue
        if p.is_dir() and p.name.startswith("seg-"):
            shutil.rmtree(p, ignore_errors=True)
        elif (p.name.startswith(("index-", "pipeline-", "names-", f".{MANIFEST}."))
              or (p.name.startswith(".") and ".tmp" in p.name)):
            p.unlink(missing_ok=True)


def create(root: str | Path, part: Part, runs: list[dict[str, Any]], embed: dict[str, Any], index: str = "auto",
           overwrite: bool = False, pipeline: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None,
           frontend: dict[str, Any] | None = None, backend: Backend = COSINE) -> Manifest:
    """Write a new catalogue (generation 1) from labelled or unlabelled tracks.

    `pipeline` is the ranking pipeline's (settings record, arrays), stored with the
    generation so the catalogue ranks exactly as `predict` does; the index is built for its `backend`.
    """
    root = Path(root)
    part = check_part(part.embeddings, part.trackids, part.artists, None, part.stats)
    with writer_lock(root):
        if (root / MANIFEST).exists() and not overwrite:
            raise CatalogueError(f"{root}: a catalogue exists already; use `index add`, or --overwrite")
        previous = Manifest.read(root).generation if (root / MANIFEST).exists() else 0
        gen = previous + 1
        kind = choose_index(index, len(part))
        built = build_index(part.embeddings, kind, backend=backend)
        seg = f"seg-{gen:06d}"
        _write_segment(root, seg, part)
        index_file = None
        if built is not None:
            index_file = f"index-{gen:06d}.faiss"
            write_index(root, index_file, built)
        params = {"hnsw_m": HNSW_M} if kind == "hnsw" else ({"nlist": int(built.nlist)} if kind == "ivf" else {})
        record = None
        if pipeline is not None:
            record = {"settings": pipeline[0], "arrays": f"pipeline-{gen:06d}.npz"}
            with atomic_path(root / record["arrays"], suffix=".npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **pipeline[1])
        manifest = _commit(root, Manifest(gen, int(part.embeddings.shape[1]), runs, embed,
                                          {"kind": kind, "requested": index, "file": index_file, "params": params},
                                          seg, pipeline=record, frontend=frontend))
        _sweep(root, manifest)
    return manifest


def _commit(root: Path, manifest: Manifest) -> Manifest:
    """Record the named files' sizes and checksums, then replace manifest.json atomically."""
    manifest = manifest.with_records(root)
    atomic_write_text(root / MANIFEST, manifest.to_json())
    return manifest


def verify_generation(root: Path, manifest: Manifest, checksums: bool) -> list[Part]:
    """The generation's segments, after checking what a writer builds on; CatalogueError if damaged.

    Always: every named file present with its recorded size, every segment's arrays
    readable and consistent (headers only for the main segment). With `checksums` (the
    CLI's `index add`): the recorded SHA-256 of every file and a readable index holding
    the main segment's rows too. The service's adds, one track at a time, skip those
    (a full read of the main segment and index per request); `index check` does them all.
    """
    problems = verify_files(root, manifest, checksums)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CatalogueError(f"catalogue damaged: {problems[0]}{more}; nothing was added "
                             f"(`artistsim index check {root}` lists every problem)")
    parts = [read_segment(root, s, mmap=True, dim=manifest.dim) for s in manifest.segments()]
    if checksums:
        index = read_index(root, manifest)
        if index is not None and index.ntotal != len(parts[0]):
            raise CatalogueError(f"catalogue damaged: {root / manifest.index['file']}: holds {index.ntotal} vectors, "
                                 f"the main segment {len(parts[0])}")
    return parts


def append(root: str | Path, part: Part, compact: bool | None = None, checksums: bool = False,
           backend: Backend = COSINE) -> Manifest:
    """Add tracks as a new segment (a new generation); duplicates of catalogued ids are refused.

    `compact` None merges the tail into the main segment and index when it has grown past
    COMPACT_SHARE of the main (at least COMPACT_MIN rows); True / False force it / skip it.
    The generation added to is verified first (`verify_generation`, `checksums` as there):
    a new generation is never committed on top of a damaged one. `backend` as in `create`.
    """
    root = Path(root)
    with writer_lock(root):
        manifest = Manifest.read(root)
        part = check_part(part.embeddings, part.trackids, part.artists, manifest.dim, part.stats)
        if (part.stats is None) != (not _has_stats(root, manifest)):
            raise CatalogueError(f"{root}: new tracks must carry cohort statistics exactly when the catalogue's "
                                 f"pipeline uses AS-norm")
        parts = verify_generation(root, manifest, checksums)
        clash = np.isin(part.trackids, np.concatenate([p.trackids for p in parts]))
        if clash.any():
            raise CatalogueError(f"trackid(s) already in the catalogue: {part.trackids[clash][:10].tolist()}")
        gen = manifest.generation + 1
        seg = f"seg-{gen:06d}"
        _write_segment(root, seg, part)
        new = Manifest(**{**manifest.__dict__, "generation": gen, "tail": [*manifest.tail, seg]})
        if compact is None:
            tail_rows = sum(len(p) for p in parts[1:]) + len(part)
            compact = tail_rows >= max(COMPACT_MIN, COMPACT_SHARE * len(parts[0]))
        if compact:
            new = _compact(root, new, backend)
        elif len(new.tail) > MAX_TAIL_SEGMENTS:
            new = _merge_tail(root, new)
        new = _commit(root, new)
        _sweep(root, new)
    return new


def _has_stats(root: Path, manifest: Manifest) -> bool:
    return (root / manifest.main / "stats.npy").is_file()


def concat_parts(parts: list[Part]) -> Part:
    """One Part of several, in order (stats kept when every part has them)."""
    stats = [p.stats for p in parts]
    return Part(np.concatenate([p.embeddings for p in parts]), np.concatenate([p.trackids for p in parts]),
                np.concatenate([p.artists for p in parts]),
                np.concatenate(stats) if stats and all(s is not None for s in stats) else None)


def _concat(root: Path, names: list[str]) -> Part:
    return concat_parts([read_segment(root, s, mmap=True) for s in names])  # verified by `append` first


def _merge_tail(root: Path, manifest: Manifest) -> Manifest:
    """One tail segment (new name) holding every tail row; main segment and index untouched."""
    seg = f"seg-{manifest.generation:06d}t"
    _write_segment(root, seg, _concat(root, manifest.tail))
    return Manifest(**{**manifest.__dict__, "tail": [seg]})


def _compact(root: Path, manifest: Manifest, backend: Backend = COSINE) -> Manifest:
    """Merge main + tail into one new main segment with a freshly built index (new names)."""
    whole = _concat(root, [manifest.main, *manifest.tail])
    gen = manifest.generation
    seg = f"seg-{gen:06d}m"
    _write_segment(root, seg, whole)
    kind = manifest.index["kind"]
    if manifest.index["requested"] == "auto":
        kind = choose_index("auto", len(whole))
    built = build_index(whole.embeddings, kind, backend=backend)
    index_file = None
    if built is not None:
        index_file = f"index-{gen:06d}.faiss"
        write_index(root, index_file, built)
    return Manifest(**{**manifest.__dict__, "main": seg, "tail": [],
                       "index": {**manifest.index, "kind": kind, "file": index_file}})


def set_calibration(root: str | Path, calibration: dict[str, Any]) -> Manifest:
    """Record identification's threshold and figures in a new generation of the manifest."""
    root = Path(root)
    with writer_lock(root):
        manifest = Manifest.read(root)
        new = _commit(root, Manifest(**{**manifest.__dict__, "generation": manifest.generation + 1,
                                        "calibration": calibration}))
    return new
