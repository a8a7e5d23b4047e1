"""The TF checkpoint reader (artistsim.audio.tf_bundle) on tiny checkpoints written here by hand.

The writer below follows the format byte by byte (LevelDB table + BundleEntryProto), so the
reader is tested without TensorFlow; the real musicnn checkpoints are read in test_musicnn.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from artistsim.audio.tf_bundle import MAGIC, BundleError, read_bundle, read_index


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _block(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A table block; each key shares its prefix with the previous one (as LevelDB writes)."""
    out, prev = bytearray(), b""
    for key, value in pairs:
        shared = 0
        while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
            shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        prev = key
    return bytes(out) + struct.pack("<II", 0, 1)  # one restart point at 0


def write_bundle(prefix: Path, tensors: dict[str, np.ndarray], compression: int = 0,
                 dtype_codes: dict[str, int] | None = None) -> None:
    """A one-shard checkpoint: `prefix.index` and `prefix.data-00000-of-00001`."""
    codes = {np.dtype("<f4"): 1, np.dtype("<i8"): 9}
    data, pairs = bytearray(), [(b"", _field(1, 1) + _field(3, _field(1, 1)))]  # header: 1 shard, little-endian
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C")  # (ascontiguousarray would make a scalar 1-d)
        shape = b"".join(_field(2, _field(1, d)) for d in a.shape)
        code = (dtype_codes or {}).get(name, codes[a.dtype])
        pairs.append((name.encode(), _field(1, code) + _field(2, shape) + _field(4, len(data)) + _field(5, a.nbytes)))
        data += a.tobytes()
    table = bytearray()

    def add(block: bytes) -> bytes:
        handle = _varint(len(table)) + _varint(len(block))
        table.extend(block + bytes([compression]) + b"\0\0\0\0")
        return handle

    data_handle = add(_block(pairs))
    meta_handle = add(_block([]))
    index_handle = add(_block([(pairs[-1][0], data_handle)]))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", MAGIC)
    Path(f"{prefix}.index").write_bytes(bytes(table) + footer)
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))


TENSORS = {
    "dense/kernel": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "dense/bias": np.array([-1.5, 2.25, 0.0], dtype=np.float32),
    "global_step": np.array(12345678901, dtype=np.int64),
    "conv/kernel": np.linspace(-1, 1, 2 * 1 * 1 * 4, dtype=np.float32).reshape(2, 1, 1, 4),
}


def test_a_hand_written_checkpoint_reads_back_exactly(tmp_path):
    write_bundle(tmp_path / "ckpt", TENSORS)
    got = read_bundle(tmp_path / "ckpt")
    assert sorted(got) == sorted(TENSORS)
    for name, want in TENSORS.items():
        assert got[name].dtype == want.dtype and got[name].shape == want.shape
        np.testing.assert_array_equal(got[name], want)
    entry = read_index(f"{tmp_path / 'ckpt'}.index")["dense/kernel"]
    assert (entry.dtype, entry.shape, entry.shard, entry.size) == (1, (2, 3), 0, 24)


def test_a_truncated_data_file_is_an_error_naming_the_tensor(tmp_path):
    write_bundle(tmp_path / "ckpt", TENSORS)
    data = tmp_path / "ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-8])
    with pytest.raises(BundleError, match="'global_step'|'dense/kernel'|'dense/bias'|'conv/kernel'"):
        read_bundle(tmp_path / "ckpt")


def test_a_missing_data_file_names_it(tmp_path):
    write_bundle(tmp_path / "ckpt", TENSORS)
    (tmp_path / "ckpt.data-00000-of-00001").unlink()
    with pytest.raises(BundleError, match=r"ckpt\.data-00000-of-00001: cannot read"):
        read_bundle(tmp_path / "ckpt")


def test_not_a_checkpoint_index(tmp_path):
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    with pytest.raises(BundleError, match=r"x\.index: not a TensorFlow checkpoint index"):
        read_index(tmp_path / "x.index")


def test_a_compressed_table_is_refused_not_misread(tmp_path):
    write_bundle(tmp_path / "ckpt", TENSORS, compression=1)
    with pytest.raises(BundleError, match="compressed table block"):
        read_bundle(tmp_path / "ckpt")


def test_an_unknown_dtype_is_refused(tmp_path):
    write_bundle(tmp_path / "ckpt", TENSORS, dtype_codes={"dense/bias": 7})  # DT_STRING
    with pytest.raises(BundleError, match="'dense/bias' has unsupported dtype code 7"):
        read_bundle(tmp_path / "ckpt")
