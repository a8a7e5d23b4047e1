"""The PLDA back end in the ranking pipeline: its lists are the brute-force LLR's, its settings load and save."""

from __future__ import annotations

import numpy as np
import pytest

from artistsim.scoring.plda import PairLLR
from artistsim.search.ann import IndexSearcher
from artistsim.search.backend import COSINE, Plda
from artistsim.search.pipeline import InferenceSettings, PipelineState, rank_all
from artistsim.scoring.asnorm import artist_centroids


def _data(seed: int = 0, n_artists: int = 50, per: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of artists that differ in 8 directions, with large within-artist noise in 16 more."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_artists), per)
    x = np.concatenate([np.repeat(rng.normal(size=(n_artists, 8)), per, axis=0) + 0.4 * rng.normal(size=(len(labels), 8)),
                        2.0 * rng.normal(size=(len(labels), 16))], axis=1)
    x = x @ np.linalg.qr(np.random.default_rng(99).normal(size=(24, 24)))[0]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.fixture(scope="module")
def world():
    train, train_labels = _data(0)
    test, _ = _data(1, n_artists=30)
    return train, train_labels, test, PairLLR.fit(train, train_labels, 0.2)


def test_plda_lists_are_the_brute_force_llr_lists(world):
    """rank_all under PLDA (key search, float64 re-scoring) = argsort of the float64 LLR matrix, ties aside."""
    _, _, test, plda = world
    k = 20
    got = rank_all(test, PipelineState(InferenceSettings(rerank_threshold=None, backend="plda"), plda=plda), k, k)
    llr = plda.llr(test, test)
    np.fill_diagonal(llr, -np.inf)
    want = np.argsort(-llr, axis=1, kind="stable")[:, :k]
    cosine = rank_all(test, PipelineState(InferenceSettings(rerank_threshold=None)), k, k)
    assert (cosine != want).any()  # the back end changes the lists here
    top = -np.sort(-llr, axis=1)[:, : k + 1]
    clear = (-np.diff(top, axis=1)).min(axis=1) > 1e-4  # no near-tie within the list
    assert clear.sum() > len(test) // 2
    assert np.array_equal(got[clear], want[clear])


def test_every_step_runs_under_plda_and_faiss_candidates_agree(world):
    """AS-norm (LLR cohort statistics), expansion and rerank under PLDA; FAISS indexes over the PLDA points
    (L2: flat, and HNSW, exhaustive at this size) give the same lists as exact search over the keys."""
    train, train_labels, test, plda = world
    settings = InferenceSettings(as_norm_top_k=5, rerank_threshold=0.5, expansion_depth=2, backend="plda")
    state = PipelineState(settings, None, artist_centroids(train, train_labels)[1], plda)
    exact = rank_all(test, state, 15, 15)
    for kind in ("flat", "hnsw"):
        searcher = IndexSearcher(test, kind, stats=state.row_stats(test), backend=state.backend)
        assert np.array_equal(rank_all(test, state, 15, 15, searcher=searcher), exact)
    plain = rank_all(test, PipelineState(InferenceSettings(rerank_threshold=None, backend="plda"), plda=plda), 15, 15)
    assert (exact != plain).any()


def test_as_norm_statistics_are_llrs_against_the_cohort(world):
    train, train_labels, test, plda = world
    cohort = artist_centroids(train, train_labels)[1]
    state = PipelineState(InferenceSettings(as_norm_top_k=4, backend="plda"), None, cohort, plda)
    top = -np.sort(-plda.llr(test[:5], cohort), axis=1)[:, :4]
    stats = state.row_stats(test[:5])
    assert np.allclose(stats[:, 0], top.mean(axis=1), rtol=1e-4)
    assert np.allclose(stats[:, 1], top.std(axis=1), rtol=1e-3)


def test_settings_round_trip_and_old_records_load_as_cosine(world):
    _, _, _, plda = world
    state = PipelineState(InferenceSettings(backend="plda", plda_shrinkage=0.2), plda=plda)
    back = PipelineState.from_parts(state.settings.to_record(), state.arrays(), "x.json")
    assert back.settings == state.settings and isinstance(back.backend, Plda)
    assert np.array_equal(back.plda.transform, plda.transform)
    old = {k: v for k, v in InferenceSettings().to_record().items() if k not in ("backend", "plda_shrinkage")}
    assert PipelineState.from_parts(old, {"cohort": np.zeros((0, 0))}, "old.json").backend is COSINE
    with pytest.raises(ValueError, match="old.json: the PLDA back end is on but no PLDA was saved"):
        PipelineState.from_parts({**old, "backend": "plda"}, {}, "old.json")
    with pytest.raises(ValueError, match="backend"):
        PipelineState.from_parts({**old, "backend": "lda"}, {}, "old.json")
