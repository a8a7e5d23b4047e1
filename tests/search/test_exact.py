"""Exact search: brute-force agreement, tie order, exclusions, bad input, both backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from search_cases import assert_same_up_to_near_ties, brute_force, exact_vectors

from artistsim.search.exact import search, topk


@pytest.mark.parametrize("chunk_size", [7, 64, 4096])
def test_topk_matches_brute_force(chunk_size):
    x = np.random.default_rng(0).standard_normal((300, 24)).astype(np.float32)
    scores, indices = topk(x, 20, chunk_size=chunk_size)
    assert scores.dtype == np.float32 and indices.dtype == np.int64 and indices.shape == (300, 20)
    ref_scores, ref_indices = brute_force(x, 20)
    assert_same_up_to_near_ties(x, indices, scores, ref_indices, ref_scores)
    assert (np.diff(scores, axis=1) <= 0).all()
    assert not (indices == np.arange(300)[:, None]).any()


def test_topk_torch_input_equals_numpy_input():
    x = np.random.default_rng(1).standard_normal((120, 16)).astype(np.float32)
    s_np, i_np = topk(x, 10, chunk_size=50)
    s_t, i_t = topk(torch.from_numpy(x.astype(np.float64)), 10, chunk_size=50)
    np.testing.assert_array_equal(i_np, i_t)
    np.testing.assert_array_equal(s_np, s_t)
    assert isinstance(s_t, np.ndarray) and isinstance(i_t, np.ndarray)


@pytest.mark.parametrize("chunk_size", [3, 11, 4096])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_topk_ties_lower_index_first(chunk_size, exclude_self):
    rng = np.random.default_rng(2)
    distinct = exact_vectors(rng, 25)
    x = distinct[rng.integers(0, 25, size=160)]  # many exact duplicates -> ties at the cut
    scores, indices = topk(x, 12, chunk_size=chunk_size, exclude_self=exclude_self)
    ref_scores, ref_indices = brute_force(x, 12, exclude_self=exclude_self)
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))
    tied_at_cut = (np.sort(x @ x.T, axis=1)[:, ::-1][:, 12 - exclude_self] == scores[:, -1]).mean()
    assert tied_at_cut > 0.5  # the test really exercises boundary ties


def test_topk_fewer_rows_than_k():
    x = np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32)
    scores, indices = topk(x, 10)
    ref_scores, ref_indices = brute_force(x, 4)
    np.testing.assert_array_equal(indices[:, :4], ref_indices)
    np.testing.assert_allclose(scores[:, :4], ref_scores, atol=1e-6)
    assert (indices[:, 4:] == -1).all() and np.isneginf(scores[:, 4:]).all()
    scores, indices = topk(x[:1], 3)
    assert (indices == -1).all() and np.isneginf(scores).all()


def test_search_with_exclusion_matrix():
    rng = np.random.default_rng(4)
    catalogue = exact_vectors(rng, 80)
    queries = exact_vectors(rng, 30)
    exclude = np.where(rng.random((30, 6)) < 0.3, -1, rng.integers(0, 80, size=(30, 6)))
    scores, indices = search(queries, catalogue, 15, exclude=exclude, chunk_size=8)
    sims = queries.astype(np.float64) @ catalogue.T.astype(np.float64)
    for q in range(30):
        sims[q, exclude[q][exclude[q] >= 0]] = -np.inf
    order = np.argsort(-sims, axis=1, kind="stable")[:, :15]
    np.testing.assert_array_equal(indices, order)
    np.testing.assert_array_equal(scores, np.take_along_axis(sims, order, 1).astype(np.float32))


def test_search_rejects_bad_input():
    x = np.ones((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        topk(np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="dimension"):
        search(x, np.ones((4, 2)), 2)
    with pytest.raises(ValueError, match="exclude"):
        search(x, x, 2, exclude=np.array([0, 1]))
    with pytest.raises(ValueError, match="2-D"):
        topk(np.ones(4))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_values_rejected_and_huge_finite_ones_kept(bad):
    x = np.random.default_rng(3).standard_normal((50, 4)).astype(np.float32)
    x[17, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        search(x[:5], x, 3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        search(x, x[20:], 3)
    # finite values whose sum overflows float32 are valid input (cosine rescales them)
    huge = np.full((6, 4), 3e38, dtype=np.float32)
    huge[:, 0] = np.arange(6, dtype=np.float32)
    with np.errstate(over="ignore"):
        assert np.isinf(huge.sum(dtype=np.float32))
    scores, indices = topk(huge * np.array([1, -1, 1, -1], dtype=np.float32), 2, normalize=False, backend="torch")
    assert indices.shape == (6, 2) and (indices >= 0).all()


# ----------------------------------------------------------------------------- FAISS


@pytest.mark.parametrize("exclude_self", [True, False])
def test_faiss_backend_ties_identical_to_torch(exclude_self):
    """Exact duplicates put ties at the cut, where FAISS's own choice is arbitrary."""
    rng = np.random.default_rng(20)
    x = exact_vectors(rng, 25)[rng.integers(0, 25, size=300)]
    s_t, i_t = topk(x, 12, exclude_self=exclude_self, backend="torch")
    s_f, i_f = topk(x, 12, exclude_self=exclude_self, backend="faiss")
    np.testing.assert_array_equal(i_f, i_t)
    np.testing.assert_array_equal(s_f, s_t)
    ref_scores, ref_indices = brute_force(x, 12, exclude_self=exclude_self)
    np.testing.assert_array_equal(i_f, ref_indices)


def test_faiss_backend_matches_torch_on_generic_data_and_torch_input():
    x = np.random.default_rng(21).standard_normal((500, 24)).astype(np.float32)
    s_t, i_t = topk(x, 30, backend="torch")
    s_f, i_f = topk(torch.from_numpy(x), 30, backend="faiss")
    assert_same_up_to_near_ties(x, i_f, s_f, i_t, s_t)
    assert not (i_f == np.arange(500)[:, None]).any()


def test_faiss_backend_exclusion_matrix_and_small_catalogue():
    rng = np.random.default_rng(22)
    catalogue = exact_vectors(rng, 200)
    queries = exact_vectors(rng, 40)
    exclude = np.where(rng.random((40, 9)) < 0.3, -1, rng.integers(0, 200, size=(40, 9)))
    exclude[0] = exclude[0, 0]  # repeated exclusions of one row
    want = search(queries, catalogue, 15, exclude=exclude, backend="torch")
    got = search(queries, catalogue, 15, exclude=exclude, backend="faiss")
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])
    # k + exclusions reach the catalogue size: the FAISS request falls back, same answer
    small = search(queries, catalogue[:20], 15, exclude=np.minimum(exclude, 19), backend="faiss")
    np.testing.assert_array_equal(small[1], search(queries, catalogue[:20], 15, exclude=np.minimum(exclude, 19),
                                                   backend="torch")[1])


def test_backend_choice_and_errors():
    from artistsim.search import exact as retrieval

    small = torch.zeros(10, 4)
    big = torch.zeros(4096, 4)
    assert retrieval._choose_backend("auto", small, small) == "torch"
    assert retrieval._choose_backend("auto", big, big) == "faiss"
    with pytest.raises(ValueError, match="backend"):
        topk(np.ones((4, 3), dtype=np.float32), 2, backend="gpu")
