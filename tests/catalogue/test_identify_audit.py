"""Identification and the audit on structured random embeddings with planted label swaps."""

from __future__ import annotations

import numpy as np
import pytest

from artistsim.catalogue.audit import DEFAULT_METHOD, audit, plant_swaps, precision_at
from artistsim.catalogue.identify import artist_model, calibrate, equal_error_rate, identify


def clustered(n_artists: int = 60, per: int = 10, d: int = 32, spread: float = 0.6, seed: int = 0):
    """Artists as random centres, tracks as noisy copies; artists differ in spread (some are diffuse)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_artists, d))
    s = spread * rng.uniform(0.5, 1.5, size=(n_artists, 1))
    labels = np.repeat(np.arange(n_artists) * 3 + 100, per)
    x = np.repeat(centres, per, axis=0) + np.repeat(s, per, axis=0) * rng.normal(size=(n_artists * per, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_plant_swaps_moves_exactly_the_planted_rows_to_other_artists():
    _, y = clustered()
    noisy, rows = plant_swaps(y, 0.03, seed=1)
    assert len(rows) == 18 and (noisy[rows] != y[rows]).all()
    assert (np.delete(noisy, rows) == np.delete(y, rows)).all()
    assert set(noisy[rows]) <= set(y)


@pytest.mark.parametrize("method", ["plda", "predictive", "loo", "asnorm"])
def test_audit_finds_planted_swaps(method):
    wins, base = [], []
    for seed in range(3):
        x, y = clustered(spread=0.9, per=6, seed=seed)
        noisy, planted = plant_swaps(y, 0.03, seed=seed)
        ranked = audit(x, noisy, method=method)
        wins.append(precision_at(ranked.rows, planted))
        base.append(precision_at(audit(x, noisy, method="margin").rows, planted))
        top = ranked.rows[0]
        if top in planted:  # the suspected artist of a caught swap is its true artist
            assert ranked.suspected[0] == y[top]
    assert np.mean(wins) > 0.85 and np.mean(base) > 0.5
    if method in ("loo", "predictive", DEFAULT_METHOD):  # at least as good as the plain centroid margin
        assert np.mean(wins) >= np.mean(base)


@pytest.mark.parametrize("method", ["plda", "predictive", "loo"])
def test_leave_one_out_sees_a_swap_into_a_two_track_artist(method):
    x, y = clustered(n_artists=10, per=2, spread=0.3)
    noisy = y.copy()
    noisy[0] = y[2]  # track 0 of artist A now claims artist B (which has 2 other tracks... and itself)
    assert audit(x, noisy, method=method).rows[0] == 0


def uneven(n_artists: int = 80, d: int = 32, seed: int = 0):
    """Artists of 2 to 30 tracks and of very different spreads, as catalogues are."""
    rng = np.random.default_rng(seed)
    counts = rng.choice([2, 3, 4, 12, 30], size=n_artists, p=[0.3, 0.2, 0.2, 0.2, 0.1])
    centres = rng.normal(size=(n_artists, d))
    spread = np.repeat(rng.uniform(0.3, 2.0, size=n_artists), counts)[:, None]
    labels = np.repeat(np.arange(n_artists) * 7 + 5, counts)
    x = np.repeat(centres, counts, axis=0) + spread * rng.normal(size=(counts.sum(), d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_default_beats_the_centroid_margins_on_uneven_artists():
    """Clean tracks of small or diffuse artists crowd the top of a centroid margin; not of the default."""
    prec = {m: [] for m in ("plda", "predictive", "loo", "margin")}
    for seed in range(6):
        x, y = uneven(seed=seed)
        noisy, planted = plant_swaps(y, 0.03, seed)
        for m in prec:
            prec[m].append(precision_at(audit(x, noisy, method=m).rows, planted))
    mean = {m: float(np.mean(v)) for m, v in prec.items()}
    assert DEFAULT_METHOD == "plda"
    assert mean["plda"] >= mean["margin"] + 0.08  # measured 0.80 (no per-artist spread) against 0.71
    assert mean["predictive"] >= mean["margin"] + 0.08  # measured 0.85 against 0.71
    assert mean["predictive"] >= mean["loo"] + 0.03  # measured 0.85 against 0.79


def test_identify_known_and_unknown():
    x, y = clustered(spread=0.4)
    enrolled = y < 100 + 3 * 45
    model = artist_model(x[enrolled], y[enrolled])
    cal = calibrate(x, y, far=0.05)
    assert 0 <= cal["eer"] < 0.2 and cal["closed_set_top1"] > 0.8
    res = identify(model, x, cal["threshold"], k=3)
    known_right = (res.artists[enrolled, 0] == y[enrolled]) & res.known[enrolled]
    assert known_right.mean() > 0.7 and res.known[~enrolled].mean() < 0.5


def test_equal_error_rate_on_separable_and_overlapping_scores():
    assert equal_error_rate(np.array([0.9, 0.8]), np.array([0.1, 0.2]))[0] == 0.0
    eer, _ = equal_error_rate(np.linspace(0, 1, 101), np.linspace(0, 1, 101))
    assert 0.4 < eer < 0.6
    with pytest.raises(ValueError):
        equal_error_rate(np.array([]), np.array([0.1]))
