"""The seed's summed metric-learning loss, by pytorch-metric-learning or in row chunks.

The seed trains with w0 * MultiSimilarity + w1 * Circle + w2 * TripletMargin from
pytorch-metric-learning (PML). PML builds several batch x batch matrices (similarities,
masks, exponentials) that autograd keeps for backward: at the seed's first curriculum
stage (1,200 whole artists, ~13,000 tracks) forward+backward peaks at ~12 GB for the
loss alone and takes ~90 s on 2 cores, which with the model leaves no room on a 24 GB
machine. `SeedLoss(memory_efficient=True)` computes the *same* definitions (same
reducers, same handling of rows without positives or negatives, same sampled triplets)
in one pass over row chunks of the similarity matrix: a custom autograd function saves
only the normalised embeddings and O(batch + triplets) statistics, and its backward
recomputes each chunk and applies the closed-form gradient. Peak extra memory is
O(chunk_size * batch): ~0.45 GB and ~11 s at 13,000 x 128 (benchmarks/bench_losses.py).
Definitions reproduced (PML 2.x, CosineSimilarity, so S = E E^T after L2 normalisation;
"positive" = same label and not the row itself, "negative" = different label):

- MultiSimilarity, per row i:
  1/alpha * log(1 + sum_pos exp(-alpha (S_ip - base)))
  + 1/beta * log(1 + sum_neg exp(beta (S_in - base))); MeanReducer over all rows (rows
  without positives or negatives contribute 0 to that part and still count).
- Circle, per row i with at least one positive and one negative:
  softplus(logsumexp_pos(-gamma [1 + m - S_ip]_+ (S_ip - 1 + m))
  + logsumexp_neg(gamma [S_in + m]_+ (S_in - m))), the [.]_+ weights detached;
  other rows are 0. AvgNonZeroReducer: mean over rows whose loss is > 0.
- TripletMargin (margin, swap=True, smooth_loss=True): per sampled triplet (a, p, n)
  softplus(max(S_an, S_pn) - S_ap + margin); AvgNonZeroReducer. Triplets come from
  PML's own sampler `get_random_triplet_indices(labels, t_per_anchor=k)` on both paths:
  it loops over labels with O(batch) masks (no batch x batch matrix; ~0.3 s and ~15 MB at
  13,000 tracks / 1,200 artists), so both paths draw identical triplets from the same
  RNG state and a seeded run is reproducible across paths.

`build_loss` maps `config.LossConfig` onto `SeedLoss`, an automatic switch between the
two paths (`AutoSeedLoss`), or an (sub-center) ArcFace classifier (`margin.MarginSoftmax`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from artistsim.config import LossConfig
from artistsim.training.chunked_loss import (
    DEFAULT_CHUNK_SIZE,
    TERM_NAMES,
    TRIPLET_SMOOTH,
    TRIPLET_SWAP,
    CircleParams,
    MSParams,
    SeedTermsFunction,
    check_inputs,
)
from artistsim.training.margin import MarginSoftmax

__all__ = ["DEFAULT_CHUNK_SIZE", "TERM_NAMES", "SeedLoss", "AutoSeedLoss", "SeedPlusClassifier", "SeedPlusMemory",
           "sample_triplets", "loss_path", "build_loss"]


# ------------------------------------------------------------------------ modules


class SeedLoss(torch.nn.Module):
    """w0 * MultiSimilarity + w1 * Circle + w2 * TripletMargin, as the seed trained.

    `memory_efficient=False` calls pytorch-metric-learning (the reference);
    `memory_efficient=True` computes the same values and gradients in row chunks of
    `chunk_size` (see the module docstring). A weight of 0 drops its term entirely.
    Both paths sample triplets with PML's sampler, consuming the global CPU RNG the same
    way. The module has no parameters.
    """

    def __init__(
        self,
        memory_efficient: bool = False,
        weights: Sequence[float] = (1.0, 0.025, 1.0),
        *,
        ms_alpha: float = 2.0,
        ms_beta: float = 50.0,
        ms_base: float = 1.0,
        circle_m: float = 0.4,
        circle_gamma: float = 80.0,
        triplet_margin: float = 0.05,
        triplets_per_anchor: int = 10,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        weights = tuple(float(w) for w in weights)
        if len(weights) != 3:
            raise ValueError(f"weights must be 3 numbers (ms, circle, triplet), got {weights}")
        if any(not w >= 0.0 for w in weights) or not any(w > 0.0 for w in weights):
            raise ValueError(f"weights must be >= 0 with at least one > 0, got {weights}")
        if int(chunk_size) != chunk_size or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if int(triplets_per_anchor) != triplets_per_anchor or triplets_per_anchor < 1:
            raise ValueError(f"triplets_per_anchor must be a positive integer, got {triplets_per_anchor!r}")
        if ms_alpha <= 0 or ms_beta <= 0 or circle_gamma <= 0:
            raise ValueError("ms_alpha, ms_beta and circle_gamma must be > 0")
        self.memory_efficient = bool(memory_efficient)
        self.weights = weights
        self.chunk_size = int(chunk_size)
        self.triplets_per_anchor = int(triplets_per_anchor)
        self.ms_params = MSParams(float(ms_alpha), float(ms_beta), float(ms_base))
        self.circle_params = CircleParams(float(circle_m), float(circle_gamma))
        self.triplet_margin = float(triplet_margin)
        w_ms, w_circle, w_triplet = weights
        # PML modules exist only for the reference path and only for active terms.
        self.pml_ms = self.pml_circle = self.pml_triplet = None
        if not self.memory_efficient:
            if w_ms:
                self.pml_ms = pml_losses.MultiSimilarityLoss(alpha=ms_alpha, beta=ms_beta, base=ms_base)
            if w_circle:
                self.pml_circle = pml_losses.CircleLoss(m=circle_m, gamma=circle_gamma)
            if w_triplet:
                self.pml_triplet = pml_losses.TripletMarginLoss(
                    margin=triplet_margin,
                    swap=TRIPLET_SWAP,
                    smooth_loss=TRIPLET_SMOOTH,
                    triplets_per_anchor=self.triplets_per_anchor,
                    distance=CosineSimilarity(),
                )

    def uses_memory_efficient(self, batch_size: int) -> bool:
        """Whether a batch of this size runs the chunked path (for the trainer's log)."""
        return self.memory_efficient

    def extra_repr(self) -> str:
        return f"memory_efficient={self.memory_efficient}, weights={self.weights}, chunk_size={self.chunk_size}"

    def terms(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted value of each active term (dropped terms are absent), for logging."""
        labels = check_inputs(embeddings, labels)
        if self.memory_efficient:
            return self._terms_efficient(embeddings, labels)
        return self._terms_pml(embeddings, labels)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        terms = self.terms(embeddings, labels)
        weight = dict(zip(TERM_NAMES, self.weights))
        return sum(weight[name] * value for name, value in terms.items())  # type: ignore[return-value]

    def _terms_pml(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        modules = (self.pml_ms, self.pml_circle, self.pml_triplet)
        return {name: mod(embeddings, labels) for name, mod in zip(TERM_NAMES, modules) if mod is not None}

    def _terms_efficient(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        w_ms, w_circle, w_triplet = self.weights
        # Same normalisation as PML's CosineSimilarity; autograd chains through it.
        e = F.normalize(embeddings, p=2, dim=1)
        triplets = sample_triplets(labels, self.triplets_per_anchor) if w_triplet else None
        ms, circle, triplet = SeedTermsFunction.apply(
            e,
            labels,
            self.ms_params if w_ms else None,
            self.circle_params if w_circle else None,
            triplets,
            self.triplet_margin,
            self.chunk_size,
        )
        values = dict(zip(TERM_NAMES, (ms, circle, triplet)))
        return {name: values[name] for name, w in zip(TERM_NAMES, self.weights) if w}


def sample_triplets(labels: torch.Tensor, triplets_per_anchor: int) -> tuple[torch.Tensor, ...]:
    """(anchor, positive, negative) indices exactly as PML's TripletMarginLoss draws them.

    For every anchor with another track of its label and some other label in the batch:
    `triplets_per_anchor` positives uniformly among its label's other rows and as many
    negatives uniformly among the other labels' rows (with replacement), from torch's
    global CPU generator. Singleton artists anchor no triplet but can be negatives.
    """
    return lmu.get_random_triplet_indices(labels, t_per_anchor=triplets_per_anchor)


class AutoSeedLoss(torch.nn.Module):
    """SeedLoss that takes the memory-efficient path only for batches above a size.

    PML is the reference; the chunked path is what makes the seed's 1,200-artist batches
    fit. Neither sub-module has parameters, so holding both costs nothing.
    """

    def __init__(self, above: int, **seed_kwargs: object) -> None:
        super().__init__()
        if int(above) != above or above < 0:
            raise ValueError(f"memory_efficient_above must be an integer >= 0, got {above!r}")
        self.above = int(above)
        self.reference = SeedLoss(False, **seed_kwargs)  # type: ignore[arg-type]
        self.efficient = SeedLoss(True, **seed_kwargs)  # type: ignore[arg-type]

    def uses_memory_efficient(self, batch_size: int) -> bool:
        """True when a batch of `batch_size` rows runs the chunked path."""
        return batch_size > self.above

    def _pick(self, embeddings: torch.Tensor) -> SeedLoss:
        return self.efficient if self.uses_memory_efficient(embeddings.shape[0]) else self.reference

    def terms(self, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._pick(embeddings).terms(embeddings, labels)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._pick(embeddings)(embeddings, labels)


def loss_path(loss: torch.nn.Module, batch_size: int) -> str:
    """Name of the computation a batch takes: "memory_efficient", "pml" or "classifier".

    For the trainer's log; ArcFace-style losses are "classifier" (B x num_classes logits).
    """
    uses: Callable[[int], bool] | None = getattr(loss, "uses_memory_efficient", None)
    if uses is None:
        return "classifier"
    return "memory_efficient" if uses(batch_size) else "pml"


class SeedPlusClassifier(torch.nn.Module):
    """seed + weight * classifier: pair losses inside the batch plus a classifier whose
    class weights cover every training artist, so each step is also pulled toward the
    scatter of all artists (what LDA sees and a 32-artist batch does not)."""

    def __init__(self, seed: torch.nn.Module, classifier: torch.nn.Module, weight: float) -> None:
        super().__init__()
        self.seed, self.classifier, self.weight = seed, classifier, float(weight)

    def uses_memory_efficient(self, batch_size: int) -> bool:
        return self.seed.uses_memory_efficient(batch_size)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.seed(embeddings, labels) + self.weight * self.classifier(embeddings, labels)


class SeedPlusMemory(torch.nn.Module):
    """loss + weight * MultiSimilarity of the batch against a memory of recent embeddings.

    Why: a batch holds 16-32 artists, so the pair losses only ever push apart artists that
    happen to share it; pytorch-metric-learning's CrossBatchMemory keeps the last
    `memory_size` embeddings (detached) and their labels, so every step also contrasts the
    batch with hundreds of other artists, the larger effective batch that LDA's scatter
    over all artists has. The memory is a buffer: `reset_memory` empties it (the trainer
    does so at each stage, whose crop length changes the embeddings).
    """

    def __init__(self, seed: torch.nn.Module, memory: pml_losses.CrossBatchMemory, weight: float) -> None:
        super().__init__()
        self.seed, self.memory, self.weight = seed, memory, float(weight)

    def uses_memory_efficient(self, batch_size: int) -> bool:
        uses = getattr(self.seed, "uses_memory_efficient", None)
        return bool(uses(batch_size)) if uses is not None else False

    def reset_memory(self) -> None:
        """Forget every stored embedding (the next batch starts a fresh memory)."""
        self.memory.reset_queue()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if len(embeddings) > self.memory.memory_size:
            raise ValueError(f"loss.xbm_size {self.memory.memory_size} is smaller than a batch of "
                             f"{len(embeddings)} tracks; raise it above the largest batch")
        return self.seed(embeddings, labels) + self.weight * self.memory(embeddings, labels)


def build_loss(cfg: LossConfig, num_classes: int, embedding_dim: int) -> torch.nn.Module:
    """The loss module a LossConfig describes.

    kind "seed": SeedLoss (memory_efficient "always"/"never") or AutoSeedLoss ("auto",
    chunked above `memory_efficient_above` rows); `num_classes` is unused.

    kind "arcface" / "subcenter_arcface": `margin.MarginSoftmax` (PML's ArcFaceLoss /
    SubCenterArcFaceLoss formula and weight layout, unit-norm class centres, a margin that
    can warm up) with margin `arcface_margin_deg` (degrees) and scale `arcface_scale`. These hold trainable
    class weights (embedding_dim x num_classes[ x subcenters]): the trainer must put
    `loss.parameters()` in its own optimizer parameter group with lr `cfg.arcface_lr`,
    save them in checkpoints, and feed labels that are contiguous class indices
    0..num_classes-1 (remap artist ids first). Their logits are batch x num_classes.

    kind "seed" with `classifier_weight` > 0: `SeedPlusClassifier` (the seed's loss plus
    that weight times `classifier`, built as above).

    kind "seed" with `xbm_size` > 0: `SeedPlusMemory` around all of the above (the
    MultiSimilarity term with the seed's alpha, beta and base, against PML's
    CrossBatchMemory of `xbm_size` embeddings).
    """
    if cfg.kind == "seed" and cfg.xbm_size > 0:
        inner = build_loss(dataclasses.replace(cfg, xbm_size=0), num_classes, embedding_dim)
        ms = pml_losses.MultiSimilarityLoss(alpha=cfg.ms_alpha, beta=cfg.ms_beta, base=cfg.ms_base)
        memory = pml_losses.CrossBatchMemory(ms, embedding_size=int(embedding_dim), memory_size=int(cfg.xbm_size))
        return SeedPlusMemory(inner, memory, cfg.xbm_weight)
    if cfg.kind == "seed" and cfg.classifier_weight > 0:
        seed = build_loss(dataclasses.replace(cfg, classifier_weight=0.0), num_classes, embedding_dim)
        head = build_loss(dataclasses.replace(cfg, kind=cfg.classifier, classifier_weight=0.0), num_classes,
                          embedding_dim)
        return SeedPlusClassifier(seed, head, cfg.classifier_weight)
    if cfg.kind == "seed":
        kwargs = dict(
            weights=tuple(cfg.weights),
            ms_alpha=cfg.ms_alpha,
            ms_beta=cfg.ms_beta,
            ms_base=cfg.ms_base,
            circle_m=cfg.circle_m,
            circle_gamma=cfg.circle_gamma,
            triplet_margin=cfg.triplet_margin,
            triplets_per_anchor=cfg.triplets_per_anchor,
        )
        if cfg.memory_efficient == "always":
            return SeedLoss(True, **kwargs)
        if cfg.memory_efficient == "never":
            return SeedLoss(False, **kwargs)
        if cfg.memory_efficient == "auto":
            return AutoSeedLoss(cfg.memory_efficient_above, **kwargs)
        raise ValueError(
            f"loss.memory_efficient must be 'auto', 'always' or 'never', got {cfg.memory_efficient!r}"
        )
    if cfg.kind in ("arcface", "subcenter_arcface"):
        if num_classes < 2 or embedding_dim < 1:
            raise ValueError(
                f"{cfg.kind} needs num_classes >= 2 and embedding_dim >= 1, "
                f"got {num_classes} and {embedding_dim}"
            )
        if cfg.kind == "subcenter_arcface" and cfg.subcenters < 1:
            raise ValueError(f"loss.subcenters must be >= 1, got {cfg.subcenters}")
        return MarginSoftmax(int(num_classes), int(embedding_dim), cfg.arcface_margin_deg, cfg.arcface_scale,
                             int(cfg.subcenters) if cfg.kind == "subcenter_arcface" else 1)
    raise ValueError(f"loss.kind must be 'seed', 'arcface' or 'subcenter_arcface', got {cfg.kind!r}")
