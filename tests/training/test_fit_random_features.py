"""Fitting a random-feature LDA run: a run like the trainer's, chosen on validation, deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import write_tiny_dataset

from artistsim.config import ConfigError, train_config_from_dict
from artistsim.data.splits import full_batch, load_split
from artistsim.embed import load_checkpoint, load_run
from artistsim.training.dispatch import train
from artistsim.training.random_features import folded_directions, frame_moments, pooled_features


def rf_config(**model):
    return train_config_from_dict({"model": {"kind": "rflda", "num_features": 64, "embedding_dim": 8,
                                             "components": [4, 16], **model},
                                   "val_fraction": 0.3, "eval_batch_size": 16})


@pytest.fixture
def data(tmp_path):
    return write_tiny_dataset(tmp_path / "data", n_train_artists=10, tracks=4)


def test_fit_writes_a_run_that_loads_safely_and_reports_its_choice(data, tmp_path):
    run = tmp_path / "rf"
    summary = train(data, rf_config(), run, progress=False, log=lambda *_: None)
    record = json.loads((run / "metrics.jsonl").read_text())
    assert record["components"] in (4, 16) and set(record["tried"]) == {"4", "16"}
    assert summary["best_ndcg"] == pytest.approx(record["val_ndcg"])
    assert summary["best_ndcg"] == pytest.approx(max(record["tried"].values()), abs=0.05)
    assert load_checkpoint(run / "best.pt")["kind"] == "rflda"  # weights_only=True
    model, cfg = load_run(run, torch.device("cpu"))
    assert cfg.model.kind == "rflda" and not model.training
    split = load_split(data, "train")
    x, lengths = full_batch(split.source, np.arange(4))
    out = model(torch.from_numpy(x), torch.from_numpy(lengths))
    assert out.shape == (4, 8) and torch.isfinite(out).all() and out.abs().sum() > 0


def test_the_model_is_the_lda_of_its_pooled_features(data, tmp_path):
    """What the run embeds is exactly LDA(pooled random features) of the chosen map: nothing else is fitted."""
    run = tmp_path / "rf"
    train(data, rf_config(components=[16]), run, progress=False, log=lambda *_: None)
    model, _ = load_run(run, torch.device("cpu"))
    split = load_split(data, "train")
    rows = np.arange(len(split.meta))
    feats = pooled_features(model, split.source, rows, torch.device("cpu"))
    w = model.proj.weight.detach().numpy().astype(np.float64)
    x, lengths = full_batch(split.source, rows)
    out = model(torch.from_numpy(x), torch.from_numpy(lengths)).detach().numpy()
    np.testing.assert_allclose(out, feats @ w.T + model.proj.bias.detach().numpy(), rtol=1e-3, atol=1e-3)


def test_fit_is_deterministic_and_refuses_to_overwrite(data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run in (a, b):
        train(data, rf_config(), run, progress=False, log=lambda *_: None)
    sa, sb = load_checkpoint(a / "best.pt")["model"], load_checkpoint(b / "best.pt")["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(data, rf_config(), a, progress=False, log=lambda *_: None)
    train(data, rf_config(), a, resume=True, progress=False, log=lambda *_: None)  # --resume refits


def test_principal_directions_whiten_the_frames(data):
    split = load_split(data, "train")
    rows = np.arange(len(split.meta))
    centre, var, vecs = frame_moments(split.source, rows, max_frames=10**9, seed=0)
    x, lengths = full_batch(split.source, rows)
    frames = x[np.arange(x.shape[1])[None, :] < lengths[:, None]].astype(np.float64)
    np.testing.assert_allclose(centre, frames.mean(0), atol=1e-4)
    assert np.all(np.diff(var) <= 1e-9)  # descending
    k = 5
    white = (frames - centre) @ (vecs[:, :k] / np.sqrt(var[:k]))
    np.testing.assert_allclose(np.cov(white.T, bias=True), np.eye(k), atol=1e-3)
    d = folded_directions(var, vecs, np.random.default_rng(0).standard_normal((512, 7)), k)
    assert d.shape == (512, 7)


def test_rflda_configs_are_checked():
    with pytest.raises(ConfigError, match="components"):
        rf_config(components=[0])
    with pytest.raises(ConfigError, match="components"):
        rf_config(components=[])
    with pytest.raises(ConfigError, match="unknown key"):
        rf_config(num_layers=2)
    cfg = rf_config()
    assert cfg.stages == [] and cfg.model.components == (4, 16)


def test_lda_of_the_pooled_features_separates_the_tiny_artists(data, tmp_path):
    """A failure mode guard: a map that pooled padding or mixed tracks would not separate these artists."""
    run = tmp_path / "rf"
    summary = train(data, rf_config(), run, progress=False, log=lambda *_: None)
    assert summary["best_ndcg"] > 0.9


def test_the_cli_fits_an_rflda_run_and_its_default_config_ships(data, tmp_path):
    from artistsim.cli import main
    from artistsim.config import load_train_config, packaged_config

    cfg = load_train_config(packaged_config("recommended/rflda.toml"))
    assert cfg.model.kind == "rflda" and cfg.model.embedding_dim == 128
    config = tmp_path / "rf.toml"
    config.write_text('val_fraction = 0.3\n[model]\nkind = "rflda"\nnum_features = 32\nembedding_dim = 8\n'
                      'components = [8]\n')
    assert main(["-q", "train", str(data), "--model", "rflda", "--config", str(config), "--out",
                 str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "best.pt").is_file()
    assert main(["-q", "train", str(data), "--model", "transformer", "--config", str(config), "--out",
                 str(tmp_path / "run2")]) == 2  # a config of another kind: one line, exit 2
