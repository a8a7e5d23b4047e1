"""The one checked .npy loader: every way an array file can be wrong is one DataError naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from artistsim.data.arrays import load_array
from artistsim.data.errors import DataError


def _save(tmp_path: Path, arr: np.ndarray, name: str = "a.npy") -> Path:
    path = tmp_path / name
    np.save(path, arr, allow_pickle=True)
    return path


def test_a_good_array_loads_plain_and_mapped(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = _save(tmp_path, x)
    assert np.array_equal(load_array(path, dtypes=("float32",), ndim=2), x)
    mapped = load_array(path, dtypes=("float32",), ndim=2, mmap=True)
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, x)
    assert np.array_equal(load_array(_save(tmp_path, np.asfortranarray(x), "f.npy"), dtypes=("float32",)), x)


@pytest.mark.parametrize("damage, needle", [
    (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    (lambda p: p.write_bytes(p.read_bytes()[:-10]), "truncated"),
    (lambda p: p.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n"), "not an .npy file"),
    (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickled Python objects"),
    (lambda p: np.save(p, np.ones((3, 4), np.float64)), "dtype float64, expected float32"),
    (lambda p: np.save(p, np.ones(12, np.float32)), "expected a 2-D array"),
    (lambda p: np.save(p, np.full((3, 4), np.nan, np.float32)), "12 NaN/Inf"),
    (lambda p: np.save(p, np.full((3, 4), 3e38, np.float32)), "magnitude above"),
    (lambda p: p.unlink(), "not found"),
])
def test_bad_files_are_one_line_naming_the_file(tmp_path, damage, needle):
    path = _save(tmp_path, np.ones((3, 4), np.float32))
    damage(path)
    with pytest.raises(DataError) as err:
        load_array(path, dtypes=("float32",), ndim=2)
    line = str(err.value)
    assert line.startswith(str(path)) and needle in line and "\n" not in line and "root:" not in line
