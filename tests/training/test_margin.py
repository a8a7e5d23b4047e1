"""MarginSoftmax (ArcFace / AAM): the formula, its threshold, the margin warm-up, sub-centres,
the class-centre initialisation, and that it learns where it must -- with the defect of
issue 24 reproduced: embeddings that share one large common component (the narrow cone of
an untrained encoder) do not learn unless the embedding is batch-normalised."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from artistsim.config import LossConfig
from artistsim.models.heads import build_embedding_norm
from artistsim.training.losses import build_loss
from artistsim.training.margin import MarginSoftmax


def test_logits_are_scaled_cosines_with_the_margin_on_the_target_only() -> None:
    torch.manual_seed(0)
    head = MarginSoftmax(5, 8, margin_deg=20.0, scale=10.0)
    emb, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    cos = F.normalize(emb, dim=1) @ F.normalize(head.W, dim=0)
    logits = head.logits(emb, labels)
    target = torch.cos(torch.acos(cos[torch.arange(6), labels]) + math.radians(20.0))
    expected = cos.clone()
    expected[torch.arange(6), labels] = target
    torch.testing.assert_close(logits, 10.0 * expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head(emb, labels), F.cross_entropy(10.0 * expected, labels), rtol=1e-5, atol=1e-5)


def test_target_logit_keeps_falling_past_pi_minus_margin() -> None:
    """Without the threshold, cos(theta + m) would rise again for theta > pi - m."""
    head = MarginSoftmax(2, 2, margin_deg=30.0, scale=1.0)
    with torch.no_grad():
        head.W.copy_(torch.eye(2))
    theta = torch.linspace(0.0, math.pi, 181)
    emb = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    target = head.logits(emb, torch.zeros(181, dtype=torch.long))[:, 0]
    assert (target[1:] < target[:-1]).all()
    assert target[-1] < math.cos(math.pi) + 1e-6  # below the plain cosine at the far end


def test_margin_fraction_zero_is_the_plain_normalised_softmax() -> None:
    torch.manual_seed(1)
    head = MarginSoftmax(4, 6, margin_deg=28.6, scale=30.0)
    emb, labels = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 1])
    head.set_margin_fraction(0.0)
    torch.testing.assert_close(head.logits(emb, labels), 30.0 * head.cosines(emb))
    head.set_margin_fraction(0.5)
    half = head.logits(emb, labels)
    head.set_margin_fraction(1.0)
    full = head.logits(emb, labels)
    rows = torch.arange(5)
    assert (full[rows, labels] < half[rows, labels]).all() and (half[rows, labels] < 30.0 * head.cosines(emb)[rows, labels]).all()


def test_subcentres_compare_a_track_with_its_artists_nearest_centre() -> None:
    head = MarginSoftmax(2, 2, margin_deg=0.0, scale=1.0, subcenters=2)
    with torch.no_grad():  # class 0: centres along +x and +y; class 1: along -x and -y
        head.W.copy_(torch.tensor([[1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, -1.0]]))
    cos = head.cosines(torch.tensor([[0.0, 2.0], [-3.0, 0.0]]))
    torch.testing.assert_close(cos, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_bad_labels_and_arguments_are_rejected() -> None:
    head = MarginSoftmax(3, 4, 10.0, 8.0)
    with pytest.raises(ValueError, match="class indices"):
        head(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="num_classes"):
        MarginSoftmax(1, 4, 10.0, 8.0)
    with pytest.raises(ValueError, match="margin"):
        MarginSoftmax(3, 4, 95.0, 8.0)


def test_class_centres_start_at_unit_norm_so_adamw_turns_them() -> None:
    """The defect's second half: PML drew N(0, 1) centres (norm 16 at 256-d), which one
    AdamW step at the classifier's lr 1e-2 turns by ~0.01 rad; at unit norm ~0.16 rad."""
    torch.manual_seed(0)
    head = build_loss(LossConfig(kind="arcface"), num_classes=50, embedding_dim=256)
    assert isinstance(head, MarginSoftmax)
    torch.testing.assert_close(head.W.norm(dim=0), torch.ones(50))
    before = F.normalize(head.W.detach().clone(), dim=0)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
    head(torch.randn(64, 256), torch.randint(0, 50, (64,))).backward()
    opt.step()
    turned = torch.acos((before * F.normalize(head.W.detach(), dim=0)).sum(0).clamp(-1, 1))
    assert turned.median() > 0.05, turned.median()


def _train_whole_class_batches(norm: str, steps: int = 200, seed: int = 0) -> float:
    """Accuracy on fresh samples of 40 classes after `steps` batches of 4 whole classes each
    (the trainer's artist-disjoint batches), for an MLP encoder whose inputs share a large
    common offset: the narrow cone an untrained encoder's embeddings sit in."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    centres = torch.randn(40, 32, generator=g)
    y = torch.arange(40).repeat_interleave(10)
    x = 0.8 * centres[y] + torch.randn(400, 32, generator=g) + 8.0
    encoder = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16),
                                  build_embedding_norm(norm, 16))
    head = MarginSoftmax(40, 16, margin_deg=28.6, scale=30.0)
    opt = torch.optim.AdamW([{"params": encoder.parameters(), "lr": 1e-3}, {"params": head.parameters(), "lr": 1e-2}])
    for _ in range(steps):
        rows = torch.nonzero(torch.isin(y, torch.randperm(40, generator=g)[:4])).squeeze(1)
        opt.zero_grad()
        head(encoder(x[rows]), y[rows]).backward()
        opt.step()
    encoder.eval()
    with torch.no_grad():
        fresh = 0.8 * centres[y] + torch.randn(400, 32, generator=g) + 8.0
        return float((head.cosines(encoder(fresh)).argmax(1) == y).float().mean())


def test_margin_softmax_learns_with_a_batch_normalised_embedding_and_not_in_the_cone() -> None:
    chance = 1 / 40
    learnt = _train_whole_class_batches("batchnorm")
    stuck = _train_whole_class_batches("none")
    assert learnt > 10 * chance, learnt  # measured 0.48
    assert stuck < 0.5 * learnt, (stuck, learnt)  # measured 0.045: the defect of issue 24
