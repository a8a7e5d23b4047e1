"""Splits of a dataset: a split's meta + features + labels, crops and batches, hold-outs.

Why apart from `layout`: this is where the reading layer meets the packed store
(`open_source` prefers `store.PackedStore` when one matches the meta file), and keeping
it here lets `store` depend on `layout` without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from artistsim.data.layout import (
    GT_FILE,
    DataError,
    FeatureSource,
    NpyFiles,
    feature_dim,
    readable_root,
    read_ground_truth_tsv,
    read_meta,
)
from artistsim.data.store import PackedStore, store_exists

if TYPE_CHECKING:
    from artistsim.config import TrainConfig

# --------------------------------------------------------------------------- batches


def crop_indices(
    lengths: np.ndarray, crop: int, rng: np.random.Generator | None, pad_mode: Literal["wrap", "zero"] = "wrap"
) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of a random contiguous crop per track, and the crop's true length.

    Tracks at least `crop` long get a uniformly placed window (the centre one when `rng`
    is None). Shorter tracks are wrap-padded (frames repeat from the start, as the seed
    did) or zero-padded; either way their true length min(T, crop) travels with them.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    room = np.maximum(lengths - crop, 0)
    if rng is None:
        starts = room // 2
    else:
        starts = np.floor(rng.random(len(lengths)) * (room + 1)).astype(np.int64)
    idx = starts[:, None] + np.arange(crop)[None, :]
    if pad_mode == "wrap":
        idx = idx % lengths[:, None]
    else:
        idx = np.minimum(idx, lengths[:, None] - 1)
    return idx, np.minimum(lengths, crop)


def take_batch(
    source: FeatureSource, rows: np.ndarray, frame_idx: np.ndarray, true_lengths: np.ndarray, pad_mode: str
) -> np.ndarray:
    """Gather frames and zero the padded positions when zero padding is asked for."""
    x = source.gather(rows, frame_idx)
    if pad_mode == "zero":
        x[np.arange(frame_idx.shape[1])[None, :] >= true_lengths[:, None]] = 0.0
    return x


def full_batch(source: FeatureSource, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whole tracks padded with zeros to the longest in `rows` (not to 81): (x, lengths)."""
    lengths = source.lengths[rows]
    width = int(lengths.max())
    idx = np.minimum(np.arange(width)[None, :], lengths[:, None] - 1)
    return take_batch(source, rows, idx, lengths, "zero"), lengths


# --------------------------------------------------------------------------- splits


@dataclass
class SplitData:
    """A split's meta table, its feature source and (when known) artist labels."""

    name: str
    meta: pd.DataFrame
    source: FeatureSource
    artists: np.ndarray | None  # (N,) artist id per row; None for an unlabelled test split

    @property
    def trackids(self) -> np.ndarray:
        return self.meta["trackid"].to_numpy(np.int64)


def open_source(data_dir: str | Path, split: str, meta: pd.DataFrame, progress: bool | None = None) -> FeatureSource:
    """The packed store when present and matching the meta file, else the .npy files."""
    if store_exists(data_dir, split):
        return PackedStore.open(data_dir, split, meta)
    rel = meta["archive_features_path"].tolist()
    root = readable_root(data_dir, split, rel)
    return NpyFiles.index(root, rel, progress=progress, split=split, dim=feature_dim(data_dir))


def load_split(data_dir: str | Path, split: str, progress: bool | None = None, labels: bool = True) -> SplitData:
    """Meta + features (+ labels: artistid for train, test_gt.tsv for test when present).

    `labels=False` skips the test ground truth: a prediction needs none, so an incomplete
    or broken `test_gt.tsv` must not stop it.
    """
    meta = read_meta(data_dir, split)
    source = open_source(data_dir, split, meta, progress)
    if split == "train":
        artists = meta["artistid"].to_numpy(np.int64)
    else:
        artists = test_labels(data_dir, meta) if labels else None
    return SplitData(split, meta, source, artists)


def test_labels(data_dir: str | Path, meta: pd.DataFrame) -> np.ndarray | None:
    """Artist per test track from `test_gt.tsv`, or None when the file is absent."""
    path = Path(data_dir) / GT_FILE
    if not path.exists():
        return None
    gt = read_ground_truth_tsv(path).set_index("trackid")["artistid"]
    missing = ~meta["trackid"].isin(gt.index)
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise DataError(f"{path}: no artist for trackid {meta['trackid'].iloc[row]} of test_meta.tsv line {row + 2} "
                        f"({int(missing.sum())} test track(s) without one)")
    return gt.loc[meta["trackid"]].to_numpy(np.int64)


def split_artists(artists: np.ndarray, val_fraction: float = 0.1, seed: int = 0, min_artists: int = 0) -> np.ndarray:
    """Boolean mask of rows whose artist is held out for validation (by artist, seeded).

    At least `min_artists` artists are held out, but never more than half of them.
    """
    unique = np.unique(artists)
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(len(unique) * val_fraction)))
    n_val = max(n_val, min(min_artists, len(unique) // 2))
    held = rng.choice(unique, size=n_val, replace=False)
    return np.isin(artists, held)


def fold_artists(artists: np.ndarray, folds: int, fold: int, seed: int = 0) -> np.ndarray:
    """Boolean mask of rows in fold `fold` of a `folds`-way split by artist (seeded)."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in 0..{folds - 1}, got {fold}")
    unique = np.unique(artists)
    perm = np.random.default_rng(seed).permutation(len(unique))
    fold_of = np.empty(len(unique), dtype=np.int64)
    fold_of[perm] = np.arange(len(unique)) % folds
    return fold_of[np.searchsorted(unique, artists)] == fold


def holdout_mask(artists: np.ndarray, val_fraction: float, seed: int, folds: int = 0, fold: int = 0,
                 min_artists: int = 0) -> np.ndarray:
    """Validation rows: k-fold by artist when `folds` > 1, else a seeded fraction of artists.

    Both sides must keep an artist: with one artist in train_meta.tsv there is nothing to
    hold out (a DataError here, not an empty batch list deep in training).
    """
    n_artists = len(np.unique(artists))
    if n_artists < 2:
        raise DataError(f"train_meta.tsv: {n_artists} artist(s); training and validation need at least 2 "
                        f"(artists are held out whole)")
    if folds > 1:
        return fold_artists(artists, folds, fold, seed)
    return split_artists(artists, val_fraction, seed, min_artists)


def run_holdout(artists: np.ndarray, cfg: TrainConfig, folds: int = 0, fold: int = 0) -> np.ndarray:
    """The validation rows a run's config holds out: `train`, `evaluate`, `embed --split val`
    and the benchmarks call this one function, so they can never disagree on the artists."""
    return holdout_mask(artists, cfg.val_fraction, cfg.seed, folds, fold, cfg.val_min_artists)

