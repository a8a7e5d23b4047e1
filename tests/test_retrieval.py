"""Exact search, FAISS indexes and the threshold rerank against brute-force references.

Tie handling is tested on "exact" embeddings: 16 of 32 coordinates are +-0.25, the rest 0,
so every row has norm exactly 1 and every dot product (of rows or of sums of rows) is
computed without rounding in float32. Scores then tie exactly wherever they tie
mathematically, and any implementation must produce bit-identical rankings.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artistsim.retrieval import faiss_topk, recall_at_k, rerank, search, topk

# ----------------------------------------------------------------------------- data


def exact_vectors(rng: np.random.Generator, n: int, dim: int = 32, nonzero: int = 16) -> np.ndarray:
    out = np.zeros((n, dim), dtype=np.float32)
    for row in out:
        support = rng.choice(dim, size=nonzero, replace=False)
        row[support] = rng.choice([-0.25, 0.25], size=nonzero)
    return out


def perturb(rng: np.random.Generator, v: np.ndarray, flips: int, moves: int) -> np.ndarray:
    """Flip `flips` signs and move `moves` nonzeros to empty coordinates (norm stays 1)."""
    v = v.copy()
    on = np.flatnonzero(v)
    v[rng.choice(on, size=flips, replace=False)] *= -1
    for _ in range(moves):
        src = rng.choice(np.flatnonzero(v))
        dst = rng.choice(np.flatnonzero(v == 0))
        v[dst], v[src] = v[src], 0.0
    return v


def exact_clusters(rng: np.random.Generator, n_clusters: int = 30, max_size: int = 16) -> np.ndarray:
    """Clusters of 1..max_size members 0-2 edits from a centre (some duplicates), shuffled."""
    rows = []
    for centre in exact_vectors(rng, n_clusters):
        for _ in range(int(rng.integers(1, max_size + 1))):
            edits = int(rng.integers(0, 3))
            flips = int(rng.integers(0, edits + 1))
            rows.append(perturb(rng, centre, flips, edits - flips))
    x = np.stack(rows)
    return x[rng.permutation(len(x))]


def brute_force(x: np.ndarray, k: int, exclude_self: bool = True, normalize: bool = True):
    """Full similarity matrix in float64, stable sort: score desc, then lower index."""
    x = x.astype(np.float64)
    if normalize:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(sims, order, axis=1)
    order = np.where(np.isneginf(scores), -1, order)
    return scores, order


def assert_same_up_to_near_ties(x, indices, scores, ref_indices, ref_scores, atol=1e-5):
    """Equal indices wherever the reference scores are not within atol of a neighbour."""
    np.testing.assert_allclose(scores, ref_scores, atol=atol)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    rows, cols = np.nonzero(indices != ref_indices)
    for r, c in zip(rows, cols):
        # a swap is only acceptable between candidates whose true scores nearly tie
        assert abs(float(xn[r] @ xn[indices[r, c]]) - ref_scores[r, c]) < atol
    valid = indices >= 0
    true_scores = np.einsum("nd,nkd->nk", xn, xn[np.where(valid, indices, 0)])
    np.testing.assert_allclose(scores[valid], true_scores[valid], atol=atol)


# ----------------------------------------------------------------------------- topk / search


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
    untouched = rerank(x, scores, indices, threshold=2.0, k=12)
    np.testing.assert_array_equal(untouched, indices)
    everything = rerank(x, scores, indices, threshold=-2.0, k=12)
    np.testing.assert_array_equal(everything, naive_rerank(x, scores, indices, -2.0, 12))
    np.testing.assert_array_equal(everything, indices)  # all listed: nothing left to fill
    assert (rerank(x, scores, indices, threshold=-2.0, k=5) == indices[:, :5]).all()


def test_rerank_torch_input_and_errors():
    rng = np.random.default_rng(13)
    x = exact_clusters(rng, n_clusters=8)
    scores, indices = topk(x, 8)
    np.testing.assert_array_equal(
        rerank(torch.from_numpy(x), scores, indices, k=8), rerank(x, scores, indices, k=8)
    )
    bad = indices.copy()
    bad[3, 2] = 3
    with pytest.raises(ValueError, match="query row 3 is in its own list"):
        rerank(x, scores, bad, k=8)
    with pytest.raises(ValueError, match="shape"):
        rerank(x, scores[:-1], indices[:-1], k=8)


# ----------------------------------------------------------------------------- backends


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


def test_rerank_faiss_backend_identical_to_naive():
    rng = np.random.default_rng(23)
    x = exact_clusters(rng, n_clusters=40, max_size=30)
    scores, indices = topk(x, 13, backend="faiss")
    got = rerank(x, scores, indices, threshold=0.85, k=10, backend="faiss")
    np.testing.assert_array_equal(got, naive_rerank(x, scores, indices, 0.85, 10))


def test_backend_choice_and_errors():
    from artistsim import retrieval

    small = torch.zeros(10, 4)
    big = torch.zeros(4096, 4)
    assert retrieval._choose_backend("auto", small, small) == "torch"
    assert retrieval._choose_backend("auto", big, big) == "faiss"
    with pytest.raises(ValueError, match="backend"):
        topk(np.ones((4, 3), dtype=np.float32), 2, backend="gpu")
