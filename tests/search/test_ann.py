"""FAISS indexes: flat equals exact search, approximate ones keep their recall."""

from __future__ import annotations

import numpy as np
import pytest
from search_cases import assert_same_up_to_near_ties

from artistsim.search.ann import faiss_topk, recall_at_k
from artistsim.search.exact import topk


def test_faiss_flat_equals_topk():
    x = np.random.default_rng(5).standard_normal((400, 32)).astype(np.float32)
    scores, indices = faiss_topk(x, 25, index="flat")
    ref_scores, ref_indices = topk(x, 25)
    assert_same_up_to_near_ties(x, indices, scores, ref_indices, ref_scores)
    assert not (indices == np.arange(400)[:, None]).any()


def test_faiss_fewer_rows_than_k_and_self_kept():
    x = np.random.default_rng(6).standard_normal((6, 8)).astype(np.float32)
    scores, indices = faiss_topk(x, 10)
    np.testing.assert_array_equal(indices[:, :5], topk(x, 5)[1])
    assert (indices[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    _, with_self = faiss_topk(x, 3, exclude_self=False)
    np.testing.assert_array_equal(with_self[:, 0], np.arange(6))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_recall(kind):
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((40, 32))
    x = (centres[rng.integers(0, 40, size=2000)] + 0.5 * rng.standard_normal((2000, 32))).astype(np.float32)
    _, exact = topk(x, 20)
    _, approx = faiss_topk(x, 20, index=kind, nprobe=16)
    assert not (approx == np.arange(2000)[:, None]).any()
    assert recall_at_k(approx, exact) > 0.9


def test_faiss_rejects_unknown_index():
    with pytest.raises(ValueError, match="flat"):
        faiss_topk(np.ones((3, 2), dtype=np.float32), 1, index="pq")


def test_recall_at_k():
    exact = np.array([[1, 2, 3, -1], [0, 2, 3, 4]])
    approx = np.array([[3, 9, 1, 1], [4, 0, -1, -1]])
    assert recall_at_k(approx, exact) == pytest.approx(4 / 7)
    assert recall_at_k(exact, exact) == 1.0


# ----------------------------------------------------------------------------- rerank
