from __future__ import annotations

import numpy as np

from artistsim.training.sampling import ArtistBatchSampler


def _artists(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**6, size=57, replace=False)  # non-contiguous ids
    return rng.permutation(np.repeat(ids, rng.integers(1, 12, size=57)))


def test_batches_hold_whole_artists_once_per_epoch():
    artists = _artists()
    sampler = ArtistBatchSampler(artists, artists_per_batch=8, seed=1)
    batches = sampler.batches(epoch=0)
    assert len(batches) == len(sampler) == 8
    rows = np.concatenate(batches)
    assert np.array_equal(np.sort(rows), np.arange(len(artists)))  # every track, once
    seen = [set(artists[b]) for b in batches]
    for i, s in enumerate(seen):
        assert len(s) <= 8
        for other in seen[i + 1 :]:
            assert not s & other
        for a in s:  # whole artists
            assert (artists[batches[i]] == a).sum() == (artists == a).sum()


def test_reshuffled_each_epoch_and_deterministic():
    artists = _artists()
    a = ArtistBatchSampler(artists, 8, seed=1)
    assert not all(np.array_equal(x, y) for x, y in zip(a.batches(0), a.batches(1)))
    b = ArtistBatchSampler(artists, 8, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a.batches(3), b.batches(3)))


def test_ranks_disjoint_and_equal_steps():
    artists = _artists()
    ranks = [ArtistBatchSampler(artists, 5, seed=2, rank=r, world_size=2) for r in range(2)]
    b0, b1 = ranks[0].batches(4), ranks[1].batches(4)
    assert len(b0) == len(b1) == len(ranks[0])
    assert not set(artists[np.concatenate(b0)]) & set(artists[np.concatenate(b1)])


def test_drop_single_track_artists():
    artists = np.array([1, 1, 2, 3, 3, 3, 4])
    rows = np.concatenate(ArtistBatchSampler(artists, 2, drop_single=True).batches(0))
    assert sorted(set(artists[rows])) == [1, 3]
