"""Analytic model FLOPs of the two seed encoders, for utilisation figures (MFU).

Only matrix products are counted (a multiply-add is 2 FLOPs); layer norms, softmax,
activations, masking and pooling are left out (they are O(T d), not O(T d^2)). A track
of T frames (T = the padded length the batch actually computes on), model width d:

Transformer layer (nn.TransformerEncoderLayer, ff = feed-forward width):
    QKV projection 2 T d 3d + output projection 2 T d d + feed-forward 2 T d ff x 2
    + attention scores Q K^T 2 T^2 d + weights x V 2 T^2 d
    = T (8 d^2 + 4 d ff) + 4 T^2 d
Conformer layer (f = ffn width, kernel k):
    two half-step feed-forwards 2 x 4 T d f + attention T 8 d^2 + 4 T^2 d
    + convolution module: pointwise in 2 T d 2d, depthwise 2 T d k, pointwise out 2 T d d
    = T (8 d f + 14 d^2 + 2 d k) + 4 T^2 d
Both: + input projection 2 T d_in d when d_in != d, + projector 2 (d h + h e) per track.

Training is counted as 3x the forward pass (the backward pass computes the gradient with
respect to both the inputs and the weights of every product: 2x the forward).
"""

from __future__ import annotations

import numpy as np

TRAIN_FACTOR = 3.0


def forward_flops(cfg, lengths) -> float:
    """Forward FLOPs of a batch whose tracks are computed at `lengths` frames each."""
    t = np.asarray(lengths, dtype=np.float64)
    if cfg.kind == "transformer":
        d, layers = cfg.d_model, cfg.num_layers
        per_layer = t * (8 * d * d + 4 * d * cfg.ffn_dim) + 4 * t * t * d
        extra = 2 * t * cfg.input_dim * d if cfg.input_dim != d else 0.0 * t
    elif cfg.kind == "conformer":
        d, layers = cfg.input_dim, cfg.num_layers
        per_layer = t * (8 * d * cfg.ffn_dim + 14 * d * d + 2 * d * cfg.depthwise_kernel) + 4 * t * t * d
        extra = 0.0 * t
    else:
        raise ValueError(f"unknown model kind {cfg.kind!r}")
    projector = 2.0 * (d * cfg.projector_hidden + cfg.projector_hidden * cfg.embedding_dim)
    return float(np.sum(layers * per_layer + extra + projector))


def train_flops(cfg, lengths) -> float:
    return TRAIN_FACTOR * forward_flops(cfg, lengths)
