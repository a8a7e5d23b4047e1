"""The competition's data layout, read as is and checked, and the feature sources over it.

Layout (REFERENCE.md): `train_meta.tsv` (trackid, artistid, archive_features_path),
`test_meta.tsv` (trackid, archive_features_path), optional `test_gt.tsv` (trackid,
artistid), and one float32 `.npy` of shape (512, T), 1 <= T <= 81, per track under
`train_features/` or `test_features/` -- or one level deeper, `train_features/
train_features/`, as the released archives unpack.

Features reach the rest of the pipeline through a `FeatureSource`: `lengths` (true frame
counts) and `gather(rows, frame_idx)`, which returns frames time-major (n, L, 512). Two
sources implement it: `NpyFiles` (one file per track, the seed's way) and `PackedStore`
(one contiguous memory map per split, written by `pack`; see `artistsim.data.store`).
Splits, crops and hold-outs built on these live in `artistsim.data.splits`.
Padding is never data: every batch carries the true lengths alongside the frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

FEATURE_DIM = 512
MAX_FRAMES = 81
SPLITS = ("train", "test")
META_COLUMNS = {
    "train": ("trackid", "artistid", "archive_features_path"),
    "test": ("trackid", "archive_features_path"),
}
GT_FILE = "test_gt.tsv"


class DataError(ValueError):
    """Bad input data: the message names the file or the meta row at fault."""


# --------------------------------------------------------------------------- meta files


def meta_path(data_dir: str | Path, split: str) -> Path:
    """Path of a split's meta file, `train_meta.tsv` or `test_meta.tsv`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return Path(data_dir) / f"{split}_meta.tsv"


def _read_tsv(path: Path, columns: tuple[str, ...], int_columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a header-row TSV, check its columns and integer ids; errors name file and line."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot parse as tab-separated values: {exc}") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    df = df[list(columns)].copy()
    if df.empty:
        raise DataError(f"{path}: no rows")
    for col in int_columns:
        values = pd.to_numeric(df[col].str.strip(), errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: line {row + 2}: column {col!r} must be an integer, got {df[col].iloc[row]!r}"
            )
        df[col] = values.astype(np.int64)
    dup = df["trackid"].duplicated(keep=False).to_numpy()
    if dup.any():
        rows = np.flatnonzero(dup)[:10]
        lines = ", ".join(f"line {r + 2} (trackid {df['trackid'].iloc[r]})" for r in rows)
        raise DataError(f"{path}: duplicate trackid at {lines}")
    return df.reset_index(drop=True)


def read_meta(data_dir: str | Path, split: str) -> pd.DataFrame:
    """Read and check a split's meta file; returns columns in the competition's order."""
    path = meta_path(data_dir, split)
    int_cols = ("trackid", "artistid") if split == "train" else ("trackid",)
    df = _read_tsv(path, META_COLUMNS[split], int_cols)
    empty = df["archive_features_path"].str.strip() == ""
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(f"{path}: line {row + 2}: empty archive_features_path")
    return df


def read_ground_truth_tsv(path: str | Path) -> pd.DataFrame:
    """Read a `trackid<TAB>artistid` ground-truth file (the synth's `test_gt.tsv`)."""
    return _read_tsv(Path(path), ("trackid", "artistid"), ("trackid", "artistid"))


def features_root(data_dir: str | Path, split: str, first_path: str | None = None) -> Path:
    """Folder the meta paths are relative to: `X_features/` or nested `X_features/X_features/`.

    Both layouts occur in the wild; the nested one wins when it exists and (if given)
    holds the meta's first file.
    """
    outer = Path(data_dir) / f"{split}_features"
    nested = outer / f"{split}_features"
    if nested.is_dir() and (first_path is None or (nested / first_path).exists()):
        return nested
    if not outer.is_dir():
        raise DataError(f"{outer}: features folder not found (expected {outer} or {nested})")
    return outer


# --------------------------------------------------------------------------- .npy files


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an .npy file from its header, checking the file is complete.

    Reading the header only makes indexing 167k files cheap, and comparing the byte size
    with the header catches truncated downloads without loading the data.
    """
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except FileNotFoundError:
        raise DataError(f"{path}: feature file not found") from None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    actual = path.stat().st_size
    if actual < expected:
        raise DataError(f"{path}: truncated: {actual} bytes, header promises {expected}")
    return tuple(int(s) for s in shape), dtype


def check_shape(shape: tuple[int, ...], where: Path | str) -> int:
    """Return T for a valid (512, T) shape; otherwise raise with what is wrong."""
    if len(shape) != 2:
        raise DataError(f"{where}: expected a 2-D array (512, T), got shape {shape}")
    rows, cols = shape
    if rows != FEATURE_DIM:
        if cols == FEATURE_DIM:
            raise DataError(
                f"{where}: shape {shape} looks transposed: expected ({FEATURE_DIM}, T) "
                f"with features in rows and frames in columns"
            )
        raise DataError(f"{where}: expected {FEATURE_DIM} rows (features), got shape {shape}")
    if not 1 <= cols <= MAX_FRAMES:
        raise DataError(f"{where}: expected 1 <= T <= {MAX_FRAMES} frames, got T = {cols}")
    return cols


def load_npy(path: Path) -> np.ndarray:
    """Load one track as (T, 512) float32, checking shape and finiteness."""
    shape, _ = read_npy_header(path)
    check_shape(shape, path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot load ({exc})") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{path}: expected float features, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"{path}: {bad} NaN/Inf value(s)")
    return np.ascontiguousarray(arr.T, dtype=np.float32)


# --------------------------------------------------------------------------- sources


class FeatureSource(Protocol):
    """Frames of one split's tracks, in meta order."""

    lengths: np.ndarray  # (N,) int64 true frame counts

    def gather(self, rows: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        """Frames `frame_idx[i]` (each < lengths[rows[i]]) of track `rows[i]`: (n, L, 512) float32."""
        ...


class NpyFiles:
    """One `.npy` per track, read on demand: the seed's layout, the fallback when unpacked."""

    def __init__(self, paths: list[Path], lengths: np.ndarray):
        self.paths = paths
        self.lengths = lengths

    @classmethod
    def index(cls, root: Path, rel_paths: list[str], progress: bool | None = None) -> NpyFiles:
        """Read every file's header (shape check, truncation check) to learn true lengths."""
        from tqdm.auto import tqdm

        paths = [root / p for p in rel_paths]
        lengths = np.empty(len(paths), dtype=np.int64)
        for i, path in enumerate(tqdm(paths, desc="Indexing features", disable=progress_disabled(progress), leave=False)):
            shape, _ = read_npy_header(path)
            lengths[i] = check_shape(shape, path)
        return cls(paths, lengths)

    def gather(self, rows: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), frame_idx.shape[1], FEATURE_DIM), dtype=np.float32)
        for i, row in enumerate(rows):  # one file per track: I/O bound by nature
            out[i] = load_npy(self.paths[row])[frame_idx[i]]
        return out


def progress_disabled(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None hides bars when not on a terminal, as users expect."""
    return None if progress is None else not progress
