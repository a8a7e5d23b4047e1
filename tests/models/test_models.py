"""Encoders: shapes, parameter counts, padding invariance, BN statistics, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from artistsim.config import ConformerConfig, TransformerConfig
from artistsim.models import (
    AttentionPooling,
    ConformerEncoderModel,
    MaskedBatchNorm1d,
    MeanPooling,
    Projector,
    TransformerEncoderModel,
    build_model,
    build_pooling,
    count_parameters,
    describe,
    padding_mask,
)

SMALL_T = dict(input_dim=32, d_model=32, num_heads=4, num_layers=2, ffn_dim=64, projector_hidden=32, embedding_dim=16)
SMALL_C = dict(input_dim=32, num_heads=4, ffn_dim=32, num_layers=2, depthwise_kernel=7, projector_hidden=32, embedding_dim=16)


def small_config(kind: str, **overrides):
    if kind == "transformer":
        return TransformerConfig(**{**SMALL_T, **overrides})
    return ConformerConfig(**{**SMALL_C, **overrides})


def padded_batch(tracks: list[torch.Tensor], T: int, garbage: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [L_i, F] tracks into [B, T, F]; padding is random garbage or zeros."""
    g = torch.Generator().manual_seed(seed)
    F = tracks[0].shape[1]
    x = torch.randn(len(tracks), T, F, generator=g) * 10 if garbage else torch.zeros(len(tracks), T, F)
    for i, t in enumerate(tracks):
        x[i, : t.shape[0]] = t
    return x, torch.tensor([t.shape[0] for t in tracks])


# --- heads -------------------------------------------------------------------------


def test_padding_mask_marks_frames_at_or_past_length():
    mask = padding_mask(torch.tensor([1, 3, 4]), 4)
    expected = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_mean_pooling_masked_and_unmasked():
    x = torch.arange(12, dtype=torch.float32).view(1, 4, 3)
    pad = padding_mask(torch.tensor([2]), 4)
    assert torch.allclose(MeanPooling(True)(x, pad), x[:, :2].mean(1))
    assert torch.allclose(MeanPooling(False)(x, pad), x.mean(1))


def test_attention_pooling_ignores_padding_and_weights_valid_frames():
    torch.manual_seed(0)
    pool = AttentionPooling(8, mask_padding=True)
    track = torch.randn(1, 5, 8)
    x, lengths = padded_batch([track[0]], 12, garbage=True)
    pad = padding_mask(lengths, 12)
    alone = pool(track, padding_mask(torch.tensor([5]), 5))
    assert torch.allclose(pool(x, pad), alone, atol=1e-6)
    # Output is a convex combination of the valid frames, not just their mean.
    assert not torch.allclose(alone, track.mean(1), atol=1e-4)
    # Unmasked attention pooling does see the garbage.
    unmasked = AttentionPooling(8, mask_padding=False)
    unmasked.load_state_dict(pool.state_dict())
    assert not torch.allclose(unmasked(x, pad), alone, atol=1e-3)


def test_build_pooling_rejects_unknown_name():
    assert isinstance(build_pooling("mean", 4, True), MeanPooling)
    assert isinstance(build_pooling("attention", 4, True), AttentionPooling)
    with pytest.raises(ValueError, match="unknown pooling"):
        build_pooling("max", 4, True)


def test_projector_is_two_bias_free_linears():
    proj = Projector(512, 512, 128)
    assert count_parameters(proj) == 512 * 512 + 512 * 128
    assert all(not isinstance(m, nn.Linear) or m.bias is None for m in proj.modules())


# --- whole encoders ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["transformer", "conformer"])
@pytest.mark.parametrize("pooling", ["mean", "attention"])
@pytest.mark.parametrize("mask", [True, False])
def test_output_shape(kind, pooling, mask):
    model = build_model(small_config(kind, pooling=pooling, mask_padding=mask))
    x = torch.randn(5, 13, 32)
    out = model(x, torch.tensor([13, 1, 7, 13, 2]))
    assert out.shape == (5, 16)
    assert torch.isfinite(out).all()


def test_seed_parameter_counts():
    # nn.TransformerEncoder, 3 layers, d 512, ff 2048 (biases, 2 LayerNorms) + projector.
    layer = nn.TransformerEncoderLayer(512, 4, 2048, batch_first=True)
    expected = 3 * count_parameters(layer) + 512 * 512 + 512 * 128
    assert count_parameters(build_model(TransformerConfig())) == expected == 9_784_832
    # torchaudio-shaped Conformer, input 512, ffn 128, 4 layers, kernel 31 (+ projector).
    d, f, k = 512, 128, 31
    ff = 2 * d + (d * f + f) + (f * d + d)
    attn = 2 * d + 4 * d * d + 4 * d
    conv = 2 * d + (d * 2 * d + 2 * d) + (d * k + d) + 2 * d + (d * d + d)
    block = 2 * ff + attn + conv + 2 * d
    conformer = build_model(ConformerConfig())
    assert count_parameters(conformer) == 4 * block + 512 * 512 + 512 * 128 == 8_825_856
    assert "conformer" in describe(conformer) and "8,825,856" in describe(conformer)


def test_input_projection_only_when_dims_differ():
    assert isinstance(build_model(TransformerConfig()).input_proj, nn.Identity)
    model = build_model(small_config("transformer", input_dim=20))
    assert isinstance(model.input_proj, nn.Linear)
    assert model(torch.randn(2, 5, 20), torch.tensor([5, 3])).shape == (2, 16)


def test_build_model_rejects_other_configs_and_bad_inputs():
    with pytest.raises(TypeError):
        build_model(object())
    model = build_model(small_config("transformer"))
    with pytest.raises(ValueError, match="input_dim"):
        model(torch.randn(2, 5, 31), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.randn(2, 5, 32), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.randn(2, 5, 32), torch.tensor([6, 5]))
    with pytest.raises(ValueError, match="odd"):
        build_model(small_config("conformer", depthwise_kernel=6))


def _short_track_alone_vs_in_batch(model: nn.Module, F: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    short = torch.randn(20, F, generator=g)
    others = [torch.randn(81, F, generator=g), torch.randn(47, F, generator=g)]
    alone = model(short.unsqueeze(0), torch.tensor([20]))
    x, lengths = padded_batch([others[0], short, others[1]], 81, garbage=True)
    return alone[0], model(x, lengths)[1]


@pytest.mark.parametrize("kind", ["transformer", "conformer"])
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_masked_embedding_independent_of_padding_eval(kind, grad):
    """Seed-sized models, eval mode; no_grad exercises PyTorch's fused inference fast path."""
    torch.manual_seed(0)
    cfg = TransformerConfig() if kind == "transformer" else ConformerConfig()
    model = build_model(cfg).eval()
    if kind == "conformer":  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, MaskedBatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    with torch.set_grad_enabled(grad):
        alone, in_batch = _short_track_alone_vs_in_batch(model, 512)
    assert torch.allclose(alone, in_batch, atol=1e-5), (alone - in_batch).abs().max()


@pytest.mark.parametrize("kind", ["transformer", "conformer"])
def test_masked_embedding_independent_of_padding_train_mode(kind):
    """Train mode with dropout 0; the batch's other tracks keep BN statistics identical."""
    torch.manual_seed(0)
    model = build_model(small_config(kind, dropout=0.0)).train()
    g = torch.Generator().manual_seed(2)
    tracks = [torch.randn(n, 32, generator=g) for n in (20, 35, 50)]
    x_tight, lengths = padded_batch(tracks, 50, garbage=False)
    x_loose, _ = padded_batch(tracks, 81, garbage=True)
    assert torch.allclose(model(x_tight, lengths), model(x_loose, lengths), atol=1e-5)


@pytest.mark.parametrize("kind", ["transformer", "conformer"])
def test_unmasked_mode_is_affected_by_padding(kind):
    """mask_padding=False (the seed) pools over padding: the flag must matter."""
    torch.manual_seed(0)
    model = build_model(small_config(kind, mask_padding=False)).eval()
    with torch.no_grad():
        alone, in_batch = _short_track_alone_vs_in_batch(model, 32)
    assert not torch.allclose(alone, in_batch, atol=1e-3)


def _bn_stats_after_step(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor):
    model(x, lengths)
    bns = [m for m in model.modules() if isinstance(m, MaskedBatchNorm1d)]
    return [torch.cat([m.running_mean, m.running_var]).clone() for m in bns]


@pytest.mark.parametrize("mask", [True, False])
def test_conformer_batchnorm_statistics_and_padding(mask):
    g = torch.Generator().manual_seed(3)
    tracks = [torch.randn(n, 32, generator=g) for n in (20, 35, 50)]
    x_tight, lengths = padded_batch(tracks, 50, garbage=False)
    x_loose, _ = padded_batch(tracks, 81, garbage=True)
    torch.manual_seed(0)
    model_a = build_model(small_config("conformer", dropout=0.0, mask_padding=mask)).train()
    model_b = build_model(small_config("conformer", dropout=0.0, mask_padding=mask)).train()
    model_b.load_state_dict(model_a.state_dict())
    stats_a = _bn_stats_after_step(model_a, x_tight, lengths)
    stats_b = _bn_stats_after_step(model_b, x_loose, lengths)
    same = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(stats_a, stats_b))
    assert same is mask


def test_masked_batchnorm_matches_batchnorm_on_valid_frames():
    g = torch.Generator().manual_seed(4)
    valid = [torch.randn(6, n, generator=g) for n in (3, 7)]  # [C, L]
    bn_ref = nn.BatchNorm1d(6).train()
    ref = bn_ref(torch.cat(valid, dim=1).unsqueeze(0))  # one long sequence of real frames
    bn = MaskedBatchNorm1d(6).train()
    x = torch.randn(2, 6, 7, generator=g) * 100  # garbage padding
    x[0, :, :3], x[1] = valid[0], valid[1]
    out = bn(x, padding_mask(torch.tensor([3, 7]), 7))
    assert torch.allclose(out[0, :, :3], ref[0, :, :3], atol=1e-5)
    assert torch.allclose(out[1], ref[0, :, 3:], atol=1e-5)
    assert torch.allclose(bn.running_mean, bn_ref.running_mean, atol=1e-6)
    assert torch.allclose(bn.running_var, bn_ref.running_var, atol=1e-6)
    assert int(bn.num_batches_tracked) == 1
    # Without a mask it is plain BatchNorm1d.
    plain = nn.BatchNorm1d(6).train()
    assert torch.allclose(MaskedBatchNorm1d(6).train()(x), plain(x), atol=1e-5)


@pytest.mark.parametrize("kind", ["transformer", "conformer"])
@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_gradients_reach_every_parameter(kind, pooling):
    torch.manual_seed(0)
    model = build_model(small_config(kind, pooling=pooling)).train()
    out = model(torch.randn(4, 9, 32), torch.tensor([9, 4, 1, 6]))
    out.pow(2).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "projector" in n)


@pytest.mark.parametrize("kind", ["transformer", "conformer"])
def test_non_finite_padding_does_not_reach_output(kind):
    model = build_model(small_config(kind)).eval()
    x = torch.randn(2, 6, 32)
    clean = x.clone()
    clean[0, 3:], clean[1, 5:] = 0.0, 0.0
    x[0, 3:] = float("nan")
    x[1, 5:] = float("inf")
    with torch.no_grad():
        out, expected = model(x, torch.tensor([3, 5])), model(clean, torch.tensor([3, 5]))
    # what the padding holds does not matter at all: the same output as zero padding
    torch.testing.assert_close(out, expected)


def test_models_are_the_documented_classes():
    assert isinstance(build_model(TransformerConfig()), TransformerEncoderModel)
    assert isinstance(build_model(small_config("conformer")), ConformerEncoderModel)
