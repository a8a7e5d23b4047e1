"""The one checked loader for array files (.npy) that come from users or catalogues.

An .npy handed to a verb may be anything: empty (0 bytes), cut short by a full disk or a
killed copy, another dtype than promised (float64 embeddings in a float32 catalogue),
pickled Python objects (never loaded: `allow_pickle` stays off), NaN/Inf, or finite but
absurd numbers (every value 3e38, which overflows the first sum of squares into inf and
turns a track into a zero vector or a NaN score). Each of these ends here as one
DataError naming the file, never as an EOFError or an "internal error" later.

The header is read and the byte size compared with what it promises before any data is
read, so checking a file's shape costs one small read (indexing 167k feature files), and
no message ever quotes the file's bytes (a path may point at any file on the machine).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from artistsim.data.errors import DataError

# Features and embeddings live within a few hundred of zero; 1e6 leaves room for any
# scaling a user may apply while refusing values whose squares overflow float32.
MAX_ABS = 1e6


def open_npy(path: Path, what: str = "file") -> BinaryIO:
    """The file open for reading; DataError (not found, a directory, unreadable) naming it."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an .npy {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None


def read_header(fh: BinaryIO, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from an open .npy; DataError without quoting the bytes."""
    if os.fstat(fh.fileno()).st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), not an .npy array")
    try:
        version = np.lib.format.read_magic(fh)
    except (ValueError, EOFError):
        raise DataError(f"{path}: not an .npy file (no NUMPY magic string)") from None
    try:
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable .npy file (bad or truncated header: {type(exc).__name__})") from None
    if dtype.hasobject:
        raise DataError(f"{path}: holds pickled Python objects (dtype object), not numbers; "
                        f"such files are never loaded")
    return tuple(int(s) for s in shape), bool(fortran), dtype


def check_size(fh: BinaryIO, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Payload bytes the header promises; DataError when the file is shorter (truncated)."""
    expected = int(np.prod(shape)) * dtype.itemsize
    actual = os.fstat(fh.fileno()).st_size
    if actual < fh.tell() + expected:
        raise DataError(f"{path}: truncated: {actual} bytes, header promises {fh.tell() + expected}")
    return expected


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an .npy file from its header, checking the file is complete."""
    with open_npy(path) as fh:
        shape, _, dtype = read_header(fh, path)
        check_size(fh, path, shape, dtype)
    return shape, dtype


def check_values(arr: np.ndarray, where: str, max_abs: float | None = MAX_ABS) -> np.ndarray:
    """`arr` when every value is finite (and |x| <= max_abs); DataError naming `where` otherwise."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return arr
    finite = np.isfinite(arr)
    if not finite.all():
        raise DataError(f"{where}: {int((~finite).sum())} NaN/Inf value(s)")
    if max_abs is not None:
        big = np.abs(arr) > max_abs
        if big.any():
            raise DataError(f"{where}: {int(big.sum())} value(s) of magnitude above {max_abs:g}; "
                            f"not features or embeddings")
    return arr


def load_array(path: str | Path, *, dtypes: tuple[str, ...], ndim: int | None = None, what: str = "array file",
               max_abs: float | None = MAX_ABS, mmap: bool = False) -> np.ndarray:
    """An .npy array after every check: complete, one of `dtypes` (by name), `ndim` dimensions,
    and (floats) finite and within `max_abs`.

    `dtypes` is strict (("float32",) refuses float64: a catalogue's arrays are written as
    float32 / int64, so another dtype is damage, not a choice). With `mmap` the array is
    memory-mapped read-only and its values are not scanned (that would page in the whole
    segment at every open; `artistsim index check` reads them).
    """
    path = Path(path)
    with open_npy(path, what) as fh:
        shape, fortran, dtype = read_header(fh, path)
        if dtype.name not in dtypes:
            raise DataError(f"{path}: dtype {dtype.name}, expected {' or '.join(dtypes)}")
        if ndim is not None and len(shape) != ndim:
            raise DataError(f"{path}: expected a {ndim}-D array, got shape {shape}")
        nbytes = check_size(fh, path, shape, dtype)
        if mmap:
            offset = fh.tell()
        else:
            flat = np.frombuffer(fh.read(nbytes), dtype=dtype)
    if mmap:
        if nbytes == 0:
            return np.empty(shape, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
    arr = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    return check_values(arr, str(path), max_abs)
