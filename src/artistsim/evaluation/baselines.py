"""Untrained reference points every trained result is compared with.

- `meanpool`: the mean of a track's true frames, centred on the catalogue mean, cosine.
  What one gets for free from the features.
- `lda`: mean and standard deviation of the true frames, projected by linear
  discriminant analysis fitted on the training artists, cosine. The best a linear map of
  pooled statistics can do; a sequence model must beat it to earn its cost.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from artistsim.scoring.lda import LDA, centre_normalise, pooled_stats

__all__ = ["LDA", "Method", "baseline_embeddings", "centre_normalise", "pooled_stats"]

Method = Literal["meanpool", "lda"]


def baseline_embeddings(method: Method, fit_stats: tuple[np.ndarray, np.ndarray] | None,
                        fit_labels: np.ndarray | None, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Cosine-ready embeddings of tracks with pooled `stats`; LDA is fitted on `fit_stats`."""
    if method == "meanpool":
        return centre_normalise(stats[0])
    if method == "lda":
        if fit_stats is None or fit_labels is None:
            raise ValueError("the lda baseline needs training statistics and labels")
        lda = LDA().fit(np.concatenate(fit_stats, axis=1), fit_labels)
        return centre_normalise(lda.transform(np.concatenate(stats, axis=1)))
    raise ValueError(f"unknown baseline method {method!r}; expected 'meanpool' or 'lda'")
