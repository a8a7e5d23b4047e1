"""Poolings of speaker verification (statistics, attentive statistics, NetVLAD, GhostVLAD) and the
batch-normalised embedding: what they compute, and that padding never changes a track's embedding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from artistsim.config import ConformerConfig, TransformerConfig
from artistsim.models import build_model
from artistsim.models.heads import POOLINGS, AttentiveStatsPooling, StatsPooling, build_embedding_norm, build_pooling

SMALL_T = dict(input_dim=32, d_model=32, num_heads=4, num_layers=1, ffn_dim=64, projector_hidden=32, embedding_dim=16)
SMALL_C = dict(input_dim=32, num_heads=4, ffn_dim=32, num_layers=1, depthwise_kernel=7, projector_hidden=32,
               embedding_dim=16)


def _alone_and_padded(module, lengths=(20, 81, 47), F_=32, garbage=float("nan")):
    """Each track alone (no padding) and the same tracks in one batch padded to 81 with garbage."""
    g = torch.Generator().manual_seed(3)
    tracks = [torch.randn(n, F_, generator=g) for n in lengths]
    alone = torch.cat([module(t.unsqueeze(0), torch.ones(1, n, dtype=torch.bool).logical_not())
                       for t, n in zip(tracks, lengths)])
    x = torch.full((len(tracks), 81, F_), garbage)
    for i, t in enumerate(tracks):
        x[i, : len(t)] = t
    pad = torch.arange(81).unsqueeze(0) >= torch.tensor(lengths).unsqueeze(1)
    return alone, module(x, pad)


@pytest.mark.parametrize("name", POOLINGS)
@pytest.mark.parametrize("garbage", [float("nan"), 1e4], ids=["nan", "large"])
def test_padding_never_changes_a_pooled_track(name: str, garbage: float) -> None:
    torch.manual_seed(0)
    pool = build_pooling(name, 32, mask_padding=True)
    alone, padded = _alone_and_padded(pool, garbage=garbage)
    assert padded.shape == (3, pool.out_dim) and torch.isfinite(padded).all()
    torch.testing.assert_close(padded, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["transformer", "conformer"])
@pytest.mark.parametrize("pooling", ["stats", "attentive_stats", "netvlad", "ghostvlad"])
def test_padding_never_changes_a_models_embedding(kind: str, pooling: str) -> None:
    """Whole encoders with the new poolings and a batch-normalised embedding, eval mode."""
    torch.manual_seed(0)
    cfg = (TransformerConfig(**SMALL_T, pooling=pooling, embedding_norm="batchnorm") if kind == "transformer"
           else ConformerConfig(**SMALL_C, pooling=pooling, embedding_norm="batchnorm"))
    model = build_model(cfg)
    model.embedding_norm.running_mean.uniform_(-1, 1)  # non-trivial running statistics
    model.eval()
    g = torch.Generator().manual_seed(1)
    short, long_ = torch.randn(20, 32, generator=g), torch.randn(81, 32, generator=g)
    with torch.no_grad():
        alone = model(short.unsqueeze(0), torch.tensor([20]))[0]
        x = torch.randn(2, 81, 32, generator=g) * 100
        x[0], x[1, :20] = long_, short
        in_batch = model(x, torch.tensor([81, 20]))[1]
    torch.testing.assert_close(in_batch, alone, rtol=1e-4, atol=1e-5)


def test_stats_pooling_is_mean_and_biased_std_of_the_real_frames() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, 4, generator=g)
    pad = torch.arange(9).unsqueeze(0) >= torch.tensor([[9], [5]])
    out = StatsPooling(4, mask_padding=True)(x, pad)
    for i, n in enumerate((9, 5)):
        real = x[i, :n]
        torch.testing.assert_close(out[i], torch.cat([real.mean(0), real.std(0, unbiased=False)]))
    unmasked = StatsPooling(4, mask_padding=False)(x, pad)
    torch.testing.assert_close(unmasked[1], torch.cat([x[1].mean(0), x[1].std(0, unbiased=False)]))


def test_one_frame_track_has_a_finite_gradient() -> None:
    x = torch.randn(1, 1, 4, requires_grad=True)
    StatsPooling(4, mask_padding=True)(x, torch.zeros(1, 1, dtype=torch.bool)).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_attentive_stats_with_flat_scores_is_stats_pooling() -> None:
    """Equal scores everywhere: every real frame weighs the same, so the weighted moments
    are the plain ones; the attention only re-weights frames, per channel."""
    pool = AttentiveStatsPooling(4, mask_padding=True)
    torch.nn.init.zeros_(pool.score[-1].weight)
    torch.nn.init.zeros_(pool.score[-1].bias)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 4, generator=g)
    pad = torch.arange(7).unsqueeze(0) >= torch.tensor([[7], [3]])
    torch.testing.assert_close(pool(x, pad), StatsPooling(4, mask_padding=True)(x, pad))
    torch.nn.init.normal_(pool.score[-1].weight)  # channels now weigh frames differently
    assert not torch.allclose(pool(x, pad), StatsPooling(4, mask_padding=True)(x, pad))


def test_pooling_widths_feed_the_projector() -> None:
    widths = {name: build_pooling(name, 8, True, clusters=3).out_dim for name in POOLINGS}
    assert widths == {"mean": 8, "attention": 8, "stats": 16, "attentive_stats": 16, "netvlad": 24, "ghostvlad": 24}
    model = build_model(TransformerConfig(**SMALL_T, pooling="stats"))
    assert model.projector.net[0].in_features == 64


def test_batchnorm_embedding_spreads_the_cone_of_an_untrained_encoder() -> None:
    """Embeddings sharing a large common part have pairwise cosines near 1 (issue 24's
    untrained encoder: 0.92 on the demo); after the batch norm they are centred."""
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(64, 16, generator=g) + 6.0
    mean_cos = lambda e: (F.normalize(e, dim=1) @ F.normalize(e, dim=1).t()).mean().item()  # noqa: E731
    assert mean_cos(emb) > 0.9
    norm = build_embedding_norm("batchnorm", 16).train()
    assert abs(mean_cos(norm(emb))) < 0.1
    assert isinstance(build_embedding_norm("none", 16), torch.nn.Identity)
    with pytest.raises(ValueError, match="embedding_norm"):
        build_embedding_norm("layernorm", 16)


def test_batchnorm_embedding_takes_a_one_track_training_batch() -> None:
    norm = build_embedding_norm("batchnorm", 4).train()
    norm.running_mean.fill_(1.0)
    out = norm(torch.full((1, 4), 3.0))
    torch.testing.assert_close(out, torch.full((1, 4), 2.0 / (1 + norm.eps) ** 0.5))
