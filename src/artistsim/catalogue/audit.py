"""Which labelled tracks sit under the wrong artist? A ranking of the catalogue by suspicion.

A track is suspect when its own artist explains it worse than another artist does.
Suspicion = best score among the other artists - score of the own artist (higher is
more suspect); the suspected artist is that best other one. The methods differ in the
score (measured against planted label swaps in benchmarks/bench_audit.py):

- "plda" (the default): the track's predictive log density under a two-covariance
  (PLDA) artist model (`artistsim.scoring.plda`), its own artist taken without it:
  like "predictive", but each direction of the embedding weighed by how much artists
  differ in it against how much one artist's tracks do. How far its within-artist
  covariance is shrunk towards isotropic is chosen per catalogue
  (`calibrate_shrinkage`): the catalogue is audited with a few more labels moved at
  random to another artist, and the shrinkage that ranks those highest wins;
- "predictive": the track's posterior-predictive log density under a
  Gaussian model of each artist (`artistsim.scoring.predictive`), its own artist taken
  without it. It knows that an artist of two tracks is placed less surely than one of
  thirty, and that a diffuse artist's tracks sit far from its centre as a matter of
  course, which the centroid cosine does not (one variance for every direction);
- "loo": cosine to the artist centroids, the own centroid without the track
  (leave-one-out): a mislabelled track otherwise pulls its (wrong) artist's centroid
  towards itself, and the smaller the artist, the more it hides;
- "asnorm": leave-one-out and AS-normalised (`artistsim.catalogue.identify.normalised_scores`);
  on the demo data worse than the leave-one-out margin alone;
- "margin": the plain baseline, raw cosine to the nearest other centroid minus raw
  cosine to the own centroid, the track included.

Artists with a single track cannot be judged against their own other tracks and get no
suspicion (NaN, last) in every method but the plain margin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artistsim.atomic import atomic_write_text
from artistsim.scoring import ARTIST_MODELS
from artistsim.scoring import artist_model as scoring_model
from artistsim.catalogue.identify import TOP_K, ArtistModel, artist_model, normalised_scores, raw_scores

BLOCK_CELLS = 1 << 21  # (tracks x artists) scores per block: bounds the block's matrices
# The PLDA shrinkage is chosen among these by `calibrate_shrinkage`, on at most this many
# tracks (whole artists drawn at random), with this many rounds of extra planted swaps.
SHRINKAGE_GRID = (0.0, 0.05, 0.2, 0.5, 0.8, 0.9, 0.95)
CALIBRATION_TRACKS = 5000
CALIBRATION_ROUNDS = 3
CALIBRATION_SEED = 20_261_125  # its own seeds: the benchmark's planted swaps use small ones


@dataclass
class Audit:
    """Rows ranked most suspect first, with their suspicion and suspected artist."""

    rows: np.ndarray  # catalogue rows, most suspect first
    suspicion: np.ndarray
    labels: np.ndarray  # the artist each track is labelled with
    suspected: np.ndarray  # the artist it looks like
    shrinkage: float | None = None  # the PLDA within-covariance shrinkage used (method "plda")

    def tsv(self, trackids: np.ndarray, top: int | None = None) -> str:
        n = len(self.rows) if top is None else min(top, len(self.rows))
        lines = ["trackid\tlabelled_artist\tsuspected_artist\tsuspicion"]
        lines += [f"{trackids[r]}\t{a}\t{b}\t{s:.4f}" for r, a, b, s in
                  zip(self.rows[:n], self.labels[:n], self.suspected[:n], self.suspicion[:n])]
        return "\n".join(lines) + "\n"


def _blocks(scores: Callable[[slice], np.ndarray], n: int, own: np.ndarray, n_artists: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Suspicion and best other column of every row; `scores(rows)` gives a block's (rows, A) scores."""
    suspicion = np.empty(n, dtype=np.float64)
    other = np.empty(n, dtype=np.int64)
    step = max(1, BLOCK_CELLS // max(n_artists, 1))
    for start in range(0, n, step):  # blocks of rows, vectorised inside
        sl = slice(start, start + step)
        s = scores(sl)
        rows = np.arange(s.shape[0])
        mine = s[rows, own[sl]].astype(np.float64)
        s[rows, own[sl]] = -np.inf
        other[sl] = s.argmax(axis=1)
        suspicion[sl] = s[rows, other[sl]] - mine
    return suspicion, other


def _centroid_scores(model: ArtistModel, e: np.ndarray, own: np.ndarray, method: str) -> Callable[[slice], np.ndarray]:
    def scores(sl: slice) -> np.ndarray:
        s = raw_scores(model, e[sl], own[sl] if method != "margin" else None)
        return normalised_scores(model, s) if method == "asnorm" else s
    return scores


METHODS = ("plda", "predictive", "loo", "asnorm", "margin")
DEFAULT_METHOD = "plda"


def _suspicion(e: np.ndarray, labels: np.ndarray, method: str, top_k: int, shrinkage: float | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """(suspicion, best other column, artists, shrinkage used) of every track, in input order."""
    if method in ARTIST_MODELS:  # the Gaussian artist models of `artistsim.scoring`, by name
        if method == "plda":
            shrinkage = calibrate_shrinkage(e, labels) if shrinkage is None else shrinkage
        fitted = scoring_model(method, **({"shrinkage": shrinkage} if method == "plda" else {})).fit(e, labels)
        artists, counts = fitted.artists, fitted.counts
        own = np.searchsorted(artists, labels)

        def scores(sl: slice) -> np.ndarray:
            return fitted.log_scores(e[sl], own[sl])
    else:
        model = artist_model(e, labels, top_k)
        artists, counts = model.artists, model.counts
        own = model.column(labels)
        scores = _centroid_scores(model, e, own, method)  # type: ignore[assignment]
    suspicion, other = _blocks(scores, len(e), own, len(artists))
    if method != "margin":
        suspicion[counts[own] < 2] = np.nan
    return suspicion, other, artists, shrinkage if method == "plda" else None


def audit(embeddings: np.ndarray, labels: np.ndarray, method: str = DEFAULT_METHOD, top_k: int = TOP_K,
          shrinkage: float | None = None) -> Audit:
    """Rank labelled tracks by how likely their label is wrong.

    `method`: "plda" (the default), "predictive" (one variance for every direction),
    "loo" (the margin against leave-one-out centroids), "asnorm" (leave-one-out and
    AS-normalised) or "margin" (the plain centroid margin, the baseline). `top_k` is
    AS-norm's cohort size; `shrinkage` fixes PLDA's (None: calibrated on the catalogue).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    labels = np.asarray(labels)
    e = np.asarray(embeddings, dtype=np.float32)
    suspicion, other, artists, used = _suspicion(e, labels, method, top_k, shrinkage)
    order = np.argsort(np.where(np.isnan(suspicion), np.inf, -suspicion), kind="stable")
    return Audit(order, suspicion[order], labels[order], artists[other[order]], used)


def calibrate_shrinkage(embeddings: np.ndarray, labels: np.ndarray, grid: tuple[float, ...] = SHRINKAGE_GRID,
                        rounds: int = CALIBRATION_ROUNDS, max_tracks: int = CALIBRATION_TRACKS,
                        seed: int = CALIBRATION_SEED) -> float:
    """The PLDA shrinkage under which extra random relabels rank highest in this catalogue.

    Why per catalogue: how far the within-artist scatter can be trusted direction by
    direction depends on the embedding (measured: unshrunk best on one data set, 0.9 on
    another, each far worse with the other's). The catalogue's labels are taken as they
    are (mostly right); a further 3% are moved to another artist chosen at random (the
    audit's model of a wrong label: one unrelated to the sound) and each shrinkage is
    scored by the AUC of those among all tracks (not the top N, which the labels'
    own unknown errors would crowd), averaged over `rounds` draws; ties go to the
    larger shrinkage. At most `max_tracks` tracks (whole artists at random) take part.
    """
    e = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    artists, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(e) > max_tracks:
        pick = rng.permutation(len(artists))
        keep_artists = pick[:max(1, int(np.searchsorted(np.cumsum(counts[pick]), max_tracks, side="right")))]
        rows = np.flatnonzero(np.isin(inverse, keep_artists))
        e, labels = e[rows], labels[rows]
    if len(np.unique(labels)) < 2:
        return max(grid)
    draws = [plant_swaps(labels, 0.03, seed + 1 + r) for r in range(rounds)]
    best, best_auc = max(grid), -np.inf
    for lam in sorted(grid, reverse=True):
        auc = float(np.mean([_auc(_suspicion(e, noisy, "plda", TOP_K, lam)[0], planted) for noisy, planted in draws]))
        if auc > best_auc:
            best, best_auc = lam, auc
    return best


def _auc(suspicion: np.ndarray, planted: np.ndarray) -> float:
    """Chance that a planted row is more suspect than an unplanted one (unjudged rows: least suspect)."""
    s = np.where(np.isnan(suspicion), -np.inf, suspicion)
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    hit = np.zeros(len(s), dtype=bool)
    hit[planted] = True
    pos, neg = int(hit.sum()), int((~hit).sum())
    return (ranks[hit].sum() - pos * (pos + 1) / 2) / max(pos * neg, 1)


def precision_at(ranked_rows: np.ndarray, planted: np.ndarray, n: int | None = None) -> float:
    """Share of the first n ranked rows that are planted (n defaults to the number planted)."""
    n = len(planted) if n is None else n
    return float(np.isin(ranked_rows[:n], planted).mean()) if n else float("nan")


def plant_swaps(labels: np.ndarray, share: float = 0.03, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Relabel `share` of the tracks to another (random) artist; (noisy labels, planted rows)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = max(1, int(round(share * len(labels))))
    rows = np.sort(rng.choice(len(labels), size=n, replace=False))
    artists = np.unique(labels)
    pick = rng.integers(0, len(artists) - 1, size=n)
    own = np.searchsorted(artists, labels[rows])
    noisy = labels.copy()
    noisy[rows] = artists[pick + (pick >= own)]  # any artist but the track's own
    return noisy, rows


def write_audit(path: str | Path, result: Audit, trackids: np.ndarray, top: int | None = None) -> Path:
    atomic_write_text(path, result.tsv(trackids, top))
    return Path(path)


def report(result: Audit, trackids: np.ndarray, top: int = 10) -> str:
    """A few lines for the terminal: how many tracks were judged and the most suspect ones."""
    judged = int(np.isfinite(result.suspicion).sum())
    lines = [f"audited {judged} labelled tracks ({len(result.rows) - judged} of single-track artists not judged); "
             f"{int((result.suspicion > 0).sum())} look closer to another artist than to their own"
             + (f" (PLDA shrinkage {result.shrinkage:g})" if result.shrinkage is not None else "")]
    lines += [f"  {trackids[r]}: labelled {a}, looks like {b} (suspicion {s:.2f})"
              for r, a, b, s in zip(result.rows[:top], result.labels[:top], result.suspected[:top],
                                    result.suspicion[:top])]
    return "\n".join(lines)
