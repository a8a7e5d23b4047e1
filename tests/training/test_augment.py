"""Batch augmentations: each of the four has its intended effect, and nothing else."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from artistsim.config import AugmentConfig
from artistsim.training.augment import augment_batch

OFF = dict(zero_bands=(0, 0), zero_blocks=(0, 0), copy_bands=(0, 0), copy_blocks=(0, 0))
B, T, F = 64, 30, 24


def only(**fields) -> AugmentConfig:
    return AugmentConfig(**{**OFF, "p": 1.0, **fields})


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames with no zeros and no repeated values; lengths 1..T, some full."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, T, F, generator=g) + 0.5
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[:4] = torch.tensor([T, 1, 2, 5])
    return x, lengths


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def runs(flags: torch.Tensor) -> list[tuple[int, int]]:
    """(start, width) of each run of True in a 1-D bool tensor."""
    out, start = [], None
    for i, f in enumerate(flags.tolist() + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i - start))
            start = None
    return out


def test_p_zero_and_zero_counts_are_identity():
    x, lengths = batch()
    assert torch.equal(augment_batch(x, lengths, AugmentConfig(p=0.0), gen()), x)
    assert torch.equal(augment_batch(x, lengths, only(), gen()), x)


def test_input_untouched_and_output_new():
    x, lengths = batch()
    before = x.clone()
    out = augment_batch(x, lengths, AugmentConfig(p=1.0), gen())
    assert torch.equal(x, before)
    assert out.data_ptr() != x.data_ptr()
    assert not torch.equal(out, x)


def test_zero_bands_are_whole_channel_runs_of_allowed_width():
    x, lengths = batch()
    out = augment_batch(x, lengths, only(zero_bands=(1, 1), zero_band_width=(2, 5)), gen())
    widths = set()
    for b in range(B):
        zero = out[b] == 0
        channels = zero.all(dim=0)
        assert torch.equal(zero, channels.expand(T, F)), "zeros must span whole channels"
        (band,) = runs(channels)  # exactly one band per track
        assert 2 <= band[1] <= 5
        widths.add(band[1])
        assert torch.equal(out[b][:, ~channels], x[b][:, ~channels])
    assert widths == {2, 3, 4, 5}


def test_zero_band_count_range_and_p():
    x, lengths = batch()
    out = augment_batch(x, lengths, only(zero_bands=(0, 3), zero_band_width=(1, 1)), gen())
    per_track = (out == 0).all(dim=1).sum(dim=1)
    assert per_track.max() <= 3 and per_track.min() == 0 and per_track.max() > 0
    out = augment_batch(x, lengths, only(zero_bands=(3, 3), zero_band_width=(1, 1), p=0.5), gen())
    per_track = (out == 0).all(dim=1).sum(dim=1)
    assert 0 < per_track.float().mean() < 3


def test_zero_blocks_stay_inside_true_length():
    x, lengths = batch()
    x[padding(lengths)] = 7.0  # recognisable padding
    out = augment_batch(x, lengths, only(zero_blocks=(1, 1), zero_block_width=(2, 5)), gen())
    assert torch.equal(out[padding(lengths)], x[padding(lengths)])
    for b in range(B):
        zero = out[b] == 0
        frames = zero.all(dim=1)
        assert torch.equal(zero, frames.unsqueeze(1).expand(T, F)), "zeros must span whole frames"
        (block,) = runs(frames)
        assert block[0] + block[1] <= lengths[b]
        assert min(2, int(lengths[b])) <= block[1] <= 5
        assert torch.equal(out[b][~frames], x[b][~frames])


def padding(lengths: torch.Tensor) -> torch.Tensor:
    return torch.arange(T).unsqueeze(0) >= lengths.unsqueeze(1)


def _find_copy(orig: torch.Tensor, new: torch.Tensor, width: int) -> bool:
    """new (rows = positions along the copied axis) differs from orig by one copied span."""
    n = orig.shape[0]
    changed = (orig != new).any(dim=1)
    if not changed.any():
        return False
    idx = changed.nonzero().flatten()
    if int(idx[-1] - idx[0]) + 1 > width:
        return False
    for dst in range(max(0, int(idx[-1]) - width + 1), int(idx[0]) + 1):
        if dst + width > n:
            continue
        for src in range(0, n - width + 1):
            if src == dst:
                continue
            expected = orig.clone()
            expected[dst : dst + width] = orig[src : src + width]
            if torch.equal(expected, new):
                return True
    return False


def test_copy_bands_copy_another_band_of_the_same_track():
    x, lengths = batch()
    out = augment_batch(x, lengths, only(copy_bands=(1, 1), copy_band_width=(3, 3)), gen())
    for b in range(B):
        # channels as rows: a band is a span of rows
        assert _find_copy(x[b].T, out[b].T, 3), f"track {b}"


def test_copy_blocks_copy_another_block_inside_true_length():
    x, lengths = batch()
    x[padding(lengths)] = 7.0
    out = augment_batch(x, lengths, only(copy_blocks=(1, 1), copy_block_width=(4, 4)), gen())
    assert torch.equal(out[padding(lengths)], x[padding(lengths)])
    for b in range(B):
        L = int(lengths[b])
        assert torch.equal(out[b, L:], x[b, L:])
        if L <= 4:  # the block covers the whole track: source == destination, no change
            assert torch.equal(out[b], x[b])
            continue
        assert _find_copy(x[b, :L], out[b, :L], 4), f"track {b} (length {L})"


def test_copies_use_values_of_the_same_track_only():
    x, lengths = batch()
    cfg = only(copy_bands=(0, 10), copy_band_width=(2, 5), copy_blocks=(0, 5), copy_block_width=(2, 10))
    out = augment_batch(x, lengths, cfg, gen())
    for b in range(B):
        assert set(out[b].flatten().tolist()) <= set(x[b].flatten().tolist())


def test_same_generator_seed_same_result():
    x, lengths = batch()
    cfg = AugmentConfig(p=0.5)
    a = augment_batch(x, lengths, cfg, gen(5))
    b = augment_batch(x, lengths, cfg, gen(5))
    c = augment_batch(x, lengths, cfg, gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_large_batch_runs_without_per_track_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1000, 81, 512, generator=g) + 0.5
    lengths = torch.randint(1, 82, (1000,), generator=g)
    out = augment_batch(x, lengths, AugmentConfig(p=1.0), gen())
    assert out.shape == x.shape
    changed = (out != x).flatten(1).any(dim=1)
    assert changed.float().mean() > 0.9


def test_rejects_bad_input():
    x, lengths = batch()
    with pytest.raises(ValueError, match="lengths"):
        augment_batch(x, lengths.clamp_max(0), AugmentConfig(), gen())
    with pytest.raises(ValueError, match=r"\[B, T, F\]"):
        augment_batch(x[0], lengths, AugmentConfig(), gen())
    with pytest.raises(ValueError, match="zero_bands"):
        augment_batch(x, lengths, dataclasses.replace(AugmentConfig(), zero_bands=(3, 1)), gen())
    with pytest.raises(ValueError, match="p must be"):
        augment_batch(x, lengths, AugmentConfig(p=1.5), gen())


def test_widths_larger_than_the_axis_are_clipped():
    x, lengths = batch()
    out = augment_batch(x, lengths, only(zero_bands=(1, 1), zero_band_width=(F + 5, F + 5)), gen())
    assert (out == 0).all()
    cfg = only(copy_blocks=(1, 1), copy_block_width=(T + 3, T + 3), copy_bands=(1, 1), copy_band_width=(F, F))
    assert torch.equal(augment_batch(x, lengths, cfg, gen()), x)  # only whole-axis spans: no-ops


def test_resample_frames_keeps_order_and_draws_only_real_frames():
    from artistsim.training.augment import resample_frames

    x, lengths = batch(3)
    x[:, :, 0] = torch.arange(T, dtype=torch.float32)  # channel 0 = the frame's own index
    out = resample_frames(x, lengths, 1.0, gen(0))
    changed = 0
    for b in range(B):
        n = int(lengths[b])
        src = out[b, :n, 0].long()
        assert bool((src[1:] >= src[:-1]).all()) and int(src.max()) < n  # time order, real frames only
        assert torch.equal(out[b], x[b, out[b, :, 0].long()])  # whole frames moved, not mixed
        assert torch.equal(out[b, n:], x[b, n:])  # padding untouched
        changed += int(not torch.equal(out[b, :n], x[b, :n]))
    assert changed > B // 2  # most multi-frame tracks really resampled


def test_resample_frames_probability_and_off_switch():
    from artistsim.training.augment import resample_frames

    x, lengths = batch(4)
    assert resample_frames(x, lengths, 0.0, gen(0)) is x  # off: same tensor, no draw
    g = gen(5)
    state = g.get_state()
    resample_frames(x, lengths, 0.0, g)
    assert torch.equal(g.get_state(), state)  # nothing consumed from the stream when off
    out = resample_frames(x, lengths, 0.5, gen(1))
    same = sum(torch.equal(out[b], x[b]) for b in range(B))
    assert 0 < same < B  # some tracks picked, some not
    with pytest.raises(ValueError, match="resample p"):
        resample_frames(x, lengths, 1.5, gen(0))
