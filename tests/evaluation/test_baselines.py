from __future__ import annotations

import numpy as np
import pytest

from artistsim.data.splits import full_batch, load_split
from artistsim.evaluation.baselines import LDA, baseline_embeddings, centre_normalise, pooled_stats
from artistsim.evaluation.metrics import ndcg_at_k
from artistsim.search.exact import topk


def test_pooled_stats_use_true_frames_only(tiny_data):
    split = load_split(tiny_data, "train")
    rows = np.arange(len(split.meta))
    mean, std = pooled_stats(split.source, rows, batch_size=5, progress=False)
    x, lengths = full_batch(split.source, rows)
    for i in range(len(rows)):
        frames = x[i, : lengths[i]]
        assert np.allclose(mean[i], frames.mean(0), atol=1e-5)
        assert np.allclose(std[i], frames.std(0), atol=1e-4)


def test_lda_finds_the_discriminative_direction():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(40), 6)
    centres = np.zeros((40, 20))
    centres[:, 0] = rng.normal(size=40) * 3  # class information in dim 0 only
    x = centres[labels] + rng.normal(size=(len(labels), 20)) * np.r_[0.3, np.full(19, 3.0)]
    plain = ndcg_at_k(topk(centre_normalise(x), k=20)[1], labels, k=20)
    lda = LDA(n_components=1).fit(x, labels)
    assert abs(lda.components_[0, 0]) > 10 * np.abs(lda.components_[1:, 0]).max()
    projected = ndcg_at_k(topk(np.c_[lda.transform(x), np.ones(len(x))], k=20)[1], labels, k=20)
    assert projected > plain


def test_unknown_method_and_missing_fit():
    stats = (np.ones((3, 4), np.float32), np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_embeddings("pca", None, None, stats)
    with pytest.raises(ValueError, match="needs training"):
        baseline_embeddings("lda", None, None, stats)
