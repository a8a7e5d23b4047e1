"""The competition's data layout, read as is and checked, and the feature sources over it.

Layout (REFERENCE.md): `train_meta.tsv` (trackid, artistid, archive_features_path),
`test_meta.tsv` (trackid, archive_features_path), optional `test_gt.tsv` (trackid,
artistid), and one float32 `.npy` of shape (D, T), 1 <= T <= 81, per track under
`train_features/` or `test_features/` -- or one level deeper, `train_features/
train_features/`, as the released archives unpack. D is 512 for the competition's
features; a folder made by `featurize` (or by hand) records its front end in
`frontend.json` (`artistsim.data.provenance`), whose `dim` is D: `feature_dim`.

Features reach the rest of the pipeline through a `FeatureSource`: `lengths` (true frame
counts) and `gather(rows, frame_idx)`, which returns frames time-major (n, L, D). Two
sources implement it: `NpyFiles` (one file per track, the seed's way) and `PackedStore`
(one contiguous memory map per split, written by `pack`; see `artistsim.data.store`).
Splits, crops and hold-outs built on these live in `artistsim.data.splits`.
Padding is never data: every batch carries the true lengths alongside the frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from artistsim.data.arrays import check_size, open_npy, read_header, read_npy_header
from artistsim.data.errors import DataError
from artistsim.data.ids import parse_ids
from artistsim.data.paths import escaping_links, outside_allowed, outside_rows
from artistsim.data.provenance import ProvenanceError, read_frontend

FEATURE_DIM = 512  # the competition's D; a data folder's own is `feature_dim(data_dir)`
MAX_FRAMES = 81
SPLITS = ("train", "test")
META_COLUMNS = {
    "train": ("trackid", "artistid", "archive_features_path"),
    "test": ("trackid", "archive_features_path"),
}
GT_FILE = "test_gt.tsv"


# --------------------------------------------------------------------------- meta files

def meta_path(data_dir: str | Path, split: str) -> Path:
    """Path of a split's meta file, `train_meta.tsv` or `test_meta.tsv`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return Path(data_dir) / f"{split}_meta.tsv"


@dataclass
class TableScan:
    """A TSV read as far as possible: its table (bad ids as -1), and every problem in it.

    `problems` holds one line per bad row (file, line, column, reason). `table` is None
    when the file cannot be read as a table at all (missing, empty, wrong columns).
    """

    path: Path
    table: pd.DataFrame | None
    problems: list[str] = field(default_factory=list)
    bad_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def raise_if_bad(self) -> pd.DataFrame:
        """The readers' way: the first problem as a DataError, with the count of the rest."""
        if self.problems:
            more = len(self.problems) - 1
            tail = f" (and {more} more problem(s); `artistsim validate` lists them all)" if more else ""
            raise DataError(self.problems[0] + tail)
        assert self.table is not None
        return self.table


def _parse_ids(path: Path, df: pd.DataFrame, col: str, problems: list[str]) -> np.ndarray:
    """Column `col` as int64 ids (`artistsim.data.ids`); bad rows become -1, each one named."""
    values, reasons = parse_ids(df[col])
    for row in np.flatnonzero(reasons != None):  # noqa: E711 - elementwise over an object array
        problems.append(f"{path}: line {row + 2}: column {col!r} {reasons[row]}")
    return values


def scan_tsv(path: Path, columns: tuple[str, ...], int_columns: tuple[str, ...]) -> TableScan:
    """Read a header-row TSV and check it, collecting every problem (see `TableScan`)."""
    if not path.is_file():
        return TableScan(path, None, [f"{path}: file not found"])
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return TableScan(path, None, [f"{path}: file is empty (expected a header row {'<TAB>'.join(columns)})"])
    except UnicodeDecodeError as exc:
        return TableScan(path, None, [f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded)"])
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[-1][:200]
        return TableScan(path, None, [f"{path}: cannot parse as tab-separated values: {reason}"])
    missing = [c for c in columns if c not in df.columns]
    if missing:
        # Named, never quoted: the "header" may be the first line of any file (a link to /etc/shadow).
        return TableScan(path, None, [f"{path}: missing column(s) {missing} (the first line must "
                                      f"be the header {'<TAB>'.join(columns)})"])
    df = df[list(columns)].fillna("").reset_index(drop=True)  # short rows: missing fields are empty
    if df.empty:
        return TableScan(path, None, [f"{path}: no rows"])
    problems: list[str] = []
    bad = np.zeros(len(df), dtype=bool)
    for col in int_columns:
        df[col] = _parse_ids(path, df, col, problems)
        bad |= df[col].to_numpy() < 0
    ids = df["trackid"]
    dup = (ids.duplicated(keep=False) & (ids >= 0)).to_numpy()
    if dup.any():
        first_line = pd.Series(np.arange(len(df)) + 2).groupby(ids.to_numpy()).transform("min").to_numpy()
        for row in np.flatnonzero(dup & (first_line != np.arange(len(df)) + 2)):
            problems.append(f"{path}: line {row + 2}: duplicate trackid {ids.iloc[row]} "
                            f"(first on line {first_line[row]})")
        bad |= dup
    return TableScan(path, df, problems, bad_rows=bad)


def scan_meta(data_dir: str | Path, split: str, allow_outside: bool | None = None) -> TableScan:
    """`scan_tsv` of a split's meta file plus its path checks (empty, outside the feature folder)."""
    path = meta_path(data_dir, split)
    int_cols = ("trackid", "artistid") if split == "train" else ("trackid",)
    scan = scan_tsv(path, META_COLUMNS[split], int_cols)
    if scan.table is None:
        return scan
    rel = scan.table["archive_features_path"].str.strip()
    scan.table["archive_features_path"] = rel
    empty = (rel == "").to_numpy()
    allow = outside_allowed() if allow_outside is None else allow_outside
    outside = outside_rows(rel) & ~empty if not allow else np.zeros(len(rel), dtype=bool)
    for row in np.flatnonzero(empty):
        scan.problems.append(f"{path}: line {row + 2}: empty archive_features_path")
    for row in np.flatnonzero(outside):
        scan.problems.append(f"{path}: line {row + 2}: archive_features_path leaves {split}_features/ "
                             f"(absolute or '..'); pass --allow-outside-paths to allow it")
    scan.bad_rows = scan.bad_rows | empty | outside
    return scan


def read_meta(data_dir: str | Path, split: str) -> pd.DataFrame:
    """Read and check a split's meta file; returns columns in the competition's order.

    Raises DataError with the first problem (file and line) and the count of the others.
    """
    return scan_meta(data_dir, split).raise_if_bad()


def read_ground_truth_tsv(path: str | Path) -> pd.DataFrame:
    """Read a `trackid<TAB>artistid` ground-truth file (the synth's `test_gt.tsv`)."""
    return scan_tsv(Path(path), ("trackid", "artistid"), ("trackid", "artistid")).raise_if_bad()


def features_root(data_dir: str | Path, split: str, rel_paths: list[str] | None = None) -> Path:
    """Folder the meta paths are relative to: `X_features/` or nested `X_features/X_features/`.

    Both layouts occur in the wild. Decided by the directory, not by one file (which may
    be the one missing): nested when `X_features/X_features/` is the outer folder's only
    entry; when it has siblings, the folder holding more of a sample of the meta's files.
    """
    outer = Path(data_dir) / f"{split}_features"
    nested = outer / f"{split}_features"
    if not outer.is_dir():
        raise DataError(f"{outer}: features folder not found (expected {outer} or {nested})")
    if not nested.is_dir():
        return outer
    siblings = [e for e in os.scandir(outer) if e.name != nested.name and not e.name.startswith(".")]
    if not siblings:
        return nested
    sample = (rel_paths or [])[:: max(1, len(rel_paths or []) // 64)][:64]
    hits_nested = sum((nested / p).exists() for p in sample)
    hits_outer = sum((outer / p).exists() for p in sample)
    return nested if hits_nested > hits_outer else outer


def link_problem(root: Path, rel: str, target: str) -> str:
    """The line naming a file that a symbolic link takes outside the data directory."""
    return (f"{root / rel}: symbolic link to {target}, outside the data directory; "
            f"pass --allow-outside-paths to allow it")


def readable_root(data_dir: str | Path, split: str, rel_paths: list[str]) -> Path:
    """`features_root`, after refusing meta rows that a symbolic link takes outside `data_dir`.

    Every reader of the .npy files (load, pack) goes through here, so the policy of
    `artistsim.data.paths` holds for them all; `validate` lists every such row instead.
    """
    root = features_root(data_dir, split, rel_paths)
    if not outside_allowed():
        escaped = escaping_links(data_dir, root, rel_paths)
        if escaped:
            row, target = min(escaped.items())
            more = f" (+{len(escaped) - 1} more rows)" if len(escaped) > 1 else ""
            raise meta_line(split, row, DataError(link_problem(root, rel_paths[row], target) + more))
    return root


# --------------------------------------------------------------------------- .npy files


def feature_dim(data_dir: str | Path) -> int:
    """D of a data folder: its front-end record's `dim` (512, the competition's, without one)."""
    try:
        return read_frontend(data_dir).dim
    except ProvenanceError as exc:
        raise DataError(str(exc)) from None


def check_shape(shape: tuple[int, ...], where: Path | str, dim: int = FEATURE_DIM) -> int:
    """Return T for a valid (dim, T) shape; otherwise raise with what is wrong."""
    if len(shape) != 2:
        raise DataError(f"{where}: expected a 2-D array ({dim}, T), got shape {shape}")
    rows, cols = shape
    if rows != dim:
        if cols == dim:
            raise DataError(
                f"{where}: shape {shape} looks transposed: expected ({dim}, T) "
                f"with features in rows and frames in columns"
            )
        raise DataError(f"{where}: expected {dim} rows (features, as frontend.json's dim says), got shape {shape}")
    if not 1 <= cols <= MAX_FRAMES:
        raise DataError(f"{where}: expected 1 <= T <= {MAX_FRAMES} frames, got T = {cols}")
    return cols


def read_features(path: Path, dim: int = FEATURE_DIM) -> np.ndarray:
    """One track as stored, (dim, T), after every check: shape, float dtype, complete, and
    finite once cast to float32.

    One open and one read per file (validate reads every file of a dataset). The finite
    check covers the cast: a float64 value beyond float32's range is finite in the file
    but inf in a float32 store or model.
    """
    with open_npy(path, "feature file") as fh:
        shape, fortran, dtype = read_header(fh, path)
        check_shape(shape, path, dim)
        if not np.issubdtype(dtype, np.floating):
            raise DataError(f"{path}: expected float features, got dtype {dtype}")
        nbytes = check_size(fh, path, shape, dtype)
        flat = np.frombuffer(fh.read(nbytes), dtype=dtype)
    arr = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    if dtype.itemsize <= 4:  # float16 / float32: the cast cannot overflow
        finite = np.isfinite(arr)
    else:
        with np.errstate(over="ignore"):  # overflow is reported below, with the file
            finite = np.isfinite(arr.astype(np.float32))
    if not finite.all():
        bad = int((~finite).sum())
        if np.isfinite(arr).all():
            raise DataError(f"{path}: {bad} value(s) beyond the float32 range "
                            f"(max |x| = {float(np.abs(arr).max()):.3g} in {dtype})")
        raise DataError(f"{path}: {bad} NaN/Inf value(s)")
    return arr


def load_npy(path: Path, dim: int = FEATURE_DIM) -> np.ndarray:
    """Load one track as (T, dim) float32, checked (see `read_features`)."""
    return np.ascontiguousarray(read_features(path, dim).T, dtype=np.float32)


def meta_line(split: str, row: int, exc: Exception) -> DataError:
    """`exc` prefixed with the meta row it belongs to: readers and validate name both."""
    return DataError(f"{split}_meta.tsv line {row + 2}: {exc}")


# --------------------------------------------------------------------------- sources


class FeatureSource(Protocol):
    """Frames of one split's tracks, in meta order."""

    lengths: np.ndarray  # (N,) int64 true frame counts

    def gather(self, rows: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        """Frames `frame_idx[i]` (each < lengths[rows[i]]) of track `rows[i]`: (n, L, D) float32."""
        ...


class NpyFiles:
    """One `.npy` per track, read on demand: the seed's layout, the fallback when unpacked."""

    def __init__(self, paths: list[Path], lengths: np.ndarray, dim: int = FEATURE_DIM):
        self.paths = paths
        self.lengths = lengths
        self.dim = dim

    @classmethod
    def index(cls, root: Path, rel_paths: list[str], progress: bool | None = None,
              split: str | None = None, dim: int = FEATURE_DIM) -> NpyFiles:
        """Read every file's header (shape check, truncation check) to learn true lengths."""
        from tqdm.auto import tqdm

        split = split or root.name.removesuffix("_features")
        paths = [root / p for p in rel_paths]
        lengths = np.empty(len(paths), dtype=np.int64)
        for i, path in enumerate(tqdm(paths, desc="Indexing features", disable=progress_disabled(progress), leave=False)):
            try:
                shape, _ = read_npy_header(path)
                lengths[i] = check_shape(shape, path, dim)
            except DataError as exc:
                raise meta_line(split, i, exc) from None
        return cls(paths, lengths, dim)

    def gather(self, rows: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), frame_idx.shape[1], self.dim), dtype=np.float32)
        for i, row in enumerate(rows):  # one file per track: I/O bound by nature
            out[i] = load_npy(self.paths[row], self.dim)[frame_idx[i]]
        return out


def progress_disabled(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None hides bars when not on a terminal, as users expect."""
    return None if progress is None else not progress
