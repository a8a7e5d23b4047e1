"""The seed's four batch augmentations, vectorised over a whole batch on its device.

For each track and each augmentation, a number of tries is drawn uniformly from the
config's inclusive count range, and each try takes effect with probability `p`:

1. zero bands:  zero a band of consecutive channels (all frames of those channels);
2. zero blocks: zero a block of consecutive frames inside the track's true length;
3. copy bands:  overwrite a band of channels with another band of the same width from
   the same track (source start drawn at random, never equal to the destination start
   unless the band spans every channel);
4. copy blocks: overwrite a block of frames with another block of the same width from
   the same track, both inside its true length (source != destination when possible).

Applied in that order; copies read the batch as the previous try left it. Channel
bands span every frame, padding included: wrap padding repeats real frames, so its
copies stay consistent. Frame blocks never touch frames at or past `lengths[b]`, and
block widths are clipped to the track's length.

Why no per-track loop: the seed augmented tracks one by one in Python; here every draw
is one tensor op over the batch, and the only loops run over the try index (<= the
count range's upper bound, 10 in the seed). All random numbers come from `generator`
(a CPU generator, so that a seed reproduces the same augmentation on any device) and
the resulting indices are moved to x.device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from artistsim.config import AugmentConfig

Range = tuple[int, int]  # inclusive (low, high)


def augment_batch(
    x: Tensor,
    lengths: Tensor,
    cfg: AugmentConfig,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Augmented copy of x [B, T, F] (input untouched); lengths [B] = real frames per track."""
    _check(x, lengths, cfg, generator)
    B, T, F = x.shape
    lengths_cpu = lengths.detach().to("cpu", torch.long)
    draw = _Draws(generator)

    zero_channels = _band_masks(draw, cfg.zero_bands, cfg.zero_band_width, cfg.p, B, F)
    zero_frames = _block_masks(draw, cfg.zero_blocks, cfg.zero_block_width, cfg.p, lengths_cpu, T)
    out = x.clone()
    if zero_channels is not None:
        out.masked_fill_(zero_channels.to(x.device).unsqueeze(1), 0.0)
    if zero_frames is not None:
        out.masked_fill_(zero_frames.to(x.device).unsqueeze(2), 0.0)

    full = torch.full((B,), F, dtype=torch.long)
    for pos, src in _copy_windows(draw, cfg.copy_bands, cfg.copy_band_width, cfg.p, full, F):
        _copy_along(out, dim=2, pos=pos.to(x.device), src=src.to(x.device))
    for pos, src in _copy_windows(draw, cfg.copy_blocks, cfg.copy_block_width, cfg.p, lengths_cpu, T):
        _copy_along(out, dim=1, pos=pos.to(x.device), src=src.to(x.device))
    return out


class _Draws:
    """All random draws of one call, on CPU, from one generator (or the global one)."""

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator

    def uniform(self, shape: tuple[int, ...]) -> Tensor:
        return torch.rand(shape, generator=self.generator, dtype=torch.float64)

    def integers(self, low: int, high_inclusive: int, shape: tuple[int, ...]) -> Tensor:
        return torch.randint(low, high_inclusive + 1, shape, generator=self.generator)

    def below_or_at(self, limit: Tensor) -> Tensor:
        """Uniform integers in 0..limit (inclusive), elementwise; limit >= 0."""
        value = torch.floor(self.uniform(tuple(limit.shape)) * (limit + 1).double()).long()
        return torch.minimum(value, limit)

    def tries(self, count: Range, p: float, B: int) -> Tensor:
        """BoolTensor[K, B]: try k of track b takes effect (k < drawn count, and prob p)."""
        K = count[1]
        n = self.integers(count[0], count[1], (B,))
        hit = self.uniform((K, B)) < p
        return (torch.arange(K).unsqueeze(1) < n.unsqueeze(0)) & hit


def _spans(
    draw: _Draws, count: Range, width: Range, p: float, limit: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Active flags, widths and starts [K, B] of spans inside 0..limit[b] (exclusive end)."""
    B = limit.shape[0]
    active = draw.tries(count, p, B)
    K = active.shape[0]
    w = torch.minimum(draw.integers(width[0], width[1], (K, B)), limit.unsqueeze(0))
    start = draw.below_or_at(limit.unsqueeze(0) - w)
    return active, w, start


def _span_mask(active: Tensor, w: Tensor, start: Tensor, size: int) -> Tensor:
    """BoolTensor[B, size]: union over tries of positions start <= i < start + w."""
    i = torch.arange(size).view(1, 1, size)
    inside = (i >= start.unsqueeze(-1)) & (i < (start + w).unsqueeze(-1)) & active.unsqueeze(-1)
    return inside.any(dim=0)


def _band_masks(draw: _Draws, count: Range, width: Range, p: float, B: int, F: int) -> Tensor | None:
    """Channels to zero, [B, F], or None when the augmentation is off."""
    if count[1] == 0:
        return None
    active, w, start = _spans(draw, count, width, p, torch.full((B,), F, dtype=torch.long))
    return _span_mask(active, w, start, F)


def _block_masks(
    draw: _Draws, count: Range, width: Range, p: float, lengths: Tensor, T: int
) -> Tensor | None:
    """Frames to zero, [B, T], all inside each track's true length, or None when off."""
    if count[1] == 0:
        return None
    active, w, start = _spans(draw, count, width, p, lengths)
    return _span_mask(active, w, start, T)


def _copy_windows(
    draw: _Draws, count: Range, width: Range, p: float, limit: Tensor, size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """For each try: (pos, src) LongTensors [B, W] for one in-place indexed copy.

    pos are W distinct destination indices per track covering the destination span;
    src[b, j] is where pos[b, j] reads from: inside the span the source span, outside
    it (or when the try is inactive) pos itself, so those writes change nothing. Distinct
    pos per row keep the indexed write deterministic.
    """
    W = min(width[1], size)
    if count[1] == 0 or W == 0:
        return
    B = limit.shape[0]
    active = draw.tries(count, p, B)
    j = torch.arange(W).unsqueeze(0)
    for k in range(active.shape[0]):
        w = torch.minimum(draw.integers(width[0], width[1], (B,)), limit)
        room = limit - w  # highest start
        dst = draw.below_or_at(room)
        other = draw.below_or_at((room - 1).clamp_min(0))  # a start != dst when room > 0
        src = torch.where(room > 0, other + (other >= dst).long(), dst)
        window = torch.minimum(dst, torch.full_like(dst, size - W)).unsqueeze(1)
        pos = window + j
        offset = pos - dst.unsqueeze(1)
        inside = active[k].unsqueeze(1) & (offset >= 0) & (offset < w.unsqueeze(1))
        yield pos, torch.where(inside, src.unsqueeze(1) + offset, pos)


def _copy_along(out: Tensor, dim: int, pos: Tensor, src: Tensor) -> None:
    """out[b, ..pos[b, j]..] = out[b, ..src[b, j]..] along dim (1 = frames, 2 = channels).

    Advanced indexing copies whole contiguous frames (about twice as fast on CPU as
    gather/scatter); the read completes before the write, so overlapping spans are safe.
    """
    view = out if dim == 1 else out.transpose(1, 2)  # the copied axis second
    rows = torch.arange(out.shape[0], device=out.device).unsqueeze(1)
    view[rows, pos] = view[rows, src]


def _check(x: Tensor, lengths: Tensor, cfg: AugmentConfig, generator: torch.Generator | None) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be [B, T, F], got shape {tuple(x.shape)}")
    B, T, _ = x.shape
    if lengths.shape != (B,):
        raise ValueError(f"lengths must have shape [{B}], got {tuple(lengths.shape)}")
    if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
        raise ValueError(f"lengths must be in 1..{T}, got {int(lengths.min())}..{int(lengths.max())}")
    if not 0.0 <= cfg.p <= 1.0:
        raise ValueError(f"augment p must be in [0, 1], got {cfg.p}")
    for name in ("zero_bands", "zero_band_width", "zero_blocks", "zero_block_width",
                 "copy_bands", "copy_band_width", "copy_blocks", "copy_block_width"):
        lo, hi = getattr(cfg, name)
        if not 0 <= lo <= hi:
            raise ValueError(f"augment {name} must be an inclusive range 0 <= low <= high, got {(lo, hi)}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"augment_batch draws on CPU and needs a CPU torch.Generator, got one on {generator.device}"
        )


def resample_frames(x: Tensor, lengths: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Frame resampling (first-place recipe): copy of x [B, T, F] with some tracks resampled.

    Each track is picked with probability `p`; a picked track's first lengths[b] frames
    become as many frames drawn uniformly with replacement from those frames, sorted into
    time order (some frames repeat, some drop out: a random local tempo change). Frames at
    or past lengths[b] are untouched. One draw for the whole batch, no loop over tracks;
    with p == 0 nothing is drawn and x itself is returned.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"resample p must be in [0, 1], got {p}")
    if p == 0.0:
        return x
    B, T, _ = x.shape
    draw = _Draws(generator)
    picked = draw.uniform((B,)) < p
    n = lengths.detach().to("cpu", torch.long).clamp(1, T)
    src = torch.floor(draw.uniform((B, T)) * n.unsqueeze(1).double()).long()
    src = torch.minimum(src, (n - 1).unsqueeze(1)).sort(dim=1).values
    frame = torch.arange(T).unsqueeze(0)
    keep = ~picked.unsqueeze(1) | (frame >= n.unsqueeze(1))
    src = torch.where(keep, frame.expand(B, T), src).to(x.device)
    return torch.gather(x, 1, src.unsqueeze(2).expand_as(x))
