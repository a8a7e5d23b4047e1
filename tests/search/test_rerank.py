"""The pipeline's rerank and expansion steps: identical to naive per-query versions of their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from search_cases import exact_clusters

from artistsim.search.exact import topk
from artistsim.search.pipeline import InferenceSettings, PipelineState, rank_all


def rerank(x, scores, indices, *, threshold=0.85, k=100, **_):
    """The pipeline with only its rerank step on, lists `k` deep (the first search is the pipeline's own)."""
    e = x.numpy() if isinstance(x, torch.Tensor) else x
    e = (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)
    return rank_all(e, PipelineState(InferenceSettings(rerank_threshold=threshold)), k, depth=k)


def naive_rerank(x: np.ndarray, scores, indices, threshold: float, k: int) -> np.ndarray:
    """The rerank definition, one query at a time, in float64."""
    e = x.astype(np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    out = np.full((len(e), k), -1, dtype=np.int64)
    for q in range(len(e)):
        ranked = [int(j) for j in indices[q][:k]]
        listed = [j for j, s in zip(ranked, scores[q][:k]) if j >= 0 and float(s) > threshold]
        if not listed:
            out[q, : len(ranked)] = ranked
            continue
        # cosine with the average = (e @ total) / |total| (rows have norm 1): same order,
        # and exact on these data, where normalising the average would round
        total = e[q] + e[listed].sum(axis=0)
        sims = e @ total
        nearest = sorted(range(len(e)), key=lambda j: (-sims[j], j))
        fill = [j for j in nearest if j != q and j not in listed]
        final = (listed + fill)[:k]
        out[q, : len(final)] = final
    return out


@pytest.mark.parametrize(
    ("seed", "k", "threshold", "max_size"),
    [(8, 10, 0.85, 16), (9, 10, 0.875, 30), (10, 25, 0.85, 40), (11, 6, 0.7, 16)],
)
def test_rerank_identical_to_naive(seed, k, threshold, max_size):
    rng = np.random.default_rng(seed)
    x = exact_clusters(rng, max_size=max_size)
    scores, indices = topk(x, k + 3)
    got = rerank(x, scores, indices, threshold=threshold, k=k, chunk_size=17)
    want = naive_rerank(x, scores, indices, threshold, k)
    np.testing.assert_array_equal(got, want)
    above = ((scores[:, :k] > threshold) & (indices[:, :k] >= 0)).sum(axis=1)
    # the data exercise all three branches: no expansion, partial expansion, full list
    assert (above == 0).any() and ((above > 0) & (above < k)).any() and (above == k).any()
    assert (got != indices[:, :k]).any()
    assert not (got == np.arange(len(x))[:, None]).any()
    assert all(len(set(row)) == k for row in got.tolist())


def test_rerank_threshold_extremes_and_short_lists():
    rng = np.random.default_rng(12)
    x = exact_clusters(rng, n_clusters=4)[:9]
    scores, indices = topk(x, 12)  # 8 real neighbours, then -1 padding
    untouched = rerank(x, scores, indices, threshold=2.0, k=12)  # lists of every other row: 8
    np.testing.assert_array_equal(untouched, indices[:, :8])
    everything = rerank(x, scores, indices, threshold=-2.0, k=12)
    np.testing.assert_array_equal(everything, naive_rerank(x, scores, indices, -2.0, 12)[:, :8])
    np.testing.assert_array_equal(everything, indices[:, :8])  # all listed: nothing left to fill
    assert (rerank(x, scores, indices, threshold=-2.0, k=5) == indices[:, :5]).all()


def test_rerank_torch_input_is_the_same():
    rng = np.random.default_rng(13)
    x = exact_clusters(rng, n_clusters=8)
    scores, indices = topk(x, 8)
    np.testing.assert_array_equal(rerank(torch.from_numpy(x), scores, indices, k=8), rerank(x, scores, indices, k=8))


def test_expansion_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(60, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    scores, idx = topk(e, k=10)
    got = rank_all(e, PipelineState(InferenceSettings(rerank_threshold=None, expansion_depth=3)), 10, depth=10)
    for q in range(len(e)):
        w = np.maximum(scores[q, :3].astype(np.float64), 0) ** 3  # ALPHA = 3
        v = e[q] + (w[:, None] * e[idx[q, :3]]).sum(0)
        sims = e.astype(np.float64) @ (v / np.linalg.norm(v))
        sims[q] = -np.inf
        want = np.argsort(-sims, kind="stable")[:10]
        assert list(got[q]) == list(want)


# ----------------------------------------------------------------------------- backends


def test_rerank_faiss_backend_identical_to_naive():
    rng = np.random.default_rng(23)
    x = exact_clusters(rng, n_clusters=40, max_size=30)
    scores, indices = topk(x, 13, backend="faiss")
    got = rerank(x, scores, indices, threshold=0.85, k=10, backend="faiss")
    np.testing.assert_array_equal(got, naive_rerank(x, scores, indices, 0.85, 10))
