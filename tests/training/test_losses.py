"""SeedLoss: the memory-efficient path must equal pytorch-metric-learning's, value and
gradient, on every kind of batch the sampler can produce (singleton artists, a batch of
one artist, a batch of singletons), for each term alone and for the weighted sum, with
chunk sizes that do and do not divide the batch. Float64 keeps the comparison tight.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses as pml_losses

from artistsim.config import LossConfig
from artistsim.training.losses import (
    AutoSeedLoss,
    SeedLoss,
    build_loss,
    loss_path,
    sample_triplets,
)

SEED_WEIGHTS = (1.0, 0.025, 1.0)
TERM_WEIGHTS = {
    "multi_similarity": (1.0, 0.0, 0.0),
    "circle": (0.0, 1.0, 0.0),
    "triplet_margin": (0.0, 0.0, 1.0),
    "sum": SEED_WEIGHTS,
}


def _artist_labels(kind: str, seed: int = 0) -> torch.Tensor:
    """Labels of a batch of whole artists; ids are large and non-contiguous."""
    rng = np.random.default_rng(seed)
    if kind == "artists":  # sizes 1..12, several singletons
        sizes = rng.integers(1, 13, size=25)
        sizes[:4] = 1
    elif kind == "one_artist":  # no row has a negative
        sizes = np.array([40])
    elif kind == "singletons":  # no row has a positive
        sizes = np.ones(40, dtype=int)
    elif kind == "pair_and_singletons":  # two rows with a positive
        sizes = np.array([2] + [1] * 30)
    else:
        raise ValueError(kind)
    ids = rng.choice(10**7, size=len(sizes), replace=False)
    return torch.from_numpy(rng.permutation(np.repeat(ids, sizes)))


def _embeddings(n: int, dim: int = 16, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    """Clustered-ish embeddings so that every loss regime (easy/hard pairs) occurs."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=gen, dtype=dtype)


def _run(loss: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, rng_seed: int = 7):
    """Loss value and d loss / d x, drawing triplets from a fixed RNG state."""
    x = x.clone().requires_grad_(True)
    torch.manual_seed(rng_seed)
    value = loss(x, labels)
    value.backward()
    return value.detach(), x.grad


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5) -> None:
    """Relative agreement; the absolute slack is relative to the largest magnitude."""
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale + 1e-15)


@pytest.mark.parametrize("labels_kind", ["artists", "one_artist", "singletons", "pair_and_singletons"])
@pytest.mark.parametrize("term", list(TERM_WEIGHTS))
@pytest.mark.parametrize("chunk_size", [7, 64, 10_000])
def test_memory_efficient_matches_pml(labels_kind: str, term: str, chunk_size: int) -> None:
    labels = _artist_labels(labels_kind)
    x = _embeddings(len(labels))
    weights = TERM_WEIGHTS[term]
    ref_value, ref_grad = _run(SeedLoss(False, weights), x, labels)
    value, grad = _run(SeedLoss(True, weights, chunk_size=chunk_size), x, labels)
    _assert_close(value, ref_value)
    _assert_close(grad, ref_grad)


def test_cases_are_not_degenerate() -> None:
    """The mixed batch exercises every term (a comparison of zeros would prove nothing)."""
    labels = _artist_labels("artists")
    x = _embeddings(len(labels)).requires_grad_(True)
    torch.manual_seed(7)
    terms = SeedLoss(True, SEED_WEIGHTS, chunk_size=7).terms(x, labels)
    assert set(terms) == {"multi_similarity", "circle", "triplet_margin"}
    assert all(float(v.detach()) > 0 for v in terms.values())
    assert len(labels) % 7 != 0  # the chunk size does not divide the batch


def test_matches_pml_reference_modules_directly() -> None:
    """The PML path really is PML with the seed's parameters (not a re-implementation)."""
    labels = _artist_labels("artists", seed=3)
    x = _embeddings(len(labels), seed=4)
    from pytorch_metric_learning.distances import CosineSimilarity

    ms = pml_losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=1.0)
    circle = pml_losses.CircleLoss(m=0.4, gamma=80.0)
    triplet = pml_losses.TripletMarginLoss(
        margin=0.05, swap=True, smooth_loss=True, triplets_per_anchor=10, distance=CosineSimilarity()
    )

    def seed_sum(e, y):
        return ms(e, y) + 0.025 * circle(e, y) + triplet(e, y)

    ref_value, ref_grad = _run(seed_sum, x, labels)
    value, grad = _run(SeedLoss(True, chunk_size=13), x, labels)
    _assert_close(value, ref_value)
    _assert_close(grad, ref_grad)


def test_upstream_gradients_of_any_sign_per_term() -> None:
    """Each term's backward scales by its own upstream gradient, negative ones included."""
    labels = _artist_labels("artists", seed=5)
    x0 = _embeddings(len(labels), seed=6)
    coefs = {"multi_similarity": -0.7, "circle": 1.3, "triplet_margin": -2.0}
    grads = []
    for efficient in (False, True):
        x = x0.clone().requires_grad_(True)
        torch.manual_seed(11)
        terms = SeedLoss(efficient, SEED_WEIGHTS, chunk_size=9).terms(x, labels)
        sum(coefs[k] * v for k, v in terms.items()).backward()
        grads.append(x.grad)
    _assert_close(grads[1], grads[0])


def test_float32_large_batch_agrees() -> None:
    labels = _artist_labels("artists", seed=8).repeat(3)  # repeated ids: bigger artists
    x = _embeddings(len(labels), dim=32, seed=9, dtype=torch.float32)
    ref_value, ref_grad = _run(SeedLoss(False), x, labels)
    value, grad = _run(SeedLoss(True, chunk_size=100), x, labels)
    _assert_close(value, ref_value, rtol=1e-4)
    _assert_close(grad, ref_grad, rtol=1e-4)


def test_same_triplets_as_pml_and_same_rng_consumption() -> None:
    labels = _artist_labels("artists", seed=10)
    x = _embeddings(len(labels))
    after = []
    for efficient in (False, True):
        torch.manual_seed(3)
        SeedLoss(efficient)(x, labels)
        after.append(torch.rand(4))
    torch.testing.assert_close(after[0], after[1])
    torch.manual_seed(3)
    a, p, n = sample_triplets(labels, 10)
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    assert len(a) == 10 * int((counts[inverse] > 1).sum())  # every non-singleton anchors 10
    assert torch.all(labels[a] == labels[p]) and torch.all(a != p)
    assert torch.all(labels[a] != labels[n])


@pytest.mark.parametrize("efficient", [False, True])
def test_zero_weight_drops_the_term(efficient: bool) -> None:
    labels = _artist_labels("artists", seed=12)
    x = _embeddings(len(labels))
    full = SeedLoss(efficient, (1.0, 1.0, 1.0), chunk_size=16)
    torch.manual_seed(0)
    parts = full.terms(x, labels)
    no_circle = SeedLoss(efficient, (2.0, 0.0, 0.5), chunk_size=16)
    assert set(no_circle.terms(x, labels)) == {"multi_similarity", "triplet_margin"}
    torch.manual_seed(0)
    expected = 2.0 * parts["multi_similarity"] + 0.5 * parts["triplet_margin"]
    _assert_close(no_circle(x, labels), expected)
    # Without the triplet term nothing is sampled, so the RNG is left untouched.
    torch.manual_seed(5)
    SeedLoss(efficient, (1.0, 0.025, 0.0))(x, labels)
    drawn = torch.rand(3)
    torch.manual_seed(5)
    torch.testing.assert_close(drawn, torch.rand(3))
    if not efficient:
        assert no_circle.pml_circle is None and no_circle.pml_ms is not None


def test_backward_keeps_no_batch_by_batch_tensor() -> None:
    """Autograd saves O(B * dim + triplets) on the chunked path; PML saves B x B."""
    labels = _artist_labels("artists", seed=13).repeat(4)
    b = len(labels)
    x = _embeddings(b, dim=8).requires_grad_(True)

    def largest_saved(efficient: bool) -> int:
        sizes: list[int] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            SeedLoss(efficient, chunk_size=32)(x, labels)
        return max(sizes)

    assert largest_saved(False) >= b * b
    assert largest_saved(True) <= 3 * 10 * b  # the triplet coefficients, 3 x triplets


def test_training_runs_identically_on_both_paths() -> None:
    """A few SGD steps of a small linear model end at the same weights either way."""
    labels_all = _artist_labels("artists", seed=14)
    feats = _embeddings(len(labels_all), dim=12, seed=15)
    finals = []
    for efficient in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Linear(12, 6, bias=False).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        loss_fn = SeedLoss(efficient, chunk_size=11)
        for step in range(5):
            rows = torch.arange(step * 7, step * 7 + 90) % len(labels_all)
            opt.zero_grad()
            loss_fn(model(feats[rows]), labels_all[rows]).backward()
            opt.step()
        finals.append(model.weight.detach().clone())
    assert not torch.allclose(finals[0], torch.nn.Linear(12, 6, bias=False).double().weight)
    torch.testing.assert_close(finals[1], finals[0], rtol=1e-6, atol=1e-9)


def test_tiny_batches_give_zero_loss_on_both_paths() -> None:
    for labels in (torch.tensor([3]), torch.tensor([], dtype=torch.long)):
        x = _embeddings(len(labels)).requires_grad_(True)
        for efficient in (False, True):
            value = SeedLoss(efficient)(x, labels)
            assert float(value.detach()) == 0.0
            if len(labels):
                value.backward()
                assert torch.all(x.grad == 0)


def test_input_and_parameter_errors() -> None:
    loss = SeedLoss(True)
    with pytest.raises(ValueError, match="2-D"):
        loss(torch.randn(5), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="same batch size"):
        loss(torch.randn(5, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        loss(torch.randn(5, 4), torch.zeros(5))
    with pytest.raises(ValueError, match="chunk_size"):
        SeedLoss(True, chunk_size=0)
    with pytest.raises(ValueError, match="weights"):
        SeedLoss(True, (0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="weights"):
        SeedLoss(True, (1.0, 1.0))


# ------------------------------------------------------------------ build_loss


def test_build_loss_seed_paths() -> None:
    never = build_loss(LossConfig(memory_efficient="never"), num_classes=0, embedding_dim=128)
    always = build_loss(LossConfig(memory_efficient="always", weights=(1.0, 0.0, 2.0)), 0, 128)
    assert isinstance(never, SeedLoss) and not never.memory_efficient
    assert isinstance(always, SeedLoss) and always.memory_efficient
    assert always.weights == (1.0, 0.0, 2.0)
    assert loss_path(never, 10**6) == "pml" and loss_path(always, 2) == "memory_efficient"
    custom = build_loss(LossConfig(memory_efficient="always", ms_alpha=3.0, triplets_per_anchor=4), 0, 8)
    assert custom.ms_params.alpha == 3.0 and custom.triplets_per_anchor == 4
    with pytest.raises(ValueError, match="memory_efficient"):
        build_loss(LossConfig(memory_efficient="sometimes"), 0, 8)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        build_loss(LossConfig(kind="softmax"), 10, 8)  # type: ignore[arg-type]


def test_build_loss_auto_switches_by_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    loss = build_loss(LossConfig(memory_efficient="auto", memory_efficient_above=50), 0, 16)
    assert isinstance(loss, AutoSeedLoss)
    assert not loss.uses_memory_efficient(50) and loss.uses_memory_efficient(51)
    assert loss_path(loss, 50) == "pml" and loss_path(loss, 51) == "memory_efficient"
    called: list[str] = []
    for name in ("reference", "efficient"):
        sub = getattr(loss, name)
        original = sub.forward
        monkeypatch.setattr(sub, "forward", lambda e, y, _o=original, _n=name: called.append(_n) or _o(e, y))
    labels = _artist_labels("artists")
    x = _embeddings(len(labels))
    loss(x[:50], labels[:50])
    loss(x[:51], labels[:51])
    assert called == ["reference", "efficient"]


@pytest.mark.parametrize("kind", ["arcface", "subcenter_arcface"])
def test_build_loss_arcface_has_trainable_class_weights(kind: str) -> None:
    cfg = LossConfig(kind=kind, arcface_margin_deg=28.6, arcface_scale=30.0, subcenters=3)
    loss = build_loss(cfg, num_classes=7, embedding_dim=16)
    params = list(loss.parameters())
    centres = 3 if kind == "subcenter_arcface" else 1
    assert [tuple(p.shape) for p in params] == [(16, 7 * centres)]
    assert loss.scale == 30.0 and math.isclose(loss.margin, math.radians(28.6))
    assert loss_path(loss, 100) == "classifier"
    x = _embeddings(21, dim=16, dtype=torch.float32).requires_grad_(True)
    value = loss(x, torch.arange(21) % 7)
    value.backward()
    assert torch.isfinite(value) and params[0].grad is not None and x.grad is not None
    with pytest.raises(ValueError, match="num_classes"):
        build_loss(cfg, num_classes=1, embedding_dim=16)


def test_seed_plus_classifier_is_the_weighted_sum():
    from artistsim.config import LossConfig
    from artistsim.training.losses import SeedPlusClassifier, build_loss

    torch.manual_seed(0)
    cfg = LossConfig(classifier_weight=0.3, memory_efficient="never")
    loss = build_loss(cfg, num_classes=5, embedding_dim=8)
    assert isinstance(loss, SeedPlusClassifier) and len(list(loss.parameters())) == 1
    emb, labels = torch.randn(20, 8), torch.arange(20) % 5
    torch.manual_seed(1)
    total = loss(emb, labels)
    torch.manual_seed(1)
    parts = loss.seed(emb, labels) + 0.3 * loss.classifier(emb, labels)
    assert torch.allclose(total, parts)
    assert not isinstance(build_loss(LossConfig(), 5, 8), SeedPlusClassifier)  # the seed's loss by default


def test_cross_batch_memory_sees_earlier_batches():
    from artistsim.config import LossConfig
    from artistsim.training.losses import SeedPlusMemory, build_loss

    cfg = LossConfig(xbm_size=64, xbm_weight=0.5, memory_efficient="never")
    loss = build_loss(cfg, num_classes=10, embedding_dim=8)
    assert isinstance(loss, SeedPlusMemory) and not isinstance(build_loss(LossConfig(), 10, 8), SeedPlusMemory)
    torch.manual_seed(0)
    second = torch.randn(12, 8, requires_grad=True)
    first = second.detach() + 0.1 * torch.randn(12, 8)  # near the second batch: hard negatives
    a, b = torch.arange(12) % 3, 3 + torch.arange(12) % 3  # the second batch shares no artist
    ms = pml_losses.MultiSimilarityLoss(alpha=cfg.ms_alpha, beta=cfg.ms_beta, base=cfg.ms_base)
    from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

    torch.manual_seed(1)
    alone = loss.seed(second, b) + 0.5 * ms(second, b)  # what a fresh memory gives: the batch alone
    loss(first, a)
    torch.manual_seed(1)
    total = loss(second, b)
    assert not torch.allclose(total, alone)  # the first batch's artists are negatives now
    emb = torch.cat([first, second.detach()])
    lab = torch.cat([a, b])
    a1, pos, a2, neg = lmu.get_all_pairs_indices(b, lab)
    keep = pos != a1 + 12  # a row against its own copy in the memory is no pair
    torch.manual_seed(1)
    seed_part = loss.seed(second, b)
    memory_part = ms(second, b, (a1[keep], pos[keep], a2, neg), emb, lab)
    assert torch.allclose(total, seed_part + 0.5 * memory_part, atol=1e-5)
    total.backward()
    assert second.grad is not None and torch.isfinite(second.grad).all()
    loss.reset_memory()
    torch.manual_seed(1)
    assert torch.allclose(loss(second.detach(), b), alone.detach(), atol=1e-6)  # emptied: the batch alone
    with pytest.raises(ValueError, match="xbm_size"):
        loss(torch.randn(65, 8), torch.arange(65) % 5)
