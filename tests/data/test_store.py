"""The packed store: same frames as the files, float16 within rounding, atomic and guarded."""

from __future__ import annotations

import numpy as np
import pytest
from data_cases import _first_feature

from artistsim.data.layout import DataError
from artistsim.data.splits import crop_indices, full_batch, load_split
from artistsim.data.store import PackedStore, pack_split, store_exists, store_paths


def test_packed_store_matches_files(tiny_data):
    before = load_split(tiny_data, "train")
    summary = pack_split(tiny_data, "train", dtype="float32", progress=False)
    assert summary["status"] == "packed" and store_exists(tiny_data, "train")
    after = load_split(tiny_data, "train")
    assert isinstance(after.source, PackedStore)
    rows = np.array([3, 0, 7])
    idx, true = crop_indices(before.source.lengths[rows], 20, np.random.default_rng(1))
    assert np.array_equal(before.source.gather(rows, idx), after.source.gather(rows, idx))
    assert pack_split(tiny_data, "train", dtype="float32")["status"] == "up to date"


def test_pack_float16_close(tiny_data):
    pack_split(tiny_data, "test", progress=False)
    split = load_split(tiny_data, "test")
    x, _ = full_batch(split.source, np.arange(4))
    ref = np.load(tiny_data / "test_features" / split.meta["archive_features_path"].iloc[0]).T
    assert np.allclose(x[0, : len(ref)], ref, atol=1e-2)


def test_pack_refuses_mismatched_store(tiny_data):
    pack_split(tiny_data, "train", progress=False)
    meta_file = tiny_data / "train_meta.tsv"
    lines = meta_file.read_text().splitlines()
    meta_file.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match="does not match"):
        pack_split(tiny_data, "train", progress=False)
    with pytest.raises(DataError, match="does not match"):
        load_split(tiny_data, "train")
    assert pack_split(tiny_data, "train", force=True, progress=False)["status"] == "packed"


def test_pack_bad_file_leaves_nothing(tiny_data):
    arr = np.load(_first_feature(tiny_data))
    arr[0, 0] = np.nan
    np.save(_first_feature(tiny_data), arr)
    with pytest.raises(DataError, match="NaN"):
        pack_split(tiny_data, "train", progress=False)
    frames, index = store_paths(tiny_data, "train")
    assert not frames.exists() and not index.exists()
    assert not any(p.name.endswith(".tmp") for p in frames.parent.iterdir())
