"""Encoders: frames [B, T, F] + lengths [B] -> embeddings [B, embedding_dim].

Embeddings are not normalised; every consumer compares them by cosine.
"""

from __future__ import annotations

from torch import nn

from artistsim.config import ConformerConfig, TransformerConfig
from artistsim.models.conformer import ConformerEncoderModel, MaskedBatchNorm1d
from artistsim.models.heads import (
    AttentionPooling,
    MeanPooling,
    Projector,
    build_pooling,
    padding_mask,
)
from artistsim.models.transformer import TransformerEncoderModel

__all__ = [
    "AttentionPooling",
    "ConformerEncoderModel",
    "MaskedBatchNorm1d",
    "MeanPooling",
    "Projector",
    "TransformerEncoderModel",
    "build_model",
    "build_pooling",
    "count_parameters",
    "describe",
    "padding_mask",
]


def build_model(cfg: TransformerConfig | ConformerConfig) -> nn.Module:
    """The encoder a model config describes."""
    if isinstance(cfg, TransformerConfig):
        return TransformerEncoderModel(cfg)
    if isinstance(cfg, ConformerConfig):
        return ConformerEncoderModel(cfg)
    raise TypeError(f"expected TransformerConfig or ConformerConfig, got {type(cfg).__name__}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model: nn.Module) -> str:
    """One line for logs: encoder kind, pooling, masking and parameter count."""
    cfg = getattr(model, "cfg", None)
    if cfg is None:
        return f"{type(model).__name__}: {count_parameters(model):,} parameters"
    return (
        f"{cfg.kind} encoder ({cfg.num_layers} layers, {cfg.pooling} pooling, "
        f"mask_padding={cfg.mask_padding}, embedding {cfg.embedding_dim}): "
        f"{count_parameters(model):,} parameters"
    )
