"""Shared encoder parts: the padding mask, pooling over time, and the projector.

Why separate modules: every encoder turns frames into one vector the same way
(pool over time, then project), so the pooling is swappable by name and the
projector is the seed's exactly, whichever encoder sits underneath. Every pooling
module has an `out_dim` (the projector's input width): the statistics poolings of
speaker verification return mean and standard deviation side by side (twice the width).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from artistsim.models.vlad import VLADPooling


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


STD_FLOOR = 1e-5  # variance floor: sqrt has an infinite slope at 0 (one-frame tracks)


def masked_moments(x: Tensor, pad: Tensor | None) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation over time of x [B, T, D], over real frames only.

    pad [B, T] (True = padding) or None (every frame counts). Padding is zeroed with
    masked_fill before any arithmetic so that non-finite garbage there stays out. The
    variance is the biased one (a one-frame track has 0), floored at STD_FLOOR.
    """
    if pad is None:
        mean = x.mean(dim=1)
        var = (x * x).mean(dim=1) - mean * mean
    else:
        x = x.masked_fill(pad.unsqueeze(-1), 0.0)
        count = (~pad).sum(dim=1, keepdim=True).to(x.dtype).clamp_min(1.0)
        mean = x.sum(dim=1) / count
        var = (x * x).sum(dim=1) / count - mean * mean
    return mean, var.clamp_min(STD_FLOOR).sqrt()


class MeanPooling(nn.Module):
    """Average over time.

    mask_padding=True averages over valid frames only, so a track's embedding does not
    depend on how much padding its batch needed; False is the seed (plain mean over T).
    """

    def __init__(self, mask_padding: bool, dim: int = 0) -> None:
        super().__init__()
        self.mask_padding, self.out_dim = mask_padding, dim

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
        self.mask_padding, self.out_dim = mask_padding, dim
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


class StatsPooling(nn.Module):
    """Mean and standard deviation over time, side by side (the x-vector's pooling).

    Why: how far a track's frames spread along each channel is artist signal a mean
    throws away (the synthetic style lives in the frames' second moment), and the
    speaker-verification networks that map frames to one vector per recording all keep
    it. Over real frames only when mask_padding.
    """

    def __init__(self, dim: int, mask_padding: bool) -> None:
        super().__init__()
        self.mask_padding, self.out_dim = mask_padding, 2 * dim

    def forward(self, x: Tensor, pad: Tensor | None) -> Tensor:
        """x: [B, T, D]; pad: [B, T] True = padding -> [B, 2D]."""
        mean, std = masked_moments(x, pad if self.mask_padding else None)
        return torch.cat([mean, std], dim=1)

    def extra_repr(self) -> str:
        return f"mask_padding={self.mask_padding}"


class AttentiveStatsPooling(nn.Module):
    """Attentive statistics pooling (ECAPA-TDNN): weighted mean and std, weights per channel.

    Each frame is scored from itself and the track's global context (its unweighted mean
    and std), one score per channel, and a softmax over the real frames gives each
    channel its own weights: a channel can listen to the sections where it carries the
    artist and skip generic runs, which one weight per frame cannot do channel by channel.
    Padding gets zero weight and contributes nothing (masked before any arithmetic).
    """

    def __init__(self, dim: int, mask_padding: bool, hidden: int = 128) -> None:
        super().__init__()
        self.mask_padding, self.out_dim = mask_padding, 2 * dim
        self.score = nn.Sequential(nn.Linear(3 * dim, hidden), nn.Tanh(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, pad: Tensor | None) -> Tensor:
        """x: [B, T, D]; pad: [B, T] True = padding -> [B, 2D]."""
        pad = pad if self.mask_padding else None
        if pad is not None:
            x = x.masked_fill(pad.unsqueeze(-1), 0.0)
        mean, std = masked_moments(x, pad)
        T = x.shape[1]
        context = torch.cat([x, mean.unsqueeze(1).expand(-1, T, -1), std.unsqueeze(1).expand(-1, T, -1)], dim=2)
        scores = self.score(context)  # [B, T, D]
        if pad is not None:
            scores = scores.masked_fill(pad.unsqueeze(-1), float("-inf"))
        weights = torch.softmax(scores, dim=1)
        mu = (weights * x).sum(dim=1)
        var = (weights * x * x).sum(dim=1) - mu * mu
        return torch.cat([mu, var.clamp_min(STD_FLOOR).sqrt()], dim=1)

    def extra_repr(self) -> str:
        return f"mask_padding={self.mask_padding}"


POOLINGS = ("mean", "attention", "stats", "attentive_stats", "netvlad", "ghostvlad")


def build_pooling(name: str, dim: int, mask_padding: bool, clusters: int = 8, ghost_clusters: int = 2) -> nn.Module:
    """Pooling module by config name (POOLINGS); its `out_dim` is the projector's input width.

    `clusters` / `ghost_clusters` are read by the VLAD poolings only (models/vlad.py).
    """
    if name == "mean":
        return MeanPooling(mask_padding, dim)
    if name == "attention":
        return AttentionPooling(dim, mask_padding)
    if name == "stats":
        return StatsPooling(dim, mask_padding)
    if name == "attentive_stats":
        return AttentiveStatsPooling(dim, mask_padding)
    if name in ("netvlad", "ghostvlad"):
        return VLADPooling(dim, mask_padding, clusters, ghost_clusters if name == "ghostvlad" else 0)
    raise ValueError(f"unknown pooling {name!r}; expected one of {POOLINGS}")


class EmbeddingBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that normalises a one-track training batch with its running statistics.

    A batch of whole artists can hold a single track (the last, short batch of an epoch
    when one single-track artist is left over, or one micro-batch), where batch
    statistics do not exist and nn.BatchNorm1d raises.
    """

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        if self.training and x.shape[0] < 2:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


def build_embedding_norm(kind: str, dim: int) -> nn.Module:
    """What follows the projector: nothing ("none", the seed) or a BatchNorm1d ("batchnorm").

    Why a batch norm on the embedding (as the x-vector and ECAPA-TDNN end): an untrained
    encoder puts every track in a narrow cone (mean cosine 0.92 between tracks of the
    demo), where a cosine classifier's gradients barely separate classes; centring and
    scaling each dimension spreads the tracks over the sphere from the first step. In
    eval mode it uses running statistics, so a track's embedding never depends on its batch.
    """
    if kind == "none":
        return nn.Identity()
    if kind == "batchnorm":
        return EmbeddingBatchNorm(dim)
    raise ValueError(f"unknown embedding_norm {kind!r}; expected 'none' or 'batchnorm'")


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


class InputNorm(nn.Module):
    """Global mean and variance normalisation of the frames (Kaldi's global CMVN).

    Why: front ends differ in scale per channel (the dsp descriptor mixes log powers, MFCCs
    and 0-1 chroma; musicnn's channels are ReLU outputs of very unequal size), and a random
    input layer weighs channels by their raw scale. Standardising each channel with the
    training frames' statistics (`set_stats`, once before training; buffers, so
    checkpoints carry them) makes the first layer start on equal terms. Unfitted, it is
    the identity.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("inv_std", torch.ones(dim))

    def set_stats(self, mean: Tensor, std: Tensor) -> None:
        with torch.no_grad():
            self.mean.copy_(mean)
            self.inv_std.copy_(1.0 / std.clamp_min(1e-6 * float(std.max().clamp_min(1e-12))))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) * self.inv_std


class EncoderHead(nn.Module):
    """What every encoder ends with: pooling over true frames -> projector -> embedding norm.

    Why one class: the transformer and the conformer differ only in their frame layers;
    how a track's frames become its embedding (and which switches shape that) is one idea.
    The attribute names (pooling, projector, embedding_norm) are the checkpoints' keys.
    """

    def attach_head(self, cfg, width: int) -> None:
        if cfg.input_norm == "global":
            self.input_norm = InputNorm(cfg.input_dim)
        self.pooling = build_pooling(cfg.pooling, width, cfg.mask_padding, cfg.vlad_clusters, cfg.ghost_clusters)
        self.projector = Projector(self.pooling.out_dim, cfg.projector_hidden, cfg.embedding_dim)
        self.embedding_norm = build_embedding_norm(cfg.embedding_norm, cfg.embedding_dim)

    def frames_in(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Checked input and its padding mask; with mask_padding, padded frames zeroed first.

        Masked attention weights are exactly 0, but 0 * NaN is NaN: garbage in the padding
        must not reach the values.
        """
        check_inputs(x, lengths, self.cfg.input_dim)
        pad = padding_mask(lengths, x.shape[1])
        if hasattr(self, "input_norm"):
            x = self.input_norm(x)
        if self.cfg.mask_padding:
            x = x.masked_fill(pad.unsqueeze(-1), 0.0)
        return x, pad

    def head(self, h: Tensor, pad: Tensor) -> Tensor:
        return self.embedding_norm(self.projector(self.pooling(h, pad)))
