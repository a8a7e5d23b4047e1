"""Random-feature LDA: a closed-form encoder of how a track's frames move, not where they sit.

Why: pooled mean and standard deviation (the LDA baseline) see each channel on its own;
the networks see more but learn from batches of a few dozen artists at a time. This
encoder is a kernel method fitted in closed form on every training artist at once:

1. each frame is centred and projected on the frames' top-k principal directions,
   whitened (each direction scaled to unit variance), so that the many low-variance
   directions that are mostly noise are dropped instead of amplified;
2. `num_features` fixed random unit directions r of that k-dimensional space give
   |r . y| per frame, a non-linearity *before* pooling (random features of a kernel
   on frames: they respond to the directions a track's frames spread along, even when
   those spreads cancel in the mean);
3. the mean over the track's true frames (padding excluded) is projected by an LDA
   fitted on the training artists.

Steps 1-2 fold into one (input_dim, num_features) matrix, so the forward pass is one
matrix product per frame, an absolute value, a masked mean and a linear map. k and the
LDA's shrinkage and directions are chosen on the held-out validation artists
(`artistsim.training.random_features`); nothing is learned by gradient.

forward(x [B, T, F], lengths [B]) -> [B, embedding_dim], like every encoder here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from artistsim.config import RandomFeatureConfig
from artistsim.models.frontend import load_lda


class RandomFeatureLDA(nn.Module):
    """Centre -> (whitening x random directions) -> |.| -> masked mean -> LDA. Unfitted, it outputs zeros."""

    def __init__(self, cfg: RandomFeatureConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("centre", torch.zeros(cfg.input_dim))
        self.register_buffer("directions", torch.zeros(cfg.input_dim, cfg.num_features))
        self.proj = nn.Linear(cfg.num_features, cfg.embedding_dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.proj.requires_grad_(False)  # fitted in closed form, never by gradient

    def set_directions(self, centre: np.ndarray, directions: np.ndarray) -> None:
        """The frame centre (F,) and the folded whitening x random-direction matrix (F, num_features)."""
        if centre.shape != tuple(self.centre.shape) or directions.shape != tuple(self.directions.shape):
            raise ValueError(f"random-feature map of shapes {centre.shape} / {directions.shape} does not fit "
                             f"{tuple(self.centre.shape)} / {tuple(self.directions.shape)}")
        with torch.no_grad():
            self.centre.copy_(torch.as_tensor(centre, dtype=self.centre.dtype))
            self.directions.copy_(torch.as_tensor(directions, dtype=self.directions.dtype))

    def set_lda(self, mean: np.ndarray, components: np.ndarray) -> None:
        """Load a fitted LDA of the pooled features (`LDA.mean_`, `LDA.components_` [R, k]); k < dim pads with 0."""
        load_lda(self.proj, mean, components)

    def pooled(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Mean of |(frame - centre) . directions| over each track's true frames: [B, num_features]."""
        valid = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1)
        h = ((x.float() - self.centre) @ self.directions).abs().masked_fill(~valid, 0.0)
        return h.sum(1) / lengths.to(h.dtype)[:, None].clamp_min(1.0)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.proj(self.pooled(x, lengths))
