"""The seed's Transformer encoder: frames -> nn.TransformerEncoder -> pooling -> projector.

No positional encoding (as the seed): a track's artist identity is a property of the
set of its frames more than of their order, and crops start anywhere.

mask_padding=True passes a key padding mask so real frames never attend to padding,
and pools over real frames only: a track then gets the same embedding whatever its
batch was padded to. mask_padding=False is the seed exactly (no mask anywhere).
"""

from __future__ import annotations

from torch import Tensor, nn

from artistsim.config import TransformerConfig
from artistsim.models.heads import EncoderHead


class TransformerEncoderModel(EncoderHead):
    """forward(x [B, T, F], lengths [B]) -> [B, embedding_dim] (not normalised)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.num_heads:
            raise ValueError(f"d_model {cfg.d_model} is not divisible by num_heads {cfg.num_heads}")
        self.cfg = cfg
        self.input_proj: nn.Module = (
            nn.Linear(cfg.input_dim, cfg.d_model) if cfg.input_dim != cfg.d_model else nn.Identity()
        )
        layer = nn.TransformerEncoderLayer(
            d_model=cfg.d_model,
            nhead=cfg.num_heads,
            dim_feedforward=cfg.ffn_dim,
            dropout=cfg.dropout,
            batch_first=True,
        )
        # Nested tensors off: that inference path (a prototype API that warns) only
        # pays off when batches are mostly padding, and most tracks are full length.
        # The fused eval path still runs; tests check it agrees with training mode.
        self.encoder = nn.TransformerEncoder(layer, num_layers=cfg.num_layers, enable_nested_tensor=False)
        self.attach_head(cfg, cfg.d_model)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        x, pad = self.frames_in(x, lengths)
        h = self.encoder(self.input_proj(x), src_key_padding_mask=pad if self.cfg.mask_padding else None)
        return self.head(h, pad)
