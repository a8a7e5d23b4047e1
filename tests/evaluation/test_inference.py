from __future__ import annotations

import numpy as np
import pytest

from artistsim.evaluation.baselines import LDA
from artistsim.evaluation.inference import (
    FusionInputs,
    InferenceSettings,
    calibrate,
    component_scores,
    fuse,
    load_settings,
    rank_tracks,
    save_settings,
    tune_lda,
)
from artistsim.evaluation.metrics import ndcg_at_k


def _artists(rng, n_artists: int, per: int, dim: int, spread: float, info: np.ndarray | None = None):
    labels = np.repeat(np.arange(n_artists), per)
    centres = rng.normal(size=(n_artists, dim)) if info is None else info
    return (centres[labels] + spread * rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def _split(rng, n_artists=40, per=5):
    """A weak 'model' embedding and a 'LDA' embedding that carries other artist information."""
    a_model, a_lda = rng.normal(size=(n_artists, 16)), rng.normal(size=(n_artists, 16))
    model, labels = _artists(rng, n_artists, per, 16, 1.6, a_model)
    lda, _ = _artists(rng, n_artists, per, 16, 1.6, a_lda)
    return FusionInputs([model], lda), labels


def test_calibration_never_lowers_validation_and_picks_fusion_when_it_helps():
    rng = np.random.default_rng(0)
    val, val_labels = _split(rng)
    train, train_labels = _split(rng, 60)
    settings = calibrate(val, val_labels, train, train_labels, runs=["a"])
    steps = settings.validation
    assert steps["plain"] <= steps["fusion"] <= steps["as_norm"] <= steps["expansion"] <= steps["rerank"]
    assert settings.lda_weight > 0  # two independent views of the artist: fusing them must help
    final = ndcg_at_k(rank_tracks(fuse(val, settings.lda_weight), settings,
                                  _cohort(train, train_labels, settings)), val_labels)
    assert final == pytest.approx(steps["rerank"])


def _cohort(train, labels, settings):
    from artistsim.evaluation.inference import cohort_for

    return cohort_for(train, labels, settings.lda_weight) if settings.as_norm_top_k else None


def test_fusion_stays_off_when_the_lda_part_is_noise():
    rng = np.random.default_rng(1)
    val, val_labels = _split(rng)
    val.lda = rng.normal(size=val.lda.shape).astype(np.float32)  # no artist information at all
    train, train_labels = _split(rng, 60)
    settings = calibrate(val, val_labels, train, train_labels)
    assert settings.lda_weight == 0.0
    assert settings.validation["rerank"] >= settings.validation["plain"]


def test_component_scores_follow_the_chosen_steps():
    rng = np.random.default_rng(2)
    val, labels = _split(rng)
    settings = InferenceSettings(lda_weight=0.0, as_norm_top_k=0, rerank_threshold=None)
    scores = component_scores(val, labels, settings, None)
    assert len(set(round(v, 12) for v in scores.values())) == 1


def test_tune_lda_picks_on_validation_from_the_grid():
    rng = np.random.default_rng(3)
    info = rng.normal(size=(50, 8))
    x, labels = _artists(rng, 50, 6, 8, 0.5, info)
    x = np.c_[x, rng.normal(size=(len(x), 24)) * 3]
    lda, score = tune_lda(x[:200], labels[:200], x[200:], labels[200:])
    assert 0 < score <= 1 and lda.components_.shape[0] == x.shape[1]


def test_settings_round_trip_and_match_only_the_same_runs(tmp_path):
    lda = LDA(4, 0.3).fit(np.random.default_rng(0).normal(size=(40, 6)), np.repeat(np.arange(10), 4))
    cohort = np.eye(3, dtype=np.float32)
    settings = InferenceSettings(0.5, 20, 0.8, 3, runs=["a", "b"], validation={"plain": 0.5})
    save_settings(tmp_path, settings, lda, cohort)
    loaded = load_settings(tmp_path, ["a", "b"])
    assert loaded is not None
    got, got_lda, got_cohort = loaded
    assert got == settings and np.array_equal(got_cohort, cohort)
    assert np.allclose(got_lda.transform(np.ones((1, 6))), lda.transform(np.ones((1, 6))))
    assert load_settings(tmp_path, ["a"]) is None and load_settings(tmp_path / "none", ["a", "b"]) is None
