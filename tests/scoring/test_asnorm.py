"""AS-norm and artist centroids against direct per-row computations, and what AS-norm is for."""

from __future__ import annotations

import numpy as np
import pytest

from artistsim.evaluation.metrics import ndcg_at_k
from artistsim.search.exact import topk
from artistsim.scoring.asnorm import artist_centroids, as_norm, cohort_stats, cohort_stats_exact
from artistsim.search.pipeline import InferenceSettings, PipelineState, rank_all


def as_norm_order(emb, cohort, top_k: int, k: int) -> np.ndarray:
    """The ranking pipeline with only its AS-norm step on, lists k deep."""
    state = PipelineState(InferenceSettings(as_norm_top_k=top_k, rerank_threshold=None), None, cohort)
    return rank_all(unit(emb).astype(np.float32), state, k, depth=k)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_artist_centroids_match_a_loop_over_artists():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 8)).astype(np.float32) * rng.uniform(0.5, 3, size=(40, 1)).astype(np.float32)
    labels = rng.choice([5, 17, 99, 3], size=40)
    uniq, cent = artist_centroids(emb, labels)
    assert list(uniq) == [3, 5, 17, 99]
    for a, c in zip(uniq, cent):
        expected = unit(unit(emb[labels == a]).mean(axis=0))
        np.testing.assert_allclose(c, expected, atol=1e-5)
    with pytest.raises(ValueError, match="labels must have shape"):
        artist_centroids(emb, labels[:-1])


def test_cohort_stats_match_brute_force_with_exclusion():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(25, 6)).astype(np.float32)
    cohort = rng.normal(size=(30, 6)).astype(np.float32)
    exclude = rng.integers(-1, 30, size=25)
    mean, std = cohort_stats(x, cohort, top_k=7, exclude=exclude)
    sims = unit(x) @ unit(cohort).T
    for i in range(25):
        row = np.delete(sims[i], exclude[i]) if exclude[i] >= 0 else sims[i]
        top = np.sort(row)[::-1][:7]
        assert mean[i] == pytest.approx(top.mean(), abs=1e-5)
        assert std[i] == pytest.approx(top.std(), abs=1e-5)
    # top_k larger than the cohort uses the whole cohort
    m_all, _ = cohort_stats(x, cohort, top_k=10_000)
    np.testing.assert_allclose(m_all, sims.mean(axis=1), atol=1e-5)
    with pytest.raises(ValueError, match="top_k"):
        cohort_stats(x, cohort, top_k=0)


def test_as_norm_formula_and_empty_slots():
    s = np.array([[0.8, 0.7, -np.inf]], dtype=np.float32)
    q = (np.array([0.5]), np.array([0.1]))
    t = (np.array([[0.75, 0.1, 0.0]]), np.array([[0.05, 0.2, 1.0]]))
    out = as_norm(s, q, t)
    assert out[0, 0] == pytest.approx(0.5 * ((0.8 - 0.5) / 0.1 + (0.8 - 0.75) / 0.05), rel=1e-5)
    assert out[0, 1] == pytest.approx(0.5 * ((0.7 - 0.5) / 0.1 + (0.7 - 0.1) / 0.2), rel=1e-5)
    assert out[0, 2] == -np.inf


def test_hub_candidate_is_demoted_and_lists_keep_their_members():
    """A 'hub' close to the whole cohort (a generic-sounding track) loses its place to a true match."""
    d = 16
    rng = np.random.default_rng(2)
    g = unit(rng.normal(size=d))
    cohort = unit(g + 0.4 * rng.normal(size=(50, d)))  # other artists share a generic sound g
    q = unit(rng.normal(size=d))
    q = unit(q - (q @ g) * g)  # the query itself is not generic
    hub = unit(1.0 * g + 1.5 * q)
    other = unit(rng.normal(size=d))
    mate = unit(0.8 * q + 0.6 * unit(other - (other @ g) * g))
    emb = np.stack([q, hub, mate]).astype(np.float32)
    scores, idx = topk(emb, k=2)
    assert idx[0, 0] == 1  # raw cosine puts the hub first
    new_idx = as_norm_order(emb, cohort.astype(np.float32), 10, 2)
    assert new_idx[0, 0] == 2 and new_idx[0, 1] == 1
    assert sorted(new_idx[1]) == sorted(idx[1])  # only reordered


def test_as_norm_improves_ranking_when_tracks_differ_in_hubness():
    """Tracks carry a shared generic component in varying amounts; AS-norm removes its pull."""
    rng = np.random.default_rng(0)
    d, per = 32, 6
    generic = unit(rng.normal(size=d))

    def tracks(n_artists: int) -> tuple[np.ndarray, np.ndarray]:
        artists = unit(rng.normal(size=(n_artists, d)))
        labels = np.repeat(np.arange(n_artists), per)
        amount = rng.uniform(0.0, 3.0, size=len(labels))
        noise = 0.35 * rng.normal(size=(len(labels), d))
        return (artists[labels] + amount[:, None] * generic + noise).astype(np.float32), labels

    emb, labels = tracks(60)
    _, cohort = artist_centroids(*tracks(200))  # training artists, never the ones ranked
    scores, idx = topk(emb, k=60)
    plain = ndcg_at_k(idx, labels, k=60)
    normed_idx = as_norm_order(emb, cohort, 50, 60)
    assert ndcg_at_k(normed_idx, labels, k=60) > plain + 0.004


def test_exact_cohort_stats_do_not_depend_on_the_batch():
    """A row's statistics alone and among many are the same float32 numbers (catalogue vs predict)."""
    rng = np.random.default_rng(4)
    x = unit(rng.normal(size=(300, 24)))
    cohort = unit(rng.normal(size=(80, 24)))
    mean, std = cohort_stats_exact(x, cohort, 10)
    for i in (0, 17, 299):
        m1, s1 = cohort_stats_exact(x[i : i + 1], cohort, 10)
        assert m1[0] == mean[i] and s1[0] == std[i]
    fast = cohort_stats(x, cohort, 10)
    np.testing.assert_allclose(fast[0], mean, atol=1e-5)
