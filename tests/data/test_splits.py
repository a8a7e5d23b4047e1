"""Splits: true lengths, crops, artist hold-outs and folds, test labels from ground truth."""

from __future__ import annotations

import numpy as np

from artistsim.data.splits import crop_indices, fold_artists, full_batch, load_split, split_artists


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


def test_validation_floor_of_artists():
    """A small training set still validates on `min_artists` artists, never on more than half."""
    artists = np.repeat(np.arange(25), 6)
    assert len(np.unique(artists[split_artists(artists, 0.1, seed=0)])) == 2
    floored = split_artists(artists, 0.1, seed=0, min_artists=8)
    assert len(np.unique(artists[floored])) == 8
    assert not np.intersect1d(artists[floored], artists[~floored]).size
    few = np.repeat(np.arange(6), 3)
    assert len(np.unique(few[split_artists(few, 0.1, seed=0, min_artists=8)])) == 3
    # Where the fraction already holds out enough artists, the floor changes nothing.
    many = np.repeat(np.arange(400), 2)
    assert np.array_equal(split_artists(many, 0.1, seed=4, min_artists=8), split_artists(many, 0.1, seed=4))


def test_test_split_labels_from_ground_truth(tiny_data):
    test = load_split(tiny_data, "test")
    assert test.artists is not None and len(np.unique(test.artists)) == 3
