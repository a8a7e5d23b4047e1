"""Packed feature store: one contiguous memory map per split, written by `artistsim pack`.

Why: the seed re-read one `.npy` per track per batch. Here a split's frames live in one
file, time-major, track after track (`frames`: (total_frames, D), float16 by default,
half the size of float32 and well within the features' precision), with an index
(`trackids`, `lengths`, `offsets`, and a fingerprint of the meta file). A crop of any
batch is then a single vectorised fancy-index into the memory map; the OS page cache
holds what fits, so the full 167k-track train split (~14 GB at float16) is usable on a
24 GB machine without ever being loaded whole.

Files: `DATA_DIR/packed/{split}.frames` and `DATA_DIR/packed/{split}.index.npz`. Both are
written through temporary files and renamed; the index goes last, so a store either
exists complete or not at all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from artistsim.atomic import atomic_path, remove_stale_temp_files
from artistsim.data.layout import (
    FEATURE_DIM,
    DataError,
    NpyFiles,
    feature_dim,
    readable_root,
    load_npy,
    meta_line,
    progress_disabled,
    read_meta,
)

STORE_DIR = "packed"
STORE_VERSION = 1
DTYPES = {"float16": np.float16, "float32": np.float32}


def store_paths(data_dir: str | Path, split: str) -> tuple[Path, Path]:
    """(frames file, index file) of a split's store."""
    base = Path(data_dir) / STORE_DIR
    return base / f"{split}.frames", base / f"{split}.index.npz"


def store_exists(data_dir: str | Path, split: str) -> bool:
    """A store counts as present only when its index (written last) exists."""
    frames, index = store_paths(data_dir, split)
    return index.is_file() and frames.is_file()


def meta_fingerprint(meta: pd.DataFrame) -> str:
    """Hash of (trackid, path) in meta order: a store must match the meta it serves."""
    text = "\n".join(meta["trackid"].astype(str) + "\t" + meta["archive_features_path"].astype(str))
    return hashlib.sha256(text.encode()).hexdigest()


class PackedStore:
    """Read side of the store: a `FeatureSource` over one memory map."""

    def __init__(self, frames: np.memmap, trackids: np.ndarray, lengths: np.ndarray, offsets: np.ndarray):
        self.frames = frames
        self.trackids = trackids
        self.lengths = lengths
        self.offsets = offsets
        self.dim = int(frames.shape[1])

    @classmethod
    def open(cls, data_dir: str | Path, split: str, meta: pd.DataFrame | None = None) -> PackedStore:
        """Open a split's store, checking it matches `meta` (re-run pack if it does not)."""
        frames_path, index_path = store_paths(data_dir, split)
        info, trackids, lengths, offsets = _read_index(index_path)
        if meta is not None and info["fingerprint"] != meta_fingerprint(meta):
            raise DataError(
                f"{index_path}: store does not match {split}_meta.tsv (rows or paths changed); "
                f"run `artistsim pack {data_dir} --force`"
            )
        total = int(lengths.sum())
        dtype = DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise DataError(f"{index_path}: unknown store dtype; run `artistsim pack {data_dir} --force`")
        dim = int(info.get("dim", FEATURE_DIM))  # stores packed before D was recorded hold 512
        if dim != feature_dim(data_dir):
            raise DataError(f"{index_path}: store holds {dim}-d frames, frontend.json says "
                            f"{feature_dim(data_dir)}; run `artistsim pack {data_dir} --force`")
        expected = total * dim * np.dtype(dtype).itemsize
        if frames_path.stat().st_size != expected:
            raise DataError(f"{frames_path}: {frames_path.stat().st_size} bytes, index expects {expected}")
        frames = np.memmap(frames_path, dtype=dtype, mode="r", shape=(total, dim))
        return cls(frames, trackids, lengths, offsets)

    def gather(self, rows: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        """One `take` of whole frames for the whole batch: no loop over tracks.

        The memory map is indexed as a plain ndarray view: `np.memmap.__getitem__` with a
        2-D index costs ~3x `ndarray.take` of the flattened rows (8.3 vs 2.5 ms for 101
        tracks at crop 81). float16 frames are then widened by torch into a numpy buffer:
        numpy's own float16 -> float32 cast is scalar code, ~15x slower than torch's
        vectorised, multi-threaded copy (benchmarks/bench_loading.py); a float32 store
        is returned as gathered, without a second copy.
        """
        flat = (self.offsets[rows][:, None] + frame_idx).reshape(-1)
        x = self.frames.view(np.ndarray).take(flat, axis=0).reshape(*frame_idx.shape, self.dim)
        if x.dtype == np.float32:
            return x
        import torch

        out = np.empty(x.shape, dtype=np.float32)
        torch.from_numpy(out).copy_(torch.from_numpy(x))
        return out


def _read_index(index_path: Path) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """A store index's (info, trackids, lengths, offsets); a damaged index is a DataError."""
    try:
        with np.load(index_path, allow_pickle=False) as idx:
            info = json.loads(str(idx["info"]))
            arrays = idx["trackids"], idx["lengths"], idx["offsets"]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(f"{index_path}: damaged store index ({type(exc).__name__}); "
                        f"run `artistsim pack --force` to rebuild it") from None
    if not isinstance(info, dict) or "fingerprint" not in info:
        raise DataError(f"{index_path}: damaged store index (no fingerprint); run `artistsim pack --force`")
    return (info, *arrays)


def pack_split(
    data_dir: str | Path, split: str, dtype: str = "float16", force: bool = False, progress: bool | None = None
) -> dict:
    """Stream a split's .npy files into its store; returns a summary.

    Every file is checked (exists, complete, (D, T) with D = `feature_dim`, finite) as it is copied; the first
    bad file aborts with its name and nothing is left behind. Peak memory is one track.
    """
    from tqdm.auto import tqdm

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    meta = read_meta(data_dir, split)
    dim = feature_dim(data_dir)
    fingerprint = meta_fingerprint(meta)
    frames_path, index_path = store_paths(data_dir, split)
    remove_stale_temp_files(frames_path.parent)  # a killed pack's frames: gigabytes on full data
    if store_exists(data_dir, split):
        try:
            info = _read_index(index_path)[0]
        except DataError:
            if not force:
                raise
            info = {"fingerprint": None}
        same = info["fingerprint"] == fingerprint and info.get("dtype") == dtype
        if same and int(info.get("dim", FEATURE_DIM)) == dim and not force:
            return {"split": split, "status": "up to date", "tracks": len(meta)}
        if not force:
            raise DataError(
                f"{index_path}: an existing store does not match {split}_meta.tsv (or dtype); "
                f"pass --force to overwrite it"
            )
    rel = meta["archive_features_path"].tolist()
    root = readable_root(data_dir, split, rel)
    lengths = NpyFiles.index(root, rel, progress, split=split, dim=dim).lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    total = int(lengths.sum())
    np_dtype = DTYPES[dtype]
    index_path.unlink(missing_ok=True)  # an old index must never describe new frames
    with atomic_path(frames_path) as tmp_frames, tmp_frames.open("wb") as out:
        # Plain sequential writes, not a writable memmap: dirty memmap pages count in the
        # process's resident memory (10.9 GB peak on the full train split), file writes don't.
        for row, p in enumerate(tqdm(rel, desc=f"Packing {split}", disable=progress_disabled(progress))):
            try:
                track = load_npy(root / p, dim)
            except DataError as exc:
                raise meta_line(split, row, exc) from None
            if np_dtype == np.float16 and np.abs(track).max(initial=0.0) > np.finfo(np.float16).max:
                raise meta_line(split, row, DataError(f"{root / p}: values exceed float16 range; "
                                                      f"pack with --dtype float32"))
            out.write(track.astype(np_dtype).tobytes())
    info = {"version": STORE_VERSION, "dtype": dtype, "fingerprint": fingerprint, "split": split, "dim": dim}
    with atomic_path(index_path, suffix=".npz") as tmp_index:
        np.savez(tmp_index, trackids=meta["trackid"].to_numpy(np.int64), lengths=lengths, offsets=offsets,
                 info=np.array(json.dumps(info)))
    return {"split": split, "status": "packed", "tracks": len(meta), "frames": total,
            "bytes": total * dim * np.dtype(np_dtype).itemsize}
