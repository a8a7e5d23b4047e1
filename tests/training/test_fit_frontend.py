"""The LDA-initialised input layer: frame-level LDA directions, scaled to unit variance, and a
clear error for an encoder without an input projection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_tiny_dataset

from artistsim.config import TransformerConfig
from artistsim.data.splits import load_split
from artistsim.models import build_model
from artistsim.training.frontend import fit_input_norm, init_input_from_lda, sample_frames

SMALL = dict(input_dim=512, d_model=16, num_heads=2, num_layers=1, ffn_dim=32, projector_hidden=16, embedding_dim=8)


@pytest.fixture
def split(tmp_path):
    return load_split(write_tiny_dataset(tmp_path / "data", n_train_artists=8, tracks=4), "train", progress=False)


def _ratio(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Between-artist over within-artist variance of each column of z."""
    classes, inv = np.unique(labels, return_inverse=True)
    means = np.stack([z[inv == c].mean(0) for c in range(len(classes))])
    within = ((z - means[inv]) ** 2).mean(0)
    return ((means[inv] - z.mean(0)) ** 2).mean(0) / within


def test_input_layer_starts_as_a_unit_variance_frame_lda(split) -> None:
    torch.manual_seed(0)
    model = build_model(TransformerConfig(**SMALL))
    rows = np.arange(len(split.meta))
    labels = np.unique(split.artists, return_inverse=True)[1]
    random_w = model.input_proj.weight.detach().clone()
    k = init_input_from_lda(model, split, rows, labels, seed=0, max_frames=10**6)
    assert k == 7  # 8 artists: at most 7 discriminant directions; the other 9 rows stay random
    assert torch.equal(model.input_proj.weight[k:], random_w[k:])
    frames, frame_labels = sample_frames(split, rows, labels, 10**6, seed=0)
    with torch.no_grad():
        z = model.input_proj(torch.from_numpy(frames)).numpy().astype(np.float64)
    np.testing.assert_allclose(z[:, :k].mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(z[:, :k].std(0), 1.0, rtol=1e-3)
    # the LDA rows separate the artists far better than the random ones
    assert _ratio(z[:, :k], frame_labels).min() > 10 * _ratio(z[:, k:], frame_labels).max()


def test_an_encoder_without_input_projection_is_refused(split) -> None:
    model = build_model(TransformerConfig(**{**SMALL, "d_model": 512, "num_heads": 4}))
    with pytest.raises(ValueError, match="input projection"):
        init_input_from_lda(model, split, np.arange(len(split.meta)), np.zeros(len(split.meta), dtype=int))


def test_trainer_initialises_the_input_layer_when_asked(tmp_path) -> None:
    import artistsim.training.loop as train_mod
    from test_loop import tiny_config

    data = write_tiny_dataset(tmp_path / "data", n_train_artists=10, tracks=4)
    logged: list[str] = []
    cfg = tiny_config(stages=((3, 10, 1e-3, 1, False),), model_extra={"input_init": "lda"})
    train_mod.train(data, cfg, tmp_path / "run", progress=False, log=logged.append)
    assert any(m.startswith("input layer: 6 frame-level LDA directions") for m in logged), logged


def test_input_norm_standardises_the_training_frames_and_lda_init_sees_them(split) -> None:
    torch.manual_seed(0)
    model = build_model(TransformerConfig(**SMALL, input_norm="global"))
    rows = np.arange(len(split.meta))
    labels = np.unique(split.artists, return_inverse=True)[1]
    frames = sample_frames(split, rows, labels, 10**6, seed=0)[0]
    x = torch.from_numpy(frames)
    assert not torch.allclose(model.input_norm(x), (x - x.mean(0)) / x.std(0), atol=1e-2)  # unfitted: identity
    fit_input_norm(model, split, rows, labels, seed=0, max_frames=10**6)
    with torch.no_grad():
        z = model.input_norm(torch.from_numpy(sample_frames(split, rows, labels, 10**6, seed=0)[0])).numpy()
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-3)
    # the input layer's LDA is fitted on normalised frames: unit variance after both
    k = init_input_from_lda(model, split, rows, labels, seed=0, max_frames=10**6)
    with torch.no_grad():
        p = model.input_proj(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(p[:, :k].std(0), 1.0, rtol=1e-3)


def test_trainer_fits_input_norm_and_checkpoint_carries_it(tmp_path) -> None:
    import artistsim.training.loop as train_mod
    from test_loop import tiny_config

    from artistsim.embed import load_run

    data = write_tiny_dataset(tmp_path / "data", n_train_artists=10, tracks=4)
    cfg = tiny_config(stages=((3, 10, 1e-3, 1, False),), model_extra={"input_norm": "global"})
    train_mod.train(data, cfg, tmp_path / "run", progress=False, log=lambda m: None)
    model, loaded = load_run(tmp_path / "run", torch.device("cpu"))
    assert loaded.model.input_norm == "global"
    assert not torch.allclose(model.input_norm.inv_std, torch.ones_like(model.input_norm.inv_std))
    assert not torch.allclose(model.input_norm.mean, torch.zeros_like(model.input_norm.mean))
