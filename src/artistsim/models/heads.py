"""Shared encoder parts: the padding mask, pooling over time, and the projector.

Why separate modules: every encoder turns frames into one vector the same way
(pool over time, then project), so the pooling is swappable by name and the
projector is the seed's exactly, whichever encoder sits underneath.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def padding_mask(lengths: Tensor, T: int) -> Tensor:
    """BoolTensor[B, T], True where frame t of track b is padding (t >= lengths[b])."""
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D [B], got shape {tuple(lengths.shape)}")
    positions = torch.arange(T, device=lengths.device)
    return positions.unsqueeze(0) >= lengths.unsqueeze(1)


def check_inputs(x: Tensor, lengths: Tensor, input_dim: int) -> None:
    """Reject inputs an encoder would otherwise mis-handle silently (e.g. NaN from empty tracks)."""
    if x.dim() != 3:
        raise ValueError(f"x must be [B, T, F], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a float tensor, got {x.dtype}")
    B, T, F = x.shape
    if F != input_dim:
        raise ValueError(f"x has {F} features per frame, the model expects input_dim={input_dim}")
    if lengths.shape != (B,):
        raise ValueError(f"lengths must have shape [{B}], got {tuple(lengths.shape)}")
    if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
        raise ValueError(
            f"lengths must be in 1..{T} (frames in x), got min {int(lengths.min())}, "
            f"max {int(lengths.max())}"
        )


class MeanPooling(nn.Module):
    """Average over time.

    mask_padding=True averages over valid frames only, so a track's embedding does not
    depend on how much padding its batch needed; False is the seed (plain mean over T).
    """

    def __init__(self, mask_padding: bool) -> None:
        super().__init__()
        self.mask_padding = mask_padding

    def forward(self, x: Tensor, pad: Tensor | None) -> Tensor:
        """x: [B, T, D]; pad: [B, T] True = padding (ignored unless mask_padding)."""
        if not self.mask_padding or pad is None:
            return x.mean(dim=1)
        valid = (~pad).unsqueeze(-1).to(x.dtype)
        # masked_fill rather than x * valid: garbage (even inf/NaN) in padding stays out.
        total = x.masked_fill(pad.unsqueeze(-1), 0.0).sum(dim=1)
        return total / valid.sum(dim=1).clamp_min(1.0)

    def extra_repr(self) -> str:
        return f"mask_padding={self.mask_padding}"


class AttentionPooling(nn.Module):
    """Learned weighted average over time (attentive pooling, as the 1st place used).

    A small MLP scores each frame; a softmax over the valid frames (padding gets -inf
    when mask_padding) turns scores into weights. Frames the scorer finds typical of
    the artist can outweigh silence or transitions, which a plain mean cannot do.
    """

    def __init__(self, dim: int, mask_padding: bool, hidden: int = 128) -> None:
        super().__init__()
        self.mask_padding = mask_padding
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor, pad: Tensor | None) -> Tensor:
        """x: [B, T, D]; pad: [B, T] True = padding (ignored unless mask_padding)."""
        use_mask = self.mask_padding and pad is not None
        if use_mask:
            x = x.masked_fill(pad.unsqueeze(-1), 0.0)
        scores = self.score(x).squeeze(-1)  # [B, T]
        if use_mask:
            scores = scores.masked_fill(pad, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("bt,btd->bd", weights, x)

    def extra_repr(self) -> str:
        return f"mask_padding={self.mask_padding}"


def build_pooling(name: str, dim: int, mask_padding: bool) -> nn.Module:
    """Pooling module by config name: "mean" or "attention"."""
    if name == "mean":
        return MeanPooling(mask_padding)
    if name == "attention":
        return AttentionPooling(dim, mask_padding)
    raise ValueError(f"unknown pooling {name!r}; expected 'mean' or 'attention'")


class Projector(nn.Module):
    """The seed's head: Linear -> ReLU -> Linear, no biases (512 -> 512 -> 128)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, out_dim, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
