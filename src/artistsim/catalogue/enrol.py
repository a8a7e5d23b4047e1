"""Which artist model identification scores with, by method; its calibration and the model a catalogue serves.

- "plda" (the default): the two-covariance model of `artistsim.scoring.plda`, scored
  by the log-likelihood ratio of speaker verification: log p(x | the artist's n tracks)
  - log p(x | an artist never seen). Each direction of the embedding counts by how much
  artists differ in it against how much one artist's tracks do, an artist of two tracks
  is placed less surely than one of thirty, and the prior term puts every query on one
  scale, so one threshold means the same for every query. Its within-artist shrinkage
  is chosen as the audit chooses it (`artistsim.catalogue.audit.calibrate_shrinkage`,
  on the enrolled artists only: the held-out artists that set the threshold and the
  figures play no part in it) and recorded with the calibration.
- "asnorm": cosine to the artist centroids, AS-normalised (`artistsim.catalogue.identify`),
  the method of catalogues calibrated before "plda" (their calibration records no method).

Measured on the test-split catalogues of five synthetic presets (docs/benchmarks.md, "Catalogue audit and identification"):
"plda" has the lower EER, more known-artist tracks accepted and right at a 1% false-accept
rate, and a higher closed-set top-1 on each. AS-norm on top of the LLR lowered the EER a
little but accepted fewer known tracks at 1% false accepts: not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from artistsim.scoring import plda
from artistsim.catalogue.audit import calibrate_shrinkage
from artistsim.catalogue.identify import TOP_K, ArtistModel, artist_model, calibrate as calibrate_with, columns

METHODS = ("plda", "asnorm")
DEFAULT_METHOD = "plda"
LEGACY_METHOD = "asnorm"  # a calibration without a "method" was made with it


@dataclass(frozen=True)
class PldaArtists:
    """Enrolled artists under a two-covariance model, scored by log-likelihood ratio (nats)."""

    model: plda.TwoCovariance

    @property
    def artists(self) -> np.ndarray:
        return self.model.artists

    @property
    def shrinkage(self) -> float:
        return self.model.shrinkage

    def column(self, labels: np.ndarray) -> np.ndarray:
        return columns(self.model.artists, labels)

    def score(self, queries: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
        return plda.llr(self.model, queries, own)


def enrol(embeddings: np.ndarray, labels: np.ndarray, method: str = DEFAULT_METHOD,
          shrinkage: float | None = None, top_k: int = TOP_K) -> ArtistModel | PldaArtists:
    """The artist model of `method` from labelled tracks; PLDA's shrinkage None: chosen on these tracks."""
    if method not in METHODS:
        raise ValueError(f"identification method must be one of {METHODS}, got {method!r}")
    labels = np.asarray(labels)
    if method == "asnorm":
        return artist_model(embeddings, labels, top_k)
    lam = calibrate_shrinkage(embeddings, labels) if shrinkage is None else shrinkage
    return PldaArtists(plda.fit(embeddings, labels, lam))


def _refit(model: Any, embeddings: np.ndarray, labels: np.ndarray) -> PldaArtists:
    return PldaArtists(plda.fit(embeddings, labels, model.shrinkage))


def calibrate(embeddings: np.ndarray, labels: np.ndarray, far: float = 0.01, method: str = DEFAULT_METHOD,
              seed: int = 0, max_queries: int = 5000) -> dict[str, Any]:
    """`identify.calibrate` with the model of `method`; the result records the method (and PLDA's shrinkage).

    PLDA's known-artist tracks are scored cross-fitted (models fitted without them): its
    covariances would otherwise be estimated from the very tracks it is measured on.
    """
    if method not in METHODS:
        raise ValueError(f"identification method must be one of {METHODS}, got {method!r}")
    if method == "asnorm":
        return {"method": method, **calibrate_with(embeddings, labels, far, seed=seed, max_queries=max_queries)}
    models: list[PldaArtists] = []

    def fit(e: np.ndarray, y: np.ndarray) -> PldaArtists:
        models.append(enrol(e, y, method))  # type: ignore[arg-type]
        return models[-1]

    cal = calibrate_with(embeddings, labels, far, seed=seed, max_queries=max_queries, enrol=fit, refit=_refit)
    return {"method": method, **cal, "shrinkage": models[0].shrinkage}


def served_model(calibration: dict[str, Any] | None, embeddings: np.ndarray, labels: np.ndarray
                 ) -> ArtistModel | PldaArtists:
    """The model a catalogue identifies with: its calibration's method and shrinkage (its threshold's scale).

    An uncalibrated catalogue (fewer than 4 labelled artists) gets the default method;
    a calibration that names no method predates "plda" and keeps AS-norm.
    """
    if calibration is None:
        return enrol(embeddings, labels, DEFAULT_METHOD)
    method = calibration.get("method", LEGACY_METHOD)
    return enrol(embeddings, labels, method, calibration.get("shrinkage"), calibration.get("top_k", TOP_K))
