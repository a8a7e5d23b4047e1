"""The linear-Gaussian scorers and pooled statistics, in one wing.

- `lda`: pooled frame statistics and Fisher LDA (baseline, fusion partner, branch init);
- `asnorm`: artist centroids and adaptive score normalisation against a cohort;
- `plda`: the two-covariance (PLDA) artist model; `predictive`: one Gaussian per artist;
- `ARTIST_MODELS`: the artist models chosen by name (audit, identification), each a small
  class whose constructor arguments are its settings (pytorch-metric-learning's style:
  composition by arguments, not flags threaded through functions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from artistsim.scoring import plda, predictive


@dataclass(frozen=True)
class FittedArtists:
    """A fitted artist model: its artists (sorted ids), their track counts, and how it scores."""

    artists: np.ndarray
    counts: np.ndarray
    log_scores: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (embeddings, own columns) -> (Q, A)


class ArtistModel(Protocol):
    def fit(self, embeddings: np.ndarray, labels: np.ndarray) -> FittedArtists: ...


@dataclass(frozen=True)
class Plda:
    """The two-covariance model with the within-artist scatter shrunk by `shrinkage` (0..1)."""

    shrinkage: float = 0.5

    def fit(self, embeddings: np.ndarray, labels: np.ndarray) -> FittedArtists:
        model = plda.fit(embeddings, labels, self.shrinkage)
        return FittedArtists(model.artists, model.counts, lambda x, own: plda.log_scores(model, x, own))


@dataclass(frozen=True)
class Predictive:
    """One isotropic Gaussian per artist, its posterior predictive density (`prior_tracks` of prior)."""

    prior_tracks: float = predictive.PRIOR_TRACKS

    def fit(self, embeddings: np.ndarray, labels: np.ndarray) -> FittedArtists:
        model = predictive.fit(embeddings, labels, self.prior_tracks)
        return FittedArtists(model.artists, model.counts, lambda x, own: predictive.log_scores(model, x, own))


ARTIST_MODELS: dict[str, type] = {"plda": Plda, "predictive": Predictive}


def artist_model(name: str, **settings: float) -> ArtistModel:
    """The artist model registered as `name`, built with `settings` as constructor arguments."""
    if name not in ARTIST_MODELS:
        raise ValueError(f"artist model must be one of {sorted(ARTIST_MODELS)}, got {name!r}")
    return ARTIST_MODELS[name](**settings)


__all__ = ["ARTIST_MODELS", "ArtistModel", "FittedArtists", "Plda", "Predictive", "artist_model"]
