"""A 2-D picture of the catalogue: artists' centroids projected, coloured by artist, suspects marked.

Why centroids, not tracks: a million points are no picture; a few thousand artists
are. The projection is PCA by numpy (the two directions along which the centroids
differ most), or UMAP when umap-learn is installed (neighbourhoods kept rather than
variance). The audit's most suspect tracks are projected with the same map and drawn
as crosses, linked to their track pages. Computed once per generation
(`CuratorState.cached`) and drawn as an inline SVG by the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from artistsim.catalogue.names import Names
from artistsim.catalogue.snapshot import Snapshot
from artistsim.catalogue.ui.render import artist_label
from artistsim.catalogue.ui.state import Artists, Review

SIZE = 800  # the SVG's square view box
MARGIN = 30
MAX_ARTISTS = 3000  # the largest artists drawn; more would crowd the picture
SUSPECTS = 40


@dataclass(frozen=True)
class Picture:
    """What the template draws: points (artists), crosses (suspects), how it was projected."""

    points: list[dict[str, Any]]
    suspects: list[dict[str, Any]]
    method: str
    artists: int  # labelled artists in the catalogue (may be more than drawn)


def project(centroids: np.ndarray, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """2-D coordinates of the centroids and of `extra` vectors by one map (UMAP or PCA)."""
    if len(centroids) >= 10:
        try:
            import umap  # optional: umap-learn
        except ImportError:
            umap = None
        if umap is not None:
            model = umap.UMAP(n_components=2, n_neighbors=min(15, len(centroids) - 1), random_state=0)
            xy = model.fit_transform(centroids)
            return xy, model.transform(extra) if len(extra) else np.empty((0, 2)), "UMAP"
    mean = centroids.mean(axis=0)
    _, _, vt = np.linalg.svd(centroids - mean, full_matrices=False)
    basis = vt[:2].T if vt.shape[0] >= 2 else np.pad(vt.T, ((0, 0), (0, 2 - vt.shape[0])))
    return (centroids - mean) @ basis, (extra - mean) @ basis, "PCA"


def _scale(xy: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray:
    return MARGIN + (xy - lo) / span * (SIZE - 2 * MARGIN)


def colour(artist: int) -> str:
    """A stable colour per artist id (Knuth's multiplicative hash of the id as the hue)."""
    return f"hsl({(int(artist) * 2654435761 % 2**32) / 2**32 * 360:.0f}, 65%, 48%)"


def picture(snap: Snapshot, table: Artists, review: Review | None, names: Names) -> Picture:
    """The map of one generation."""
    keep = np.argsort(-table.counts, kind="stable")[:MAX_ARTISTS]
    cents = table.centroids[keep]
    sus_rows = np.empty(0, dtype=np.int64)
    suspects: list[tuple[int, int, int, float]] = []
    if review is not None:
        res = review.audit
        top = np.flatnonzero(np.isfinite(res.suspicion) & (res.suspicion > 0))[:SUSPECTS]
        suspects = [(int(review.trackids[i]), int(res.labels[i]), int(res.suspected[i]), float(res.suspicion[i]))
                    for i in top]
        sus_rows = snap.rows_of(np.array([s[0] for s in suspects], dtype=np.int64))
    extra = snap.vectors(sus_rows) if len(sus_rows) else np.empty((0, cents.shape[1]), np.float32)
    xy, sxy, method = project(cents.astype(np.float64), extra.astype(np.float64))
    both = np.concatenate([xy, sxy]) if len(sxy) else xy
    lo, hi = both.min(axis=0), both.max(axis=0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    pts, spts = _scale(xy, lo, span), _scale(sxy, lo, span) if len(sxy) else sxy
    radius = 3 + 9 * np.sqrt(table.counts[keep] / max(int(table.counts.max()), 1))
    points = [{"x": float(p[0]), "y": float(p[1]), "r": float(r), "artist": int(a), "colour": colour(a),
               "label": artist_label(names, a), "count": int(c)}
              for p, r, a, c in zip(pts, radius, table.ids[keep], table.counts[keep])]
    crosses = [{"x": float(p[0]), "y": float(p[1]), "trackid": t, "label": artist_label(names, lab),
                "suspected": artist_label(names, sus), "suspicion": s}
               for p, (t, lab, sus, s) in zip(spts, suspects)]
    return Picture(points, crosses, method, len(table.ids))
