"""Read a TensorFlow checkpoint (the "tensor bundle" format) without TensorFlow.

Why: the `musicnn` package ships its trained weights as TF1 checkpoints, and TensorFlow
(2.15, numpy < 2) cannot share the project's environment. The format is small enough to
read by hand:

- `<prefix>.index` is an SSTable (LevelDB's table format): data blocks of prefix-compressed
  key/value entries, an index block pointing at them, a 48-byte footer (two block handles
  and the magic number 0xdb4775248b80fb57). Every block is followed by a 5-byte trailer
  (compression type, CRC); TensorFlow writes blocks uncompressed.
- each key is a variable name; its value is a `BundleEntryProto` protobuf (dtype, shape,
  shard id, offset, size); the empty key holds the `BundleHeaderProto` (shard count,
  endianness). The protobufs are read field by field (varints), no protobuf library.
- `<prefix>.data-0000K-of-0000N` holds the raw little-endian bytes at (offset, size).

Anything unexpected (a compressed block, a dtype not listed, a size that does not match the
shape, a truncated data file) raises `BundleError`: a model that silently runs on random
weights (as musicnn's own extractor does when its checkpoint fails to load) is worse than
no model.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
# TensorFlow's DataType enum -> numpy little-endian dtypes (the ones a checkpoint of weights holds).
DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 6: "i1", 9: "<i8", 10: "?", 19: "<f2"}


class BundleError(ValueError):
    """A checkpoint that cannot be read exactly (the message names the file)."""


@dataclass(frozen=True)
class Entry:
    """Where one tensor lies: its dtype code, shape, shard and byte range."""

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at `pos`: (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise BundleError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of each field of a protobuf message; bytes for wire type 2."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise BundleError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise BundleError("truncated protobuf message")
        yield number, wire, value


def _shape(buf: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim (field 2) each with size (field 1)."""
    dims = []
    for number, _, value in _fields(buf):
        if number == 2:
            size = next((v for n, _, v in _fields(value) if n == 1), 0)
            dims.append(size)
        elif number == 3 and value:
            raise BundleError("tensor of unknown rank")
    return tuple(dims)


def _entry(buf: bytes) -> Entry:
    d = {1: 0, 2: b"", 3: 0, 4: 0, 5: 0}
    for number, _, value in _fields(buf):
        if number == 7:
            raise BundleError("partitioned (sliced) variables are not supported")
        if number in d:
            d[number] = value
    return Entry(d[1], _shape(d[2]), d[3], d[4], d[5])


def _block(data: bytes, handle: bytes) -> tuple[bytes, bytes]:
    """The contents of the block a handle (varint offset, varint size) points at, and what follows."""
    offset, pos = _varint(handle, 0)
    size, pos = _varint(handle, pos)
    if offset + size + 5 > len(data):
        raise BundleError("block handle points past the end of the index file")
    if data[offset + size] != 0:
        raise BundleError(f"compressed table block (type {data[offset + size]}); only uncompressed is read")
    return data[offset : offset + size], handle[pos:]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one table block (keys prefix-compressed against the previous key)."""
    if len(block) < 4:
        raise BundleError("table block too short")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise BundleError("table block restart array overruns the block")
    out, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + vlen]))
        pos += vlen
    if pos != end:
        raise BundleError("table block entries overrun the restart array")
    return out


def read_index(index_path: str | Path) -> dict[str, Entry]:
    """Every tensor entry of a bundle's `.index` file, by variable name."""
    path = Path(index_path)
    try:
        data = path.read_bytes()
        if len(data) < FOOTER_SIZE or struct.unpack_from("<Q", data, len(data) - 8)[0] != MAGIC:
            raise BundleError("not a TensorFlow checkpoint index (bad table magic)")
        footer = data[-FOOTER_SIZE:-8]
        _, rest = _block(data, footer)  # the metaindex block (unused)
        index_block, _ = _block(data, rest)
        entries: dict[str, Entry] = {}
        header_seen = False
        for _, handle in _block_entries(index_block):
            block, _ = _block(data, handle)
            for key, value in _block_entries(block):
                if key == b"":
                    header_seen = True
                    header = {n: v for n, _, v in _fields(value)}
                    if header.get(2, 0) != 0:
                        raise BundleError("big-endian checkpoint")
                    continue
                entries[key.decode("utf-8")] = _entry(value)
    except OSError as exc:
        raise BundleError(f"{path}: cannot read ({exc.strerror})") from None
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from None
    if not header_seen:
        raise BundleError(f"{path}: no bundle header entry")
    return entries


def read_bundle(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint at `prefix` (files `prefix.index`, `prefix.data-*`)."""
    prefix = str(prefix)
    entries = read_index(prefix + ".index")
    shards = 1 + max((e.shard for e in entries.values()), default=0)
    blobs = {}
    for k in range(shards):
        path = Path(f"{prefix}.data-{k:05d}-of-{shards:05d}")
        try:
            blobs[k] = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{path}: cannot read ({exc.strerror})") from None
    out = {}
    for name, e in entries.items():
        if e.dtype not in DTYPES:
            raise BundleError(f"{prefix}.index: tensor {name!r} has unsupported dtype code {e.dtype}")
        dtype = np.dtype(DTYPES[e.dtype])
        want = dtype.itemsize * int(np.prod(e.shape, dtype=np.int64))
        blob = blobs[e.shard]
        if e.size != want or e.offset + e.size > len(blob):
            raise BundleError(f"{prefix}: tensor {name!r} of shape {e.shape} has {e.size} bytes at "
                              f"{e.offset}, expected {want} within a {len(blob)}-byte data file")
        out[name] = np.frombuffer(blob, dtype, count=want // dtype.itemsize, offset=e.offset).reshape(e.shape).copy()
    return out
