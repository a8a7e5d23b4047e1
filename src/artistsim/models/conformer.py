"""Our own Conformer encoder (Gulati et al. 2020), laid out as torchaudio's, plus masking.

Design against torchaudio.models.Conformer (which the seed used; we do not depend on it):
- Same block, same order, same parameter shapes: x += 0.5 * FF(x); x += Dropout(MHSA(LN(x)))
  with the key padding mask from lengths; x += Conv(x); x += 0.5 * FF(x); LN(x).
  FF = LN, Linear(d, ffn), SiLU, Dropout, Linear(ffn, d), Dropout. Conv = LN, pointwise
  Conv1d(d, 2d), GLU, depthwise Conv1d(kernel k, groups d, same padding), BatchNorm1d,
  SiLU, pointwise Conv1d(d, d), Dropout; convolutions with bias, as torchaudio's layer.
  No input projection and no positional encoding, as torchaudio's Conformer.
- Differences: attention runs batch-first (torchaudio transposes to time-first; the
  maths is the same); no GroupNorm / convolution-first options (the seed used neither).
- mask_padding=True (ours, the default) closes the two places where torchaudio lets
  padding leak into real frames: (1) the depthwise convolution sees neighbouring padded
  frames, so we zero them first — a real frame then sees the same zeros whether the
  batch was padded to its length or to 81; (2) BatchNorm statistics include padded
  frames, so we use MaskedBatchNorm1d, whose batch and running statistics come from
  real frames only. Pooling also averages real frames only.
- mask_padding=False reproduces the seed: torchaudio behaviour (attention masked,
  plain BatchNorm1d over all frames, no zeroing) and pooling over all frames.
The module tree is identical in both modes (MaskedBatchNorm1d without a mask is
BatchNorm1d), so a checkpoint loads into either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from artistsim.config import ConformerConfig
from artistsim.models.heads import EncoderHead


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over [B, C, T] whose statistics skip padded frames.

    forward(x, pad=None) is plain BatchNorm1d. With pad ([B, T], True = padding) in
    training mode, the mean and variance used to normalise, and the running estimates
    updated for inference, are computed over real frames only — so the amount of
    padding in a batch changes neither the output of real frames nor the model that
    inference will use. In eval mode running statistics are used and pad is irrelevant.
    """

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:  # type: ignore[override]
        if pad is None or not (self.training or not self.track_running_stats):
            return super().forward(x)
        if x.dim() != 3 or pad.shape != (x.shape[0], x.shape[2]):
            raise ValueError(f"expected x [B, C, T] and pad [B, T], got {tuple(x.shape)}, {tuple(pad.shape)}")
        keep = ~pad.unsqueeze(1)  # [B, 1, T]
        count = keep.sum()
        if int(count) < 2 and self.training:
            raise ValueError("MaskedBatchNorm1d needs at least 2 real frames in a training batch")
        mean = x.masked_fill(~keep, 0.0).sum(dim=(0, 2)) / count
        centred = (x - mean[None, :, None]).masked_fill(~keep, 0.0)
        var = centred.pow(2).sum(dim=(0, 2)) / count
        if self.training and self.track_running_stats:
            self._update_running(mean, var * count / (count - 1))
        y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None] + self.bias[None, :, None]
        return y

    @torch.no_grad()
    def _update_running(self, mean: Tensor, unbiased_var: Tensor) -> None:
        """Same update rule as nn.BatchNorm1d (momentum, or cumulative if momentum is None)."""
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.detach(), factor)
        self.running_var.lerp_(unbiased_var.detach(), factor)


class FeedForward(nn.Module):
    """Per-frame FF: LayerNorm, Linear(d, ffn), SiLU, Dropout, Linear(ffn, d), Dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvModule(nn.Module):
    """Conformer convolution module on [B, T, d]; with a mask, padding cannot leak in."""

    def __init__(self, dim: int, kernel: int, dropout: float) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"depthwise_kernel must be odd for 'same' padding, got {kernel}")
        self.layer_norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, 2 * dim, kernel_size=1)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size=kernel, padding=kernel // 2, groups=dim)
        self.batch_norm = MaskedBatchNorm1d(dim)
        self.pointwise_out = nn.Conv1d(dim, dim, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pad: Tensor | None) -> Tensor:
        """pad: [B, T] True = padding, or None for torchaudio behaviour (no masking)."""
        h = self.layer_norm(x).transpose(1, 2)  # [B, d, T]
        h = F.glu(self.pointwise_in(h), dim=1)
        if pad is not None:
            h = h.masked_fill(pad.unsqueeze(1), 0.0)
        h = self.depthwise(h)
        h = F.silu(self.batch_norm(h, pad))
        h = self.dropout(self.pointwise_out(h))
        return h.transpose(1, 2)


class ConformerBlock(nn.Module):
    """One Conformer layer (macaron FF halves around attention and convolution)."""

    def __init__(self, dim: int, heads: int, ffn: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.ff1 = FeedForward(dim, ffn, dropout)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvModule(dim, kernel, dropout)
        self.ff2 = FeedForward(dim, ffn, dropout)
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, pad: Tensor, mask_conv: bool) -> Tensor:
        """pad always masks attention keys (as torchaudio); mask_conv also masks the conv."""
        x = x + 0.5 * self.ff1(x)
        h = self.attn_norm(x)
        h, _ = self.attn(h, h, h, key_padding_mask=pad, need_weights=False)
        x = x + self.attn_dropout(h)
        x = x + self.conv(x, pad if mask_conv else None)
        x = x + 0.5 * self.ff2(x)
        return self.final_norm(x)


class ConformerEncoderModel(EncoderHead):
    """forward(x [B, T, F], lengths [B]) -> [B, embedding_dim] (not normalised)."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        d = cfg.width
        if d % cfg.num_heads:
            raise ValueError(f"conformer width {d} is not divisible by num_heads {cfg.num_heads}")
        self.cfg = cfg
        self.blocks = nn.ModuleList(
            ConformerBlock(d, cfg.num_heads, cfg.ffn_dim, cfg.depthwise_kernel, cfg.dropout)
            for _ in range(cfg.num_layers)
        )
        # torchaudio's Conformer has no input projection; one is added only for d < input
        self.input_proj = nn.Linear(cfg.input_dim, d) if d != cfg.input_dim else nn.Identity()
        self.attach_head(cfg, d)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        x, pad = self.frames_in(x, lengths)
        x = self.input_proj(x)
        for block in self.blocks:
            x = block(x, pad, self.cfg.mask_padding)
        return self.head(x, pad)
