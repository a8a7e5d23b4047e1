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

__all__ = ["LDA", "centre_normalise", "pooled_stats", "pooled_cat"]


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


class LDA:
    """Fisher LDA by whitening the (ridge-regularised) within-class scatter.

    Solving Sw^-1 Sb through a Cholesky whitening keeps it a symmetric eigenproblem,
    stable even when pooled features are strongly correlated.
    """

    def __init__(self, n_components: int = 128, ridge: float = 1e-3):
        self.n_components, self.ridge = n_components, ridge

    def fit(self, x: np.ndarray, labels: np.ndarray) -> LDA:
        x = x.astype(np.float64)
        self.mean_ = x.mean(0)
        classes, inverse = np.unique(labels, return_inverse=True)
        sums = np.zeros((len(classes), x.shape[1]))
        np.add.at(sums, inverse, x)
        counts = np.bincount(inverse).astype(np.float64)
        class_means = sums / counts[:, None]
        within = x - class_means[inverse]
        sw = within.T @ within / len(x)
        centred = class_means - self.mean_
        sb = (centred * counts[:, None]).T @ centred / len(x)
        sw += self.ridge * np.trace(sw) / len(sw) * np.eye(len(sw))
        chol = np.linalg.cholesky(sw)
        inv = np.linalg.inv(chol)
        vals, vecs = np.linalg.eigh(inv @ sb @ inv.T)
        keep = min(self.n_components, len(classes) - 1, x.shape[1])
        order = np.argsort(vals)[::-1][:keep]
        self.components_ = (inv.T @ vecs[:, order]).astype(np.float32)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean_) @ self.components_).astype(np.float32)




def pooled_cat(source: FeatureSource, rows: np.ndarray, progress: bool | None = None) -> np.ndarray:
    """[mean, std] of each track's true frames side by side, (n, 2D): the LDA's input."""
    return np.concatenate(pooled_stats(source, rows, progress=progress), axis=1)
