"""Building a catalogue from several runs: the ensemble is weighted as `evaluate` chose for exactly those runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from catalogue_cases import write_run
from conftest import write_tiny_dataset

from artistsim.catalogue.build import build_catalogue, catalogue_embedder, pipeline_state
from artistsim.catalogue.snapshot import open_snapshot
from artistsim.catalogue.store import Manifest
from artistsim.data.splits import load_split
from artistsim.embed import embed_full, ensemble, load_run
from artistsim.search.loader import save_state
from artistsim.search.pipeline import InferenceSettings, PipelineState


def save_settings(runs, settings):
    save_state(runs, PipelineState(settings))


@pytest.fixture
def setup(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train_artists=5, tracks=3)
    return data, write_run(tmp_path / "runs" / "a", seed=0), write_run(tmp_path / "runs" / "b", seed=1)


def _build(tmp_path, data, runs, saved_runs, saved_weights):
    """Save `evaluate`-style settings for `saved_runs`, then build a catalogue of `runs`."""
    save_settings(saved_runs, InferenceSettings(member_weights=saved_weights))
    manifest = build_catalogue(tmp_path / "cat", data, runs, ["train"], index="flat", progress=False)
    snap = open_snapshot(tmp_path / "cat")
    return manifest, snap.vectors(np.arange(snap.size))


def _member_embeddings(data, runs):
    split = load_split(data, "train")
    rows = np.arange(len(split.meta))
    return [embed_full(load_run(r, torch.device("cpu"))[0], split.source, rows, torch.device("cpu")) for r in runs]


def test_saved_ensemble_weights_shape_the_catalogue_and_its_adds(setup, tmp_path):
    data, a, b = setup
    manifest, vectors = _build(tmp_path, data, [a, b], [a, b], [1.0, 0.25])
    assert manifest is not None and manifest.embed["weights"] == [1.0, 0.25]
    expected = ensemble(_member_embeddings(data, [a, b]), weights=[1.0, 0.25])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert not np.allclose(expected, ensemble(_member_embeddings(data, [a, b])), atol=1e-3)
    # adds embed as the build did, from the manifest (not from whatever settings say later)
    save_settings([a, b], InferenceSettings(member_weights=[0.5, 1.0]))
    manifest = Manifest.read(tmp_path / "cat")
    embedder = catalogue_embedder(manifest, pipeline_state(tmp_path / "cat", manifest))
    assert embedder.weights == [1.0, 0.25]
    features = [np.load(data / "train_features" / p) for p in load_split(data, "train").meta[
        "archive_features_path"][:2]]
    np.testing.assert_allclose(embedder.embed_arrays(features), expected[:2], atol=1e-5)


def test_equal_weights_without_settings_for_exactly_these_runs(setup, tmp_path):
    data, a, b = setup
    manifest, vectors = _build(tmp_path, data, [a, b], [b, a], [0.0, 1.0])
    assert manifest is not None and manifest.embed["weights"] == [1.0, 1.0]
    np.testing.assert_allclose(vectors, ensemble(_member_embeddings(data, [a, b])), atol=1e-5)


@pytest.mark.parametrize("weights", [[1.0], [0.0, 0.0], ["x", 1.0]])
def test_manifest_weights_that_do_not_fit_its_runs_are_one_line_exit_2(setup, tmp_path, capsys, weights):
    import json

    from artistsim.cli import main

    data, a, b = setup
    build_catalogue(tmp_path / "cat", data, [a, b], ["train"], index="flat", progress=False)
    manifest = tmp_path / "cat" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["embed"]["weights"] = weights
    manifest.write_text(json.dumps(doc))
    features = tmp_path / "q.npy"
    np.save(features, np.random.default_rng(0).normal(size=(512, 20)).astype(np.float32))
    assert main(["query", str(tmp_path / "cat"), "--features", str(features)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "embed.weights" in err[0] and "do not fit its 2 runs" in err[0]
