"""The artist models chosen by name: the registry builds them from constructor arguments."""

from __future__ import annotations

import numpy as np
import pytest

from artistsim.scoring import ARTIST_MODELS, Plda, Predictive, artist_model, plda, predictive


def _data():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 5)
    x = rng.normal(size=(6, 8))[labels] + 0.3 * rng.normal(size=(30, 8))
    return x.astype(np.float32), labels


def test_each_registered_model_scores_as_its_module_does():
    x, labels = _data()
    own = np.searchsorted(np.unique(labels), labels)
    fitted = artist_model("plda", shrinkage=0.3).fit(x, labels)
    np.testing.assert_array_equal(fitted.log_scores(x, own), plda.log_scores(plda.fit(x, labels, 0.3), x, own))
    fitted = artist_model("predictive").fit(x, labels)
    np.testing.assert_array_equal(fitted.log_scores(x, own),
                                  predictive.log_scores(predictive.fit(x, labels), x, own))
    assert fitted.counts.tolist() == [5] * 6 and set(ARTIST_MODELS) == {"plda", "predictive"}


def test_settings_are_constructor_arguments_and_unknown_names_are_refused():
    assert artist_model("plda", shrinkage=0.9) == Plda(0.9) and artist_model("predictive") == Predictive()
    x, labels = _data()
    own = np.searchsorted(np.unique(labels), labels)
    a = Plda(0.0).fit(x, labels).log_scores(x, own)
    b = Plda(0.9).fit(x, labels).log_scores(x, own)
    assert not np.allclose(a, b)  # the shrinkage argument reaches the model
    with pytest.raises(ValueError, match="artist model must be one of"):
        artist_model("cosine")
