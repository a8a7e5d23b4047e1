from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from artistsim.data import (
    DataError,
    crop_indices,
    fold_artists,
    full_batch,
    load_split,
    read_meta,
    split_artists,
)
from artistsim.store import PackedStore, pack_split, store_exists, store_paths
from artistsim.validate import validate_dataset
from conftest import write_tiny_dataset


def _first_feature(root: Path) -> Path:
    meta = read_meta(root, "train")
    return root / "train_features" / meta["archive_features_path"].iloc[0]


def test_reads_both_layouts(tmp_path):
    flat = load_split(write_tiny_dataset(tmp_path / "flat"), "train")
    nested = load_split(write_tiny_dataset(tmp_path / "nested", nested=True), "train")
    assert np.array_equal(flat.source.lengths, nested.source.lengths)
    rows = np.arange(3)
    assert np.array_equal(full_batch(flat.source, rows)[0], full_batch(nested.source, rows)[0])


def test_true_lengths_and_zero_padding(tiny_data):
    split = load_split(tiny_data, "train")
    meta = split.meta
    raw = [np.load(tiny_data / "train_features" / p) for p in meta["archive_features_path"]]
    assert split.source.lengths.tolist() == [a.shape[1] for a in raw]
    rows = np.arange(len(raw))
    x, lengths = full_batch(split.source, rows)
    assert x.shape == (len(raw), max(lengths), 512)
    for i, a in enumerate(raw):
        assert np.allclose(x[i, : a.shape[1]], a.T)
        assert not x[i, a.shape[1] :].any()


def test_crop_wrap_and_zero():
    lengths = np.array([81, 5, 10])
    idx, true = crop_indices(lengths, 10, np.random.default_rng(0), "wrap")
    assert true.tolist() == [10, 5, 10]
    assert idx[1].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert idx[2].tolist() == list(range(10))
    assert (np.diff(idx[0]) == 1).all() and idx[0].max() < 81
    idx_zero, _ = crop_indices(lengths, 10, None, "zero")
    assert idx_zero[1].max() == 4


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


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.unlink(), "not found"),
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated"),
        (lambda p: np.save(p, np.zeros((20, 512), np.float32)), "transposed"),
        (lambda p: np.save(p, np.zeros((256, 20), np.float32)), "512 rows"),
        (lambda p: np.save(p, np.zeros((512, 90), np.float32)), "T <= 81"),
        (lambda p: np.save(p, np.zeros((512,), np.float32)), "2-D"),
        (lambda p: np.save(p, np.full((512, 9), np.inf, np.float32)), "NaN/Inf"),
    ],
)
def test_validate_names_bad_file(tiny_data, damage, message):
    path = _first_feature(tiny_data)
    damage(path)
    report = validate_dataset(tiny_data, progress=False)
    assert not report.ok
    assert any(message in e and path.name in e and "line 2" in e for e in report.errors), report.errors


def test_validate_clean_and_single_track_artist(tiny_data):
    assert validate_dataset(tiny_data, progress=False).ok
    meta_file = tiny_data / "train_meta.tsv"
    lines = meta_file.read_text().splitlines()
    tid, _, path = lines[1].split("\t")
    lines[1] = f"{tid}\t555555\t{path}"
    meta_file.write_text("\n".join(lines) + "\n")
    report = validate_dataset(tiny_data, progress=False)
    assert report.ok and any("one track" in w and "555555" in w for w in report.warnings)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ls: ls + [ls[1]], "duplicate trackid at line 2"),
        (lambda ls: ["trackid\tartist\tarchive_features_path"] + ls[1:], "missing column"),
        (lambda ls: ls[:1] + ["abc\t1\tx.npy"] + ls[2:], "line 2: column 'trackid' must be an integer"),
    ],
)
def test_meta_errors_name_row(tiny_data, edit, message):
    meta_file = tiny_data / "train_meta.tsv"
    meta_file.write_text("\n".join(edit(meta_file.read_text().splitlines())) + "\n")
    with pytest.raises(DataError, match=message):
        read_meta(tiny_data, "train")
    assert any(message in e for e in validate_dataset(tiny_data, progress=False).errors)


def test_split_by_artist():
    artists = np.repeat(np.arange(100) * 13 + 5, 4)
    val = split_artists(artists, 0.1, seed=3)
    assert len(np.unique(artists[val])) == 10
    assert not np.intersect1d(artists[val], artists[~val]).size
    assert np.array_equal(val, split_artists(artists, 0.1, seed=3))
    folds = np.stack([fold_artists(artists, 5, k, seed=1) for k in range(5)])
    assert (folds.sum(0) == 1).all()
    for k in range(5):
        assert not np.intersect1d(artists[folds[k]], artists[~folds[k]]).size


def test_test_split_labels_from_ground_truth(tiny_data):
    test = load_split(tiny_data, "test")
    assert test.artists is not None and len(np.unique(test.artists)) == 3
