"""The random-feature LDA encoder: its forward pass is the documented computation, padding excluded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artistsim.config import RandomFeatureConfig
from artistsim.models import build_model, describe
from artistsim.models.random_features import RandomFeatureLDA


def _fitted(seed: int = 0) -> tuple[RandomFeatureLDA, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cfg = RandomFeatureConfig(input_dim=12, num_features=20, embedding_dim=6)
    model = RandomFeatureLDA(cfg)
    centre, directions = rng.normal(size=12), rng.normal(size=(12, 20))
    mean, components = rng.normal(size=20), rng.normal(size=(20, 4))
    model.set_directions(centre, directions)
    model.set_lda(mean, components)
    return model.eval(), centre, directions, mean, components


def test_forward_is_the_mean_of_absolute_random_projections_then_the_lda():
    model, centre, directions, mean, components = _fitted()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 9, 12)).astype(np.float32)
    lengths = np.array([9, 4, 1])
    out = model(torch.from_numpy(x), torch.from_numpy(lengths)).detach().numpy()
    for b, n in enumerate(lengths):
        pooled = np.abs((x[b, :n] - centre) @ directions).mean(0)
        expected = (pooled - mean) @ components
        np.testing.assert_allclose(out[b, :4], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(out[b, 4:], 0.0, atol=1e-6)  # directions beyond the LDA's are zero


def test_padding_never_changes_a_track():
    model, *_ = _fitted()
    x = torch.randn(1, 5, 12)
    padded = torch.cat([x, torch.full((1, 7, 12), 50.0)], dim=1)
    a = model(x, torch.tensor([5]))
    b = model(padded, torch.tensor([5]))
    torch.testing.assert_close(a, b)


def test_unfitted_outputs_zeros_and_has_no_trainable_parameters():
    model = build_model(RandomFeatureConfig(input_dim=12, num_features=8, embedding_dim=4))
    assert isinstance(model, RandomFeatureLDA)
    assert torch.count_nonzero(model(torch.randn(2, 3, 12), torch.tensor([3, 2]))) == 0
    assert not any(p.requires_grad for p in model.parameters())
    assert "random-feature LDA" in describe(model)


def test_maps_of_the_wrong_shape_are_refused():
    model = RandomFeatureLDA(RandomFeatureConfig(input_dim=12, num_features=8, embedding_dim=4))
    with pytest.raises(ValueError, match="not fit"):
        model.set_directions(np.zeros(12), np.zeros((12, 9)))
    with pytest.raises(ValueError, match="not fit"):
        model.set_lda(np.zeros(8), np.zeros((8, 5)))  # 5 directions > embedding_dim 4


def test_state_round_trips_through_a_state_dict():
    model, *_ = _fitted()
    copy = RandomFeatureLDA(model.cfg)
    copy.load_state_dict(model.state_dict())
    x, lengths = torch.randn(2, 6, 12), torch.tensor([6, 3])
    torch.testing.assert_close(copy.eval()(x, lengths), model(x, lengths))
