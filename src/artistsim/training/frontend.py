"""Fitting the LDA branch of a model (models/frontend.py) on the training rows, once.

Why here: the fit reads the training split's pooled statistics (the same `pooled_stats`
and `LDA` as the LDA baseline, so an untrained "residual" model reproduces that baseline's
ranking), which is the trainer's business, not the model's.
"""

from __future__ import annotations

import numpy as np
import torch

from artistsim.data.splits import SplitData
from artistsim.evaluation.baselines import LDA, pooled_stats
from artistsim.evaluation.inference import tune_lda


def lda_branch(model: torch.nn.Module):
    """The model's PooledLDA branch, or None (unwrapping DistributedDataParallel)."""
    base = model.module if hasattr(model, "module") else model
    return getattr(base, "lda", None)


def fit_lda_branch(model: torch.nn.Module, split: SplitData, rows: np.ndarray, labels: np.ndarray,
                   ridge: float, components: int = 0, progress: bool | None = None,
                   val_rows: np.ndarray | None = None) -> LDA:
    """Fit LDA on the pooled statistics of `rows` and load it into the model; returns it.

    `ridge` <= 0 chooses shrinkage and directions on the artists of `val_rows` (never
    trained on) from `evaluation.inference.LDA_GRID`, as `evaluate` does for fusion.
    """
    branch = lda_branch(model)
    if branch is None:
        raise ValueError("the model has no LDA branch (model.lda_branch is 'off')")
    stats = np.concatenate(pooled_stats(split.source, rows, progress=progress), axis=1)
    width = branch.proj.out_features
    if ridge <= 0:
        if val_rows is None:
            raise ValueError("choosing the LDA branch's shrinkage (lda_ridge <= 0) needs validation rows")
        val_stats = np.concatenate(pooled_stats(split.source, val_rows, progress=progress), axis=1)
        lda = tune_lda(stats, labels, val_stats, split.artists[val_rows], max_components=width)[0]
    else:
        lda = LDA(n_components=min(components or width, width), ridge=ridge).fit(stats, labels)
    branch.set_lda(lda.mean_, lda.components_)
    return lda
