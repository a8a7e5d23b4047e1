"""The Gaussian artist model: its leave-one-out algebra and what artist size and spread do to it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from artistsim.scoring.predictive import fit, log_scores


def tracks(seed: int = 0, d: int = 16):
    rng = np.random.default_rng(seed)
    counts = np.array([2, 5, 9, 3])
    labels = np.repeat([10, 20, 30, 40], counts)
    x = np.repeat(rng.normal(size=(4, d)), counts, axis=0) + 0.7 * rng.normal(size=(counts.sum(), d))
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def test_own_column_is_the_artist_without_the_track():
    x, y = tracks()
    model = fit(x, y)
    own = np.searchsorted(model.artists, y)
    scores = log_scores(model, x, own)
    for i in (0, 4, 10):  # a track of a two-track artist, of a mid-size one, of the largest
        a = own[i]
        sums, counts = model.sums.copy(), model.counts.copy()
        sums[a] -= x[i] - model.centre
        counts[a] -= 1
        without = replace(model, sums=sums, counts=counts)
        expected = log_scores(without, x[i:i + 1], np.array([-1]))[0]
        assert np.isclose(scores[i, a], expected[a])
        others = np.arange(len(model.artists)) != a
        assert np.allclose(scores[i, others], expected[others])  # other artists untouched


def test_small_artists_are_placed_less_surely_and_diffuse_artists_tolerate_far_tracks():
    x, y = tracks(d=8)
    model = fit(x, y)
    probe = model.centre + model.sums[2] / model.counts[2]  # at artist 30's mean (9 tracks)
    few = replace(model, counts=np.where(np.arange(4) == 2, 1.0, model.counts),
                  sums=np.where((np.arange(4) == 2)[:, None], model.sums / model.counts[:, None], model.sums))
    assert log_scores(model, probe[None], np.array([-1]))[0, 2] > log_scores(few, probe[None], np.array([-1]))[0, 2]
    far = model.centre - model.sums[2] / model.counts[2]  # opposite the mean
    diffuse = replace(model, within=model.within * np.where(np.arange(4) == 2, 4.0, 1.0))
    assert log_scores(diffuse, far[None], np.array([-1]))[0, 2] > log_scores(model, far[None], np.array([-1]))[0, 2]


def test_pooled_and_between_variance_by_moments():
    rng = np.random.default_rng(1)
    d, per = 20, 50
    centres = 2.0 * rng.normal(size=(40, d))
    x = np.repeat(centres, per, axis=0) + rng.normal(size=(40 * per, d))
    model = fit(x, np.repeat(np.arange(40), per), prior_tracks=0.0)
    assert abs(model.pooled / d - 1.0) < 0.05  # within: unit variance per dimension
    assert abs(model.between / d - 4.0) < 1.0  # between: 2^2 per dimension (40 artists: rough)
