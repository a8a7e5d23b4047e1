from __future__ import annotations

import numpy as np
import pytest

from artistsim.scoring.lda import LDA, WCCN, centre_normalise


def _classes(rng, n_classes: int, per: int, dim: int, spread: float):
    labels = np.repeat(np.arange(n_classes), per)
    x = rng.normal(size=(n_classes, dim))[labels] + spread * rng.normal(size=(len(labels), dim))
    return (x * rng.uniform(0.1, 10, size=dim)).astype(np.float32), labels  # dims on very different scales


def test_lda_keeps_at_most_one_direction_fewer_than_the_classes_and_wccn_is_not_capped():
    x, labels = _classes(np.random.default_rng(0), 5, 20, 30, 1.0)
    assert LDA(128, 0.1).fit(x, labels).components_.shape == (30, 4)
    assert WCCN(128, 0.5).fit(x, labels).components_.shape == (30, 30)
    assert WCCN(12, 0.5).fit(x, labels).components_.shape == (30, 12)


def test_wccn_at_full_shrinkage_ranks_like_standardised_features():
    """Shrinkage 1 whitens by the diagonal of the total scatter: per-dimension standardisation,
    up to a rotation, so every cosine between tracks is the standardised features' cosine."""
    x, labels = _classes(np.random.default_rng(1), 8, 10, 12, 1.0)
    wccn = WCCN(12, 1.0).fit(x, labels)
    ours = centre_normalise(wccn.transform(x))
    std = x.astype(np.float64) / x.std(0)
    expected = centre_normalise(std.astype(np.float32))
    np.testing.assert_allclose(ours @ ours.T, expected @ expected.T, atol=1e-4)


def test_wccn_whitens_the_within_class_scatter_at_zero_shrinkage():
    x, labels = _classes(np.random.default_rng(2), 10, 30, 8, 0.7)
    z = WCCN(8, 0.0).fit(x, labels).transform(x).astype(np.float64)
    means = np.stack([z[labels == c].mean(0) for c in range(10)])
    within = z - means[labels]
    np.testing.assert_allclose(within.T @ within / len(z), np.eye(8), atol=1e-3)


def test_wccn_truncated_is_the_narrower_fit():
    x, labels = _classes(np.random.default_rng(3), 6, 15, 20, 1.0)
    wide = WCCN(20, 0.9).fit(x, labels)
    narrow = WCCN(7, 0.9).fit(x, labels)
    np.testing.assert_allclose(np.abs(wide.truncated(7).components_), np.abs(narrow.components_), rtol=1e-4,
                               atol=1e-6)
    assert wide.truncated(7).describe() == "shrinkage 0.9, 7 directions"


@pytest.mark.parametrize("shrinkage", [0.0, 0.5, 1.0])
def test_wccn_handles_a_constant_dimension(shrinkage):
    x, labels = _classes(np.random.default_rng(4), 6, 10, 10, 1.0)
    x[:, 3] = 2.0
    z = WCCN(10, shrinkage).fit(x, labels).transform(x)
    assert np.isfinite(z).all()
