"""Which labelled tracks sit under the wrong artist? A ranking of the catalogue by suspicion.

A track is suspect when it is far from its own artist and close to another. Two choices
make that measurable against planted label swaps (benchmarks/bench_audit.py):

- leave-one-out: the track is compared with its artist's centroid *without itself*. A
  mislabelled track otherwise pulls its (wrong) artist's centroid towards itself, and
  the smaller the artist, the more it hides;
- optionally AS-norm (`artistsim.catalogue.identify.normalised_scores`): scores
  z-normalised per track and per centroid against their top cohort scores, so a track
  of a crowded genre is not suspect merely for being close to many artists. On the demo
  data it ranked planted swaps worse than the leave-one-out margin alone
  (benchmarks/bench_audit.py), so it is an option, not the default.

Suspicion = best score among the other artists - score of the own artist (higher is
more suspect); the suspected artist is that best other one. Artists
with a single track cannot be judged leave-one-out and get no suspicion (NaN, last).
`margin_suspicion` is the plain baseline: raw cosine to the nearest other centroid minus
raw cosine to the own centroid, the track included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artistsim.atomic import atomic_write_text
from artistsim.catalogue.identify import TOP_K, ArtistModel, artist_model, normalised_scores, raw_scores

CHUNK = 2048  # tracks scored per block: bounds the (chunk, artists) score matrices


@dataclass
class Audit:
    """Rows ranked most suspect first, with their suspicion and suspected artist."""

    rows: np.ndarray  # catalogue rows, most suspect first
    suspicion: np.ndarray
    labels: np.ndarray  # the artist each track is labelled with
    suspected: np.ndarray  # the artist it looks like

    def tsv(self, trackids: np.ndarray, top: int | None = None) -> str:
        n = len(self.rows) if top is None else min(top, len(self.rows))
        lines = ["trackid\tlabelled_artist\tsuspected_artist\tsuspicion"]
        lines += [f"{trackids[r]}\t{a}\t{b}\t{s:.4f}" for r, a, b, s in
                  zip(self.rows[:n], self.labels[:n], self.suspected[:n], self.suspicion[:n])]
        return "\n".join(lines) + "\n"


def _blocks(model: ArtistModel, e: np.ndarray, own: np.ndarray, leave_one_out: bool, normalise: bool
            ) -> tuple[np.ndarray, np.ndarray]:
    """Suspicion and best other column of every row, CHUNK rows per block."""
    suspicion = np.empty(len(e), dtype=np.float64)
    other = np.empty(len(e), dtype=np.int64)
    for start in range(0, len(e), CHUNK):  # blocks of rows, vectorised inside
        sl = slice(start, start + CHUNK)
        s = raw_scores(model, e[sl], own[sl] if leave_one_out else None)
        if normalise:
            s = normalised_scores(model, s)
        rows = np.arange(s.shape[0])
        mine = s[rows, own[sl]].astype(np.float64)
        s[rows, own[sl]] = -np.inf
        other[sl] = s.argmax(axis=1)
        suspicion[sl] = s[rows, other[sl]] - mine
    return suspicion, other


METHODS = ("loo", "asnorm", "margin")


def audit(embeddings: np.ndarray, labels: np.ndarray, method: str = "loo", top_k: int = TOP_K) -> Audit:
    """Rank labelled tracks by how likely their label is wrong.

    `method` "loo" (the margin against leave-one-out centroids; the default, best on the
    demo data), "asnorm" (leave-one-out and AS-normalised) or "margin" (the plain
    centroid margin, the baseline).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    labels = np.asarray(labels)
    model = artist_model(embeddings, labels, top_k)
    own = model.column(labels)
    e = np.asarray(embeddings, dtype=np.float32)
    loo = method != "margin"
    suspicion, other = _blocks(model, e, own, leave_one_out=loo, normalise=method == "asnorm")
    if loo:
        suspicion[model.counts[own] < 2] = np.nan
    order = np.argsort(np.where(np.isnan(suspicion), np.inf, -suspicion), kind="stable")
    return Audit(order, suspicion[order], labels[order], model.artists[other[order]])


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
             f"{int((result.suspicion > 0).sum())} look closer to another artist than to their own"]
    lines += [f"  {trackids[r]}: labelled {a}, looks like {b} (suspicion {s:.2f})"
              for r, a, b, s in zip(result.rows[:top], result.labels[:top], result.suspected[:top],
                                    result.suspicion[:top])]
    return "\n".join(lines)
