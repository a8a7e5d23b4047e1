"""Encoders: frames [B, T, F] + lengths [B] -> embeddings [B, embedding_dim].

Embeddings are not normalised; every consumer compares them by cosine.
"""

from __future__ import annotations

from torch import nn

from artistsim.config import ConformerConfig, RandomFeatureConfig, TransformerConfig
from artistsim.models.conformer import ConformerEncoderModel, MaskedBatchNorm1d
from artistsim.models.frontend import LDAFusedModel, PooledLDA, output_dim
from artistsim.models.heads import (
    AttentionPooling,
    MeanPooling,
    Projector,
    build_pooling,
    padding_mask,
)
from artistsim.models.random_features import RandomFeatureLDA
from artistsim.models.transformer import TransformerEncoderModel

__all__ = [
    "AttentionPooling",
    "ConformerEncoderModel",
    "LDAFusedModel",
    "MaskedBatchNorm1d",
    "MeanPooling",
    "Projector",
    "TransformerEncoderModel",
    "build_model",
    "build_pooling",
    "count_parameters",
    "describe",
    "output_dim",
    "padding_mask",
    "PooledLDA",
    "RandomFeatureLDA",
]


def build_model(cfg: TransformerConfig | ConformerConfig | RandomFeatureConfig) -> nn.Module:
    """The encoder a model config describes (with its LDA branch when `lda_branch` is on)."""
    if isinstance(cfg, RandomFeatureConfig):
        return RandomFeatureLDA(cfg)
    if isinstance(cfg, TransformerConfig):
        encoder: nn.Module = TransformerEncoderModel(cfg)
    elif isinstance(cfg, ConformerConfig):
        encoder = ConformerEncoderModel(cfg)
    else:
        raise TypeError(f"expected a TransformerConfig, ConformerConfig or RandomFeatureConfig, "
                        f"got {type(cfg).__name__}")
    return encoder if cfg.lda_branch == "off" else LDAFusedModel(encoder, cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model: nn.Module) -> str:
    """One line for logs: encoder kind, pooling, masking and parameter count."""
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        return f"{type(model).__name__}: {count_parameters(model):,} parameters"
    if isinstance(cfg, RandomFeatureConfig):
        return (f"random-feature LDA ({cfg.num_features} random features, embedding {cfg.embedding_dim}): "
                f"fitted in closed form, no trainable parameters")
    return (
        f"{cfg.kind} encoder ({cfg.num_layers} layers, {cfg.pooling} pooling, "
        f"mask_padding={cfg.mask_padding}, embedding {output_dim(cfg)}"
        + (f", LDA branch {cfg.lda_branch}" if cfg.lda_branch != "off" else "") + "): "
        f"{count_parameters(model):,} parameters"
    )
