"""The LDA branch: pooled mean and standard deviation of the frames, projected linearly.

Why: the LDA baseline (`artistsim.evaluation.baselines`) sees the shrinkage-regularised
within-artist scatter of every training artist at once; a network trained on batches of
a few dozen artists does not, and on data it was not designed for it loses to that
linear map. This branch gives the network the LDA map itself: fitted once on the
training split (`set_lda`), applied as a fixed (or trainable) layer on the track's
pooled statistics, and combined with the encoder so that training starts from the LDA
solution and learns what it misses:

- "residual": embedding = LDA(x) + encoder(x), with the encoder's last projector layer
  zero-initialised, so the untrained model *is* the LDA baseline (up to a global scale);
- "concat": [lda_weight * normalise(LDA(x)), normalise(encoder(x))], an ensemble the
  network is trained inside of (it learns the complement of the LDA part).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F


def pooled_mean_std(x: Tensor, lengths: Tensor) -> Tensor:
    """[mean, std] over each track's true frames (population std, as `pooled_stats`): [B, 2F]."""
    T = x.shape[1]
    valid = (torch.arange(T, device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1)
    x = x.float().masked_fill(~valid, 0.0)
    n = lengths.to(x.dtype)[:, None].clamp_min(1.0)
    mean = x.sum(1) / n
    var = ((x - mean[:, None]).masked_fill(~valid, 0.0) ** 2).sum(1) / n
    return torch.cat([mean, var.clamp_min(0.0).sqrt()], dim=1)


def load_lda(proj: nn.Linear, mean: np.ndarray, components: np.ndarray, scale: float = 1.0) -> None:
    """Make `proj` the fitted LDA x -> (x - mean) @ components, times `scale`; output rows beyond k are zero.

    (`LDA.mean_` [in], `LDA.components_` [in, k], k <= proj.out_features.)
    """
    k = components.shape[1]
    if components.shape[0] != proj.in_features or k > proj.out_features:
        raise ValueError(f"LDA components of shape {components.shape} do not fit a "
                         f"{proj.in_features} -> {proj.out_features} projection")
    w = torch.zeros_like(proj.weight)
    w[:k] = torch.as_tensor(components.T, dtype=w.dtype)
    b = torch.zeros_like(proj.bias)
    b[:k] = -torch.as_tensor(mean @ components, dtype=b.dtype)
    with torch.no_grad():
        proj.weight.copy_(w * scale)
        proj.bias.copy_(b * scale)


class PooledLDA(nn.Module):
    """Pooled statistics -> linear map (LDA-fitted), scaled by 1/sqrt(dim).

    The scale keeps the branch's norm near one (LDA whitens the within-artist scatter, so
    each output dimension has unit within-artist variance), comparable with an encoder's
    output in the residual sum. Unfitted, the map is zero.
    """

    def __init__(self, input_dim: int, out_dim: int, trainable: bool) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * input_dim, out_dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.proj.requires_grad_(trainable)
        self.scale = 1.0 / math.sqrt(out_dim)

    def set_lda(self, mean: np.ndarray, components: np.ndarray) -> None:
        """Load a fitted LDA (`LDA.mean_`, `LDA.components_` [2F, k]); k < out_dim pads with zeros."""
        load_lda(self.proj, mean, components, self.scale)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.proj(pooled_mean_std(x, lengths))


class LDAFusedModel(nn.Module):
    """An encoder with an LDA branch beside it ("residual" or "concat", see module doc).

    forward(x [B, T, F], lengths [B]) -> [B, output_dim] (not normalised), like any encoder.
    """

    def __init__(self, encoder: nn.Module, cfg) -> None:
        super().__init__()
        if cfg.lda_branch not in ("residual", "concat"):
            raise ValueError(f"lda_branch must be 'residual' or 'concat' here, got {cfg.lda_branch!r}")
        self.cfg, self.mode, self.weight = cfg, cfg.lda_branch, float(cfg.lda_weight)
        self.encoder = encoder
        self.lda = PooledLDA(cfg.input_dim, cfg.embedding_dim, cfg.lda_trainable)
        if self.mode == "residual":
            nn.init.zeros_(encoder.projector.net[-1].weight)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        linear = self.lda(x, lengths)
        learned = self.encoder(x, lengths).float()
        if self.mode == "residual":
            return linear + learned
        return torch.cat([self.weight * F.normalize(linear, dim=1), F.normalize(learned, dim=1)], dim=1)


def output_dim(cfg) -> int:
    """Width of the embedding a model config produces (the classifier losses need it)."""
    return 2 * cfg.embedding_dim if getattr(cfg, "lda_branch", "off") == "concat" else cfg.embedding_dim
