from __future__ import annotations

import numpy as np
import pytest

from artistsim.search.exact import topk
from artistsim.search.expansion import expand_queries


def test_expansion_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(60, 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    scores, idx = topk(e, k=10)
    got_scores, got = expand_queries(e, scores, idx, depth=3, alpha=2.0, k=10, backend="torch")
    for q in range(len(e)):
        w = np.maximum(scores[q, :3], 0) ** 2
        v = e[q] + (w[:, None] * e[idx[q, :3]]).sum(0)
        v /= np.linalg.norm(v)
        sims = e @ v
        sims[q] = -np.inf
        want = np.argsort(-sims, kind="stable")[:10]
        assert list(got[q]) == list(want)
        assert np.allclose(got_scores[q], sims[want], atol=1e-5)


def test_expansion_rejects_a_bad_depth():
    e = np.eye(4, dtype=np.float32)
    scores, idx = topk(e, k=2)
    with pytest.raises(ValueError, match="depth"):
        expand_queries(e, scores, idx, depth=0)
