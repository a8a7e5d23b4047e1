"""Linear discriminant analysis of pooled frame statistics: the linear-Gaussian workhorse.

Why its own wing: the LDA map is a baseline (`evaluation.baselines`), a partner fused
with the networks' embeddings at inference (`search.pipeline`), the initialisation of
models' LDA branches (`training`), and the last layer of the random-feature member. One
home keeps one definition of the pooled statistics and of the fit.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from artistsim.data.layout import FeatureSource, progress_disabled
from artistsim.data.splits import full_batch

__all__ = ["LDA", "WCCN", "centre_normalise", "pooled_stats", "pooled_cat"]


def pooled_stats(source: FeatureSource, rows: np.ndarray, batch_size: int = 1024,
                 progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-track mean and standard deviation over true frames (padding excluded): (n, 512) each."""
    means, stds = [], []
    for start in tqdm(range(0, len(rows), batch_size), desc="Pooling", disable=progress_disabled(progress),
                      leave=False):
        x, lengths = full_batch(source, rows[start : start + batch_size])
        valid = (np.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
        mean = (x * valid).sum(1) / lengths[:, None]
        var = (((x - mean[:, None]) * valid) ** 2).sum(1) / lengths[:, None]
        means.append(mean)
        stds.append(np.sqrt(var))
    return np.concatenate(means).astype(np.float32), np.concatenate(stds).astype(np.float32)


def centre_normalise(x: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """Subtract a centre (default: the rows' mean) and L2-normalise rows for cosine search."""
    x = x - (x.mean(0) if centre is None else centre)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _scatters(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(mean, within-class scatter, between-class scatter, classes) of float64 rows, each scatter / n."""
    mean = x.mean(0)
    classes, inverse = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(classes), x.shape[1]))
    np.add.at(sums, inverse, x)
    counts = np.bincount(inverse).astype(np.float64)
    class_means = sums / counts[:, None]
    within = x - class_means[inverse]
    centred = class_means - mean
    return mean, within.T @ within / len(x), (centred * counts[:, None]).T @ centred / len(x), len(classes)


def _whitened_directions(scatter: np.ndarray, regulariser: np.ndarray, keep: int) -> np.ndarray:
    """The `keep` leading directions of `scatter` after whitening by `regulariser` (Cholesky), (D, keep).

    Why Cholesky: solving regulariser^-1 scatter as a symmetric eigenproblem stays stable
    even when pooled features are strongly correlated.
    """
    inv = np.linalg.inv(np.linalg.cholesky(regulariser))
    vals, vecs = np.linalg.eigh(inv @ scatter @ inv.T)
    order = np.argsort(vals)[::-1][:keep]
    return (inv.T @ vecs[:, order]).astype(np.float32)


class LDA:
    """Fisher LDA by whitening the (ridge-regularised) within-class scatter.

    At most C - 1 directions (the rank of the between-class scatter of C artists).
    """

    kind = "lda"

    def __init__(self, n_components: int = 128, ridge: float = 1e-3):
        self.n_components, self.ridge = n_components, ridge

    def fit(self, x: np.ndarray, labels: np.ndarray) -> LDA:
        self.mean_, sw, sb, n_classes = _scatters(x.astype(np.float64), labels)
        sw = sw + self.ridge * np.trace(sw) / len(sw) * np.eye(len(sw))
        self.components_ = _whitened_directions(sb, sw, min(self.n_components, n_classes - 1, x.shape[1]))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_) @ self.components_).astype(np.float32)

    def describe(self) -> str:
        return f"shrinkage {self.ridge:g}, {self.components_.shape[1]} directions"


class WCCN(LDA):
    """Within-class covariance normalisation (Hatch et al., 2006), kept beyond the C - 1 LDA directions.

    Why beside LDA: LDA keeps at most C - 1 directions, the between-class rank of the
    training artists. With few of them (25 on the real-music set) that discards directions
    which still tell unseen artists apart, and there the untrained standardised pooled
    means beat every LDA. WCCN whitens the within-class scatter, shrunk toward the diagonal
    of the total scatter (shrinkage 1: per-dimension standardisation; 0: plain WCCN), and
    keeps the `n_components` directions of most total variance in that whitened space, so
    its width is not tied to the number of training artists. Same `mean_` / `components_`
    interface as `LDA`, so the pipeline fuses and stores either the same way.
    """

    kind = "wccn"

    def __init__(self, n_components: int = 256, shrinkage: float = 0.9):
        super().__init__(n_components, 0.0)
        self.shrinkage = shrinkage

    def fit(self, x: np.ndarray, labels: np.ndarray) -> WCCN:
        x = x.astype(np.float64)
        self.mean_, sw, sb, _ = _scatters(x, labels)
        total = sw + sb
        target = np.diag(np.maximum(np.diag(total), 1e-12 * max(np.trace(total) / len(total), 1e-30)))
        reg = (1.0 - self.shrinkage) * sw + self.shrinkage * target
        reg += 1e-6 * np.trace(reg) / len(reg) * np.eye(len(reg))  # plain WCCN on rank-deficient scatter
        self.components_ = _whitened_directions(total, reg, min(self.n_components, x.shape[1]))
        return self

    def truncated(self, n_components: int) -> WCCN:
        """The same map keeping only its first `n_components` directions (no refit: they are ordered)."""
        out = WCCN(n_components, self.shrinkage)
        out.mean_, out.components_ = self.mean_, self.components_[:, :n_components]
        return out

    def describe(self) -> str:
        return f"shrinkage {self.shrinkage:g}, {self.components_.shape[1]} directions"


def pooled_cat(source: FeatureSource, rows: np.ndarray, progress: bool | None = None) -> np.ndarray:
    """[mean, std] of each track's true frames side by side, (n, 2D): the LDA's input."""
    return np.concatenate(pooled_stats(source, rows, progress=progress), axis=1)
