from __future__ import annotations

import numpy as np
import pytest

from artistsim.evaluation.inference import (
    FusionInputs,
    InferenceSettings,
    calibrate,
    component_scores,
    fuse,
    plda_for,
    rank_tracks,
    tune_lda,
    tune_partner,
)
from artistsim.evaluation.metrics import ndcg_at_k
from artistsim.scoring.lda import centre_normalise


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
    assert steps["plain"] <= steps["fusion"] <= steps["backend"] <= steps["as_norm"] <= steps["expansion"] <= steps["rerank"]
    assert settings.lda_weight > 0  # two independent views of the artist: fusing them must help
    final = ndcg_at_k(rank_tracks(fuse(val, settings.lda_weight), settings,
                                  _cohort(train, train_labels, settings), plda_for(train, train_labels, settings)),
                      val_labels)
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


def test_fusion_partner_is_wccn_where_few_training_artists_cap_the_lda():
    """Six training artists give LDA five directions; an unseen artist differs in all 48, so the
    WCCN, not capped by the artist count, must rank the validation artists far better."""
    rng = np.random.default_rng(4)
    x, labels = _artists(rng, 6, 30, 48, 1.0)
    v, v_labels = _artists(rng, 30, 5, 48, 1.0)
    lda, wccn, partner = tune_partner(x, labels, v, v_labels)
    assert partner is wccn and lda.components_.shape[1] == 5
    scores = [ndcg_at_k(rank_tracks(centre_normalise(m.transform(v)), InferenceSettings(rerank_threshold=None)),
                        v_labels) for m in (lda, wccn)]
    assert scores[1] > scores[0] + 0.3


def test_fusion_partner_stays_lda_where_a_few_directions_carry_the_artist():
    """200 training artists, identity in 6 dims beside 150 of correlated noise: LDA's few
    directions win, and WCCN's wide maps (at least 128 directions) carry mostly noise."""
    rng = np.random.default_rng(5)
    mix = rng.normal(size=(20, 150))

    def tracks(n_artists):
        a, lab = _artists(rng, n_artists, 5, 6, 0.5)
        noise = (rng.normal(size=(len(a), 20)) * 3) @ mix
        return np.c_[a, noise].astype(np.float32), lab

    (x, labels), (v, v_labels) = tracks(200), tracks(40)
    lda, _, partner = tune_partner(x, labels, v, v_labels)
    assert partner is lda


def _members(rng, noise_member: bool, n_artists=40, per=5):
    """Two informative runs (independent views of the artists) and a third that is noise or a weak view."""
    labels = np.repeat(np.arange(n_artists), per)
    parts = [_artists(rng, n_artists, per, 16, 1.6)[0] for _ in range(2)]
    third = rng.normal(size=(len(labels), 16)).astype(np.float32) if noise_member else \
        _artists(rng, n_artists, per, 16, 3.0)[0]
    return FusionInputs([*parts, third], None), labels


def test_ensemble_weights_drop_a_run_that_is_noise_and_never_lower_validation():
    from artistsim.evaluation.inference import choose_member_weights

    rng = np.random.default_rng(3)
    val, val_labels = _members(rng, noise_member=True)
    weights, plain, best = choose_member_weights(val, val_labels)
    assert weights[2] == 0.0 and min(weights[:2]) > 0  # the noise run is left out, the informative ones kept
    assert best > plain
    assert best == pytest.approx(ndcg_at_k(rank_tracks(fuse(val, 0.0, weights), InferenceSettings(
        rerank_threshold=None)), val_labels))
    train, train_labels = _members(rng, noise_member=True, n_artists=60)
    settings = calibrate(val, val_labels, train, train_labels, runs=["a", "b", "c"])
    assert settings.member_weights == weights
    assert settings.validation["plain"] <= settings.validation["members"] <= settings.validation["rerank"]


def test_ensemble_weights_stay_equal_when_every_run_helps():
    from artistsim.evaluation.inference import choose_member_weights

    rng = np.random.default_rng(4)
    parts = [_artists(rng, 40, 5, 16, 1.6)[0] for _ in range(3)]
    labels = np.repeat(np.arange(40), 5)
    weights, plain, best = choose_member_weights(FusionInputs(parts, None), labels)
    assert best >= plain and min(weights) > 0
    one, _, _ = choose_member_weights(FusionInputs(parts[:1], None), labels)
    assert one == [1.0]


def test_ensemble_weights_scale_each_part_and_leave_out_zeros():
    from artistsim.embed import ensemble, l2_normalise

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    np.testing.assert_allclose(ensemble([a, b], weights=[1.0, 0.0]), l2_normalise(a), atol=1e-6)
    expected = l2_normalise(np.concatenate([l2_normalise(a), 0.5 * l2_normalise(b)], axis=1))
    np.testing.assert_allclose(ensemble([a, b], weights=[1.0, 0.5]), expected, atol=1e-6)
    with pytest.raises(ValueError, match="do not fit"):
        ensemble([a, b], weights=[0.0, 0.0])
    with pytest.raises(ValueError, match="do not fit"):
        ensemble([a, b], weights=[1.0])


def _anisotropic(rng, basis: np.ndarray, n_artists: int, per: int = 6):
    """Artists differ in 6 directions (weakly); 26 more carry large track-to-track variation only.

    Cosine weighs every direction alike and drowns in the nuisance; the two-covariance
    model estimates which directions vary within an artist and whitens them away.
    """
    labels = np.repeat(np.arange(n_artists), per)
    x = np.concatenate([np.repeat(rng.normal(size=(n_artists, 6)), per, axis=0) + 0.3 * rng.normal(size=(len(labels), 6)),
                        2.5 * rng.normal(size=(len(labels), 26))], axis=1) @ basis
    return FusionInputs([(x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)]), labels


def test_plda_back_end_is_chosen_where_within_artist_variation_is_anisotropic():
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    train, train_labels = _anisotropic(rng, basis, 150)
    val, val_labels = _anisotropic(rng, basis, 40)
    test, test_labels = _anisotropic(rng, basis, 40)
    settings = calibrate(val, val_labels, train, train_labels)
    assert settings.backend == "plda"
    assert settings.validation["backend"] > settings.validation["fusion"] + 0.1
    plda = plda_for(train, train_labels, settings)
    cosine = ndcg_at_k(rank_tracks(fuse(test, 0.0), InferenceSettings(rerank_threshold=None)), test_labels)
    scored = ndcg_at_k(rank_tracks(fuse(test, 0.0), InferenceSettings(rerank_threshold=None, backend="plda"),
                                   None, plda), test_labels)
    assert scored > cosine + 0.1  # on artists neither the fit nor the choice saw


def test_plda_back_end_stays_off_where_cosine_is_as_good():
    """Isotropic within-artist noise: nothing for PLDA to whiten; it is kept only if it wins on validation."""
    rng = np.random.default_rng(6)
    val, val_labels = _split(rng)
    train, train_labels = _split(rng, 60)
    forced = calibrate(val, val_labels, train, train_labels, backends=("plda",))
    chosen = calibrate(val, val_labels, train, train_labels)
    assert forced.backend == "plda" and forced.validation["backend"] < forced.validation["fusion"]
    assert chosen.backend == "cosine" and chosen.validation["backend"] == chosen.validation["fusion"]
