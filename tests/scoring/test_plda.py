"""The two-covariance (PLDA) artist model: its algebra, what it weighs, and its calibrated shrinkage."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from artistsim.catalogue.audit import audit, calibrate_shrinkage, plant_swaps, precision_at
from artistsim.scoring.plda import fit, log_scores


def nuisance(n_artists: int = 60, per: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Artists differ in 8 directions; 24 more carry large track-to-track noise only (a random basis hides which)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_artists) * 3 + 100, per)
    art = np.repeat(rng.normal(size=(n_artists, 8)), per, axis=0) + 0.35 * rng.normal(size=(len(labels), 8))
    x = np.concatenate([art, 2.0 * rng.normal(size=(len(labels), 24))], axis=1)
    x = x @ np.linalg.qr(rng.normal(size=(32, 32)))[0]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def isotropic(d: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """60 artists of 4 tracks in 128 dimensions: fewer within-artist degrees of freedom (180) than dimensions."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(60), 4)
    x = np.repeat(rng.normal(size=(60, d)), 4, axis=0) + 0.9 * rng.normal(size=(len(labels), d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_own_column_is_the_artist_without_the_track():
    x, y = nuisance(n_artists=12, per=5)
    model = fit(x, y, 0.2)
    own = np.searchsorted(model.artists, y)
    scores = log_scores(model, x, own)
    for i in (0, 17, 59):
        a = own[i]
        z = (x[i].astype(np.float64) - model.centre) @ model.transform
        without = replace(model, sums=np.where(np.arange(12)[:, None] == a, model.sums - z, model.sums),
                          counts=model.counts - (np.arange(12) == a))
        expected = log_scores(without, x[i:i + 1], np.array([-1]))[0]
        assert np.isclose(scores[i, a], expected[a])
        others = np.arange(12) != a
        assert np.allclose(scores[i, others], expected[others])  # other artists untouched


def test_map_whitens_the_within_scatter_and_diagonalises_the_between():
    x, y = nuisance()
    model = fit(x, y, 0.0)
    z = (x.astype(np.float64) - model.centre) @ model.transform
    inverse = np.searchsorted(model.artists, y)
    residual = z - (model.sums / model.counts[:, None])[inverse]
    within = residual.T @ residual / (len(y) - len(model.artists))
    assert np.allclose(within, np.eye(32), atol=1e-6)
    means = model.sums / model.counts[:, None]
    between = means.T @ means / len(model.artists) - np.mean(1 / model.counts) * np.eye(32)
    assert np.allclose(between, np.diag(np.diag(between)), atol=1e-6)
    # 8 directions tell the artists apart, 24 do not
    phi = np.sort(model.between)
    assert phi[-8:].min() > 5 * phi[:24].max()


def test_directions_no_artist_differs_in_stop_hiding_swaps():
    """The isotropic model drowns in the nuisance directions; PLDA weighs them out."""
    prec = {"plda": [], "predictive": []}
    for seed in range(3):
        x, y = nuisance(seed=seed)
        noisy, planted = plant_swaps(y, 0.03, seed)
        for m in prec:
            prec[m].append(precision_at(audit(x, noisy, method=m).rows, planted))
    assert np.mean(prec["plda"]) >= 0.9  # measured 1.0
    assert np.mean(prec["plda"]) >= np.mean(prec["predictive"]) + 0.5  # measured 1.0 against 0.16


def test_calibration_shrinks_only_when_the_scatter_is_not_to_be_trusted():
    picked, unshrunk, calibrated = [], [], []
    for seed in range(4):
        x, y = isotropic(seed=seed)
        noisy, planted = plant_swaps(y, 0.03, seed)
        picked.append(calibrate_shrinkage(x, noisy))
        unshrunk.append(precision_at(audit(x, noisy, shrinkage=0.0).rows, planted))
        calibrated.append(precision_at(audit(x, noisy).rows, planted))
        x, y = nuisance(seed=seed)
        assert calibrate_shrinkage(x, plant_swaps(y, 0.03, seed)[0]) <= 0.2  # measured 0 or 0.05
    assert np.median(picked) >= 0.5  # measured 0.8, 0.9, 0.8, 0.5
    assert np.mean(calibrated) >= np.mean(unshrunk) + 0.15  # measured 1.0 against 0.74


def test_calibration_draws_whole_artists_from_a_large_catalogue():
    x, y = nuisance(n_artists=200)
    assert calibrate_shrinkage(x, y, max_tracks=300) <= 0.2  # 37 artists drawn, still the nuisance found
    with pytest.raises(ValueError, match="shrinkage"):
        fit(x, y, 1.5)


def test_pair_llr_is_the_predictive_llr_of_one_track_against_one_track():
    """The quadratic form's coefficients against the model's own predictive LLR with n = 1 artists."""
    from artistsim.scoring.plda import PairLLR, llr

    x, y = nuisance(n_artists=20, per=5)
    model = fit(x, y, 0.3)
    pair = PairLLR.from_model(model)
    ys = x[::7]
    z = (ys.astype(np.float64) - model.centre) @ model.transform
    singles = replace(model, artists=np.arange(len(ys)), sums=z, counts=np.ones(len(ys)))
    want = llr(singles, x[:30])
    got = pair.llr(x[:30], ys)
    assert np.abs(got - want).max() < 1e-8 * np.abs(want).max()
    sym = pair.llr(ys, ys)
    assert np.abs(sym - sym.T).max() < 1e-10 * np.abs(sym).max()


def test_key_inner_product_ranks_as_the_llr():
    """Top-k by [u, 1] . [u, g.u^2] (float64 of the float32 keys) is the brute-force LLR top-k, ties aside."""
    from artistsim.scoring.plda import PairLLR

    rng = np.random.default_rng(4)
    x, y = nuisance(n_artists=40, per=6, seed=2)
    pair = PairLLR.fit(x, y, 0.1)
    q = rng.normal(size=(25, x.shape[1]))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    brute = pair.llr(q, x)
    keyed = pair.query_keys(q).astype(np.float64) @ pair.track_keys(x).astype(np.float64).T
    offset = pair.track_keys(q)[:, -1].astype(np.float64) + pair.const
    assert np.abs(keyed + offset[:, None] - brute).max() < 1e-4 * np.abs(brute).max()
    k, checked = 10, 0
    for b, s in zip(brute, keyed):
        gaps = -np.diff(np.sort(b)[::-1][: k + 1])
        if gaps.min() < 1e-4 * np.abs(b).max():  # a near-tie inside the top-k: its order is float32's call
            continue
        assert list(np.argsort(-b)[:k]) == list(np.argsort(-s)[:k])
        checked += 1
    assert checked >= 20


def test_pair_llr_arrays_round_trip():
    from artistsim.scoring.plda import PairLLR

    x, y = nuisance(n_artists=10, per=4)
    pair = PairLLR.fit(x, y, 0.5)
    back = PairLLR.from_arrays(pair.arrays())
    assert back is not None
    assert np.array_equal(back.track_keys(x), pair.track_keys(x))
    assert PairLLR.from_arrays({}) is None
    with pytest.raises(ValueError, match="do not fit"):
        PairLLR.from_arrays({**pair.arrays(), "plda_gain": np.ones(3)})
