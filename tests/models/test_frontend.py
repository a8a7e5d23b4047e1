from __future__ import annotations

import numpy as np
import torch

from artistsim.config import TransformerConfig
from artistsim.evaluation.baselines import LDA
from artistsim.models import build_model, output_dim
from artistsim.models.frontend import PooledLDA, pooled_mean_std


def _cfg(**kw) -> TransformerConfig:
    return TransformerConfig(d_model=32, num_heads=2, num_layers=1, ffn_dim=32, projector_hidden=32,
                             embedding_dim=16, dropout=0.0, **kw)


def test_pooled_mean_std_ignores_padding():
    x, lengths = torch.randn(3, 9, 512), torch.tensor([9, 4, 1])
    x[1, 4:] = 1e6  # garbage in padding must not leak
    stats = pooled_mean_std(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        frames = x[i, :n].double()
        assert torch.allclose(stats[i, :512].double(), frames.mean(0), atol=1e-5)
        assert torch.allclose(stats[i, 512:].double(), frames.std(0, unbiased=False), atol=1e-4)


def test_pooled_lda_is_the_lda_projection_scaled():
    rng = np.random.default_rng(0)
    stats = rng.normal(size=(120, 1024)).astype(np.float32)
    labels = np.repeat(np.arange(30), 4)
    lda = LDA(n_components=16).fit(stats, labels)
    branch = PooledLDA(512, 16, trainable=False)
    branch.set_lda(lda.mean_, lda.components_)
    got = branch.proj(torch.from_numpy(stats)).detach().numpy()
    assert np.allclose(got, lda.transform(stats) * branch.scale, atol=1e-3)
    assert not any(p.requires_grad for p in branch.parameters())


def test_residual_model_at_init_equals_the_lda_branch():
    model = build_model(_cfg(lda_branch="residual")).eval()
    with torch.no_grad():
        model.lda.proj.weight.normal_()
    x, lengths = torch.randn(4, 7, 512), torch.tensor([7, 7, 3, 5])
    with torch.no_grad():
        assert torch.allclose(model(x, lengths), model.lda(x, lengths), atol=1e-6)


def test_concat_model_doubles_the_width_and_weights_the_lda_part():
    cfg = _cfg(lda_branch="concat", lda_weight=0.5)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.lda.proj.weight.normal_()
        out = model(torch.randn(2, 5, 512), torch.tensor([5, 2]))
    assert out.shape == (2, output_dim(cfg)) == (2, 32)
    assert torch.allclose(out[:, :16].norm(dim=1), torch.full((2,), 0.5), atol=1e-5)
    assert output_dim(_cfg()) == 16
