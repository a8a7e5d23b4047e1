from __future__ import annotations

import numpy as np
import torch

from artistsim.config import TransformerConfig
from artistsim.data.splits import full_batch, load_split
from artistsim.embed import embed_full, embed_windows, ensemble, l2_normalise, window_plan
from artistsim.models import build_model


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = TransformerConfig(d_model=32, num_heads=2, num_layers=1, ffn_dim=32, embedding_dim=8, projector_hidden=16)
    return build_model(cfg).eval()


def test_window_plan_matches_seed_count():
    owner, starts, lengths = window_plan(np.array([81, 10, 7, 16]), window=10, hop=5)
    assert (owner == 0).sum() == 15  # the seed: 15 windows of 10 frames, hop 5, over 81
    assert starts[owner == 0].tolist() == list(range(0, 71, 5))
    assert starts[owner == 1].tolist() == [0] and starts[owner == 2].tolist() == [0]
    assert lengths[owner == 2].tolist() == [7]
    assert starts[owner == 3].tolist() == [0, 5]


def test_full_embedding_independent_of_batching(tiny_data):
    split = load_split(tiny_data, "train")
    rows = np.arange(len(split.meta))
    model = _model()
    a = embed_full(model, split.source, rows, torch.device("cpu"), batch_size=3)
    b = embed_full(model, split.source, rows[::-1], torch.device("cpu"), batch_size=50)[::-1]
    assert np.allclose(a, b, atol=1e-5)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_rolling_windows_equal_explicit_windows(tiny_data):
    split = load_split(tiny_data, "train")
    rows = np.array([0, 1, 2, 3])
    model = _model()
    got = embed_windows(model, split.source, rows, torch.device("cpu"), window=10, hop=5, batch_size=7)
    x, lengths = full_batch(split.source, rows)
    for i in range(len(rows)):
        t = int(lengths[i])
        starts = [0] if t <= 10 else range(0, t - 10 + 1, 5)
        wins = []
        for s in starts:
            w = torch.from_numpy(x[i : i + 1, s : s + min(10, t)])
            with torch.no_grad():
                wins.append(l2_normalise(model(w, torch.tensor([w.shape[1]])).numpy()))
        expected = l2_normalise(np.mean(np.concatenate(wins), axis=0, keepdims=True))
        assert np.allclose(got[i], expected[0], atol=1e-5)


def test_ensemble_normalised_and_raw():
    a = np.array([[3.0, 0.0], [0.0, 1.0]], np.float32)
    b = np.array([[0.0, 0.1], [0.1, 0.0]], np.float32)
    e = ensemble([a, b])
    assert e.shape == (2, 4)
    assert np.allclose(e[0], np.array([1, 0, 0, 1]) / np.sqrt(2))
    raw = ensemble([a, b], normalise=False)
    assert np.allclose(raw[0], l2_normalise(np.array([[3.0, 0, 0, 0.1]], np.float32))[0])
