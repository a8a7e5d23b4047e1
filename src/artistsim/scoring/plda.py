"""How well does each artist explain a track, direction by direction? A two-covariance (PLDA) artist model.

`artistsim.scoring.predictive` gives every direction of the embedding the same within-
and between-artist variance. Embeddings are not like that: some directions separate
artists (their artist means spread far, their tracks little), others mostly carry what
varies between one artist's tracks. Here, as in speaker verification's two-covariance
PLDA, a track is x = centre + y_a + e with the artist's offset y_a ~ N(0, B) and the
track's own e ~ N(0, W), B and W full covariances estimated from the catalogue's labels:

- W is the pooled within-artist scatter, shrunk towards its isotropic part by
  `shrinkage` (0: the raw scatter, 1: isotropic): with a few hundred dimensions and a
  few thousand tracks, the raw scatter's smallest directions are underestimated and
  whitening by it amplifies noise; how much to shrink depends on the embedding (see
  `artistsim.catalogue.audit.calibrate_shrinkage`, which chooses it per catalogue);
- B by the method of moments from the artist means (each mean's noise W / n taken off);
- one linear map whitens W and diagonalises B (between variances phi_k), so that every
  direction is scored on its own: given n tracks of an artist with sum s (mapped), the
  predictive distribution of one more track has mean phi_k s_k / (n phi_k + 1) and
  variance 1 + phi_k / (n phi_k + 1). A direction no artist differs in (phi_k ~ 0) adds
  the same to every artist's score, so it no longer adds noise to the comparison.

Scores are log densities (times 2 / d, up to a constant shared by every artist), the
track's own artist taken without the track (leave-one-out), as in `predictive`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["PairLLR", "TwoCovariance", "fit", "llr", "log_scores"]

EIGEN_FLOOR = 1e-9  # relative floor of W's eigenvalues: an unshrunk scatter of fewer tracks than dimensions
BETWEEN_FLOOR = 1e-6  # between variance of a direction no artist differs in (whitened units)


@dataclass(frozen=True)
class TwoCovariance:
    """Artists' sums and counts in the mapped space, and what each artist's score needs."""

    artists: np.ndarray  # (A,) artist ids, sorted
    centre: np.ndarray  # (d,) catalogue mean
    transform: np.ndarray  # (d, d): centred embedding -> whitened within, diagonal between
    between: np.ndarray  # (d,) phi: between-artist variance per mapped direction
    sums: np.ndarray  # (A, d) sums of the mapped tracks
    counts: np.ndarray  # (A,) tracks per artist
    shrinkage: float

    @cached_property
    def terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean / var, 1 / var, sum of mean^2 / var + log var) of every artist: once, not per block of tracks."""
        mean, var = _predictive(self.between, self.counts[:, None], self.sums)
        inv = 1.0 / var
        return mean * inv, inv, (mean * mean * inv + np.log(var)).sum(axis=1)


def fit(embeddings: np.ndarray, labels: np.ndarray, shrinkage: float) -> TwoCovariance:
    """Within scatter (shrunk), between covariance by moments, and the map that diagonalises both."""
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
    x = np.asarray(embeddings, dtype=np.float64)
    artists, inverse = np.unique(labels, return_inverse=True)
    d = x.shape[1]
    centre = x.mean(axis=0)
    x = x - centre
    sums = np.zeros((len(artists), d))
    np.add.at(sums, inverse, x)
    counts = np.bincount(inverse, minlength=len(artists)).astype(np.float64)
    # within scatter without an (N, d) residual copy: X'X - sum_a s_a s_a' / n_a
    scatter = x.T @ x - (sums / counts[:, None]).T @ sums
    within = scatter / max(len(x) - len(artists), 1)
    iso = np.trace(within) / d
    within = (1.0 - shrinkage) * within + shrinkage * iso * np.eye(d)
    ev, vecs = np.linalg.eigh(within)
    whiten = vecs / np.sqrt(np.maximum(ev, EIGEN_FLOOR * max(iso, 1e-12)))
    means = (sums / counts[:, None]) @ whiten
    # E[m m'] = B + W / n in whitened units (W = I): take the means' own noise off
    between = means.T @ means / len(artists) - np.mean(1.0 / counts) * np.eye(d)
    phi, rot = np.linalg.eigh(between)
    transform = whiten @ rot
    return TwoCovariance(artists, centre, transform, np.maximum(phi, BETWEEN_FLOOR), sums @ transform,
                         counts, float(shrinkage))


def _predictive(phi: np.ndarray, n: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, variance) per direction of one more track of artists of n tracks (n (..., 1)) with these sums."""
    gain = phi / (n * phi + 1.0)
    return gain * sums, 1.0 + gain


def log_scores(model: TwoCovariance, embeddings: np.ndarray, own: np.ndarray) -> np.ndarray:
    """(Q, A) predictive log densities (times 2 / d); at (q, own[q]) the artist without track q.

    `own` (Q,) are the tracks' artist columns (-1: not in the catalogue, nothing left out).
    Two matrix products for every artist, then the own column recomputed per track.
    """
    z = (np.asarray(embeddings, dtype=np.float64) - model.centre) @ model.transform
    weighted, inv, offset = model.terms
    scores = 2.0 * z @ weighted.T - (z * z) @ inv.T - offset
    rows = np.flatnonzero(own >= 0)
    if len(rows):  # leave-one-out: the own artist's sum and count without the track itself
        cols = own[rows]
        zr = z[rows]
        mean, var = _predictive(model.between, model.counts[cols][:, None] - 1.0, model.sums[cols] - zr)
        scores[rows, cols] = -((zr - mean) ** 2 / var + np.log(var)).sum(axis=1)
    return scores / z.shape[1]


def llr(model: TwoCovariance, embeddings: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
    """(Q, A) log-likelihood ratios in nats: log p(x | the artist's tracks) - log p(x | an artist never seen).

    The verification score of speaker recognition's PLDA: the predictive density given the
    artist's n tracks against the prior predictive (n = 0: mean 0, variance 1 + phi per
    direction). The prior term is the query's own, shared by every artist, so it leaves the
    ranking alone but puts every query on one scale: a track that is merely typical of the
    catalogue scores high under the artist density and high under the prior alike, and
    does not pass a threshold that a track close to one artist passes. `own` as in
    `log_scores` (None: no track is in the catalogue).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    own = np.full(len(x), -1) if own is None else own
    z = (x - model.centre) @ model.transform
    prior_var = 1.0 + model.between
    prior = -((z * z) / prior_var + np.log(prior_var)).sum(axis=1)
    d = z.shape[1]
    return (log_scores(model, x, own) - prior[:, None] / d) * (d / 2.0)


@dataclass(frozen=True)
class PairLLR:
    """The two-covariance LLR of two single tracks as an inner product of per-track keys.

    Why: ranking a catalogue by PLDA must cost what cosine top-k costs. For one track
    against one track (each the other's whole "artist", n = 1) the LLR in the mapped space
    (W = I, B = diag(phi)) is, direction by direction,

        LLR(x, y) = sum_k p_k x_k y_k + q_k (x_k^2 + y_k^2) + const,
        p_k = phi_k / (2 phi_k + 1),  q_k = -phi_k^2 / (2 (2 phi_k + 1)(phi_k + 1)).

    Scaling each direction by sqrt(p_k) (u = sqrt(p) * z) leaves sum u_x u_y + g (u_x^2 +
    u_y^2) with g_k = q_k / p_k = -phi_k / (2 (phi_k + 1)), finite where phi_k -> 0. For a
    query x the candidates' order is that of u_x . u_y + g . u_y^2: the inner product of
    the query key [u_x, 1] with the track key [u_y, g . u_y^2], so an exact (or FAISS
    inner-product) top-k over precomputed track keys ranks by the LLR, one dimension
    wider than cosine. The query's own term g . u_x^2 (the last entry of its track key) and
    `const` complete the symmetric LLR, which AS-norm's z-scores need.
    """

    centre: np.ndarray  # (d,)
    transform: np.ndarray  # (d, d): centred embedding -> u (whitened within, sqrt(p)-scaled)
    gain: np.ndarray  # (d,) g
    const: float

    @classmethod
    def from_model(cls, model: TwoCovariance) -> PairLLR:
        phi = model.between
        p = phi / (2.0 * phi + 1.0)
        const = -0.5 * float(np.log((2.0 * phi + 1.0) / (phi + 1.0) ** 2).sum())
        return cls(model.centre, model.transform * np.sqrt(p), -phi / (2.0 * (phi + 1.0)), const)

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: np.ndarray, shrinkage: float) -> PairLLR:
        return cls.from_model(fit(embeddings, labels, shrinkage))

    def mapped(self, x: np.ndarray) -> np.ndarray:
        """u of rows x, float64."""
        return (np.asarray(x, dtype=np.float64) - self.centre) @ self.transform

    def track_keys(self, x: np.ndarray) -> np.ndarray:
        """(n, d + 1) float32 [u, g . u^2]: what a catalogue indexes. Computed in float64,
        so a row's key does not depend on which rows were mapped with it (the float64
        product's last bit rounds away in float32)."""
        u = self.mapped(x)
        return np.concatenate([u, (u * u) @ self.gain[:, None]], axis=1).astype(np.float32)

    def query_keys(self, x: np.ndarray) -> np.ndarray:
        """(n, d + 1) float32 [u, 1]: a query's side of the inner product."""
        u = self.mapped(x)
        return np.concatenate([u, np.ones((len(u), 1))], axis=1).astype(np.float32)

    def points(self, x: np.ndarray) -> np.ndarray:
        """(n, d) float32 w = sqrt(h) u (h = -g > 0): tracks as points of a Euclidean space in which ...

        ... a query's candidates by LLR are its nearest neighbours: u_x . u_y - h . u_y^2 =
        |v_x|^2 - |v_x - w_y|^2 with the query point v_x = u_x / (2 sqrt(h)) (`query_points`).
        Why: graph and cluster indexes (HNSW, IVF) find nearest neighbours among points well,
        and inner products of the keys above badly (the last entry dominates their norms).
        """
        return (self.mapped(x) * np.sqrt(-self.gain)).astype(np.float32)

    def query_points(self, x: np.ndarray) -> np.ndarray:
        """(n, d) float32 v = u / (2 sqrt(h)): a query's point (see `points`)."""
        return (self.mapped(x) / (2.0 * np.sqrt(-self.gain))).astype(np.float32)

    def llr(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(Q, N) LLRs in nats of every x against every y, float64 (the reference the keys must match)."""
        ux, uy = self.mapped(x), self.mapped(y)
        return (ux @ uy.T + ((ux * ux) @ self.gain)[:, None] + ((uy * uy) @ self.gain)[None, :] + self.const)

    def arrays(self, prefix: str = "plda_") -> dict[str, np.ndarray]:
        return {f"{prefix}centre": self.centre, f"{prefix}transform": self.transform, f"{prefix}gain": self.gain,
                f"{prefix}const": np.asarray(self.const)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "plda_") -> PairLLR | None:
        """The scorer saved by `arrays`, or None when none was saved."""
        if f"{prefix}transform" not in arrays:
            return None
        centre, transform, gain = (np.asarray(arrays[f"{prefix}{n}"], np.float64)
                                   for n in ("centre", "transform", "gain"))
        d = len(centre)
        if transform.shape != (d, d) or gain.shape != (d,) or not np.isfinite(transform).all():
            raise ValueError(f"PLDA arrays do not fit together: centre {centre.shape}, transform "
                             f"{transform.shape}, gain {gain.shape}")
        return cls(centre, transform, gain, float(arrays[f"{prefix}const"]))
