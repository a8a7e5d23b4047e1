"""The memory-efficient path of the seed loss: one autograd function over row chunks.

Why a hand-written autograd function: PML's MultiSimilarity, Circle and TripletMargin
keep several batch x batch matrices for backward, ~12 GB at the seed's first stage
(13,000 tracks). `SeedTermsFunction` computes the same three terms (definitions in
`artistsim.training.losses`) in one pass over row chunks of the similarity matrix S,
saves only the normalised embeddings and O(batch + triplets) statistics, and in
backward recomputes each chunk and applies the closed-form gradient. Peak extra memory
is O(chunk_size * batch): ~0.45 GB and ~11 s at 13,000 x 128 (benchmarks/bench_losses.py).
The public loss modules (`SeedLoss`, `AutoSeedLoss`, `build_loss`) live in
`artistsim.training.losses` and call this function; nothing else should.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from artistsim.training.chunks import (
    Chunk,
    Layout,
    batch_layout,
    dense_logsumexp_,
    segment_logsumexp,
    similarity_chunk,
    softplus_grad,
)

# Rows of the similarity matrix per chunk. At 13,000 x 128 (the seed's first stage) on
# 2 CPU cores, forward+backward takes 21 / 18 / 14 / 11.4 / 11.4 s with 256 / 512 / 1024 /
# 2048 / 4096 rows for 93 / 145 / 246 / 450 / 856 MB above the inputs: 2048 is where
# larger chunks stop paying (benchmarks/bench_losses.py).
DEFAULT_CHUNK_SIZE = 2048

# The seed's TripletMarginLoss flags; the memory-efficient path implements only these.
TRIPLET_SWAP = True
TRIPLET_SMOOTH = True

TERM_NAMES = ("multi_similarity", "circle", "triplet_margin")


# --------------------------------------------------------------------------- helpers


def check_inputs(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Validate shapes and dtypes; return labels on the embeddings' device."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings)
        raise ValueError(f"embeddings must be a 2-D tensor (batch, dim), got {shape}")
    if not embeddings.is_floating_point():
        raise TypeError(f"embeddings must be floating point, got {embeddings.dtype}")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels)
        raise ValueError(f"labels must be a 1-D tensor (batch,), got {shape}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"labels ({labels.shape[0]}) and embeddings ({embeddings.shape[0]}) "
            "must have the same batch size"
        )
    return labels.to(embeddings.device)


# ------------------------------------------------------------------ per-chunk terms


class MSParams(NamedTuple):
    alpha: float
    beta: float
    base: float


class CircleParams(NamedTuple):
    m: float
    gamma: float


def _ms_neg_logits(s: torch.Tensor, p: MSParams) -> torch.Tensor:
    """beta (S - base) for every entry (a new tensor)."""
    return s.mul(p.beta).sub_(p.beta * p.base)


def _ms_pos_logits(sp: torch.Tensor, p: MSParams) -> torch.Tensor:
    """alpha (base - S) for the positive pairs."""
    return (p.base - sp) * p.alpha


def _circle_neg_logits(s: torch.Tensor, p: CircleParams) -> tuple[torch.Tensor, torch.Tensor]:
    """gamma [S + m]_+ (S - m) for every entry, and the detached weight [S + m]_+."""
    wn = s.add(p.m).clamp_min_(0.0)
    return s.sub(p.m).mul_(wn).mul_(p.gamma), wn


def _circle_pos_logits(sp: torch.Tensor, p: CircleParams) -> tuple[torch.Tensor, torch.Tensor]:
    """-gamma [1 + m - S]_+ (S - 1 + m) for the positive pairs, and the detached weight."""
    wp = (1.0 + p.m - sp).clamp_min(0.0)
    return -p.gamma * wp * (sp - (1.0 - p.m)), wp


def _ms_forward(ch: Chunk, p: MSParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row log(1 + sum exp) of the positive and of the negative logits."""
    c = ch.s.shape[0]
    lse_p = segment_logsumexp(_ms_pos_logits(ch.sp, p), ch.pos_rows, c, plus_one=True)
    xn = _ms_neg_logits(ch.s, p)
    xn.view(-1).index_fill_(0, ch.same_flat, float("-inf"))
    lse_n = dense_logsumexp_(xn, plus_one=True, nonpositive=p.beta * (1.0 - p.base) <= 0)
    return lse_p, lse_n


def _circle_forward(ch: Chunk, p: CircleParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row logsumexp of the positive and of the negative logits (-inf if none)."""
    c = ch.s.shape[0]
    lse_p = segment_logsumexp(_circle_pos_logits(ch.sp, p)[0], ch.pos_rows, c, plus_one=False)
    ln, _ = _circle_neg_logits(ch.s, p)
    ln.view(-1).index_fill_(0, ch.same_flat, float("-inf"))
    lse_n = dense_logsumexp_(ln, plus_one=False, nonpositive=False)
    return lse_p, lse_n


def _ms_backward(
    ch: Chunk, p: MSParams, lse_p: torch.Tensor, lse_n: torch.Tensor, coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """|coef| d loss / dS on every entry (meaningful off the same-label ones) and the
    signed gradient on the positive pairs: d/dS_in = +softmax weight, d/dS_ip = -weight
    (weights of log(1 + sum exp), so lse_* from the forward pass are the normalisers).
    """
    dense = _ms_neg_logits(ch.s, p).sub_((lse_n - math.log(abs(coef)))[:, None]).exp_()
    sparse = torch.exp(_ms_pos_logits(ch.sp, p) - lse_p[ch.pos_rows]) * -coef
    return dense, sparse


def _circle_backward(
    ch: Chunk, p: CircleParams, lse_p: torch.Tensor, lse_n: torch.Tensor, coef: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """As _ms_backward for Circle, with per-row coefficients (0 for rows without loss).

    Softmax weight times d logit / dS, which is gamma [S + m]_+ on negatives and
    -gamma [1 + m - S]_+ on positives (PML detaches the weights). |coef| is folded
    into the exponent; rows with coef 0 get an infinite shift, hence exactly 0.
    """
    log_coef = torch.log((coef * p.gamma).abs())
    shift = torch.where(coef != 0, lse_n - log_coef, torch.full_like(lse_n, float("inf")))
    ln, wn = _circle_neg_logits(ch.s, p)
    dense = ln.sub_(shift[:, None]).exp_().mul_(wn)
    lp, wp = _circle_pos_logits(ch.sp, p)
    rows = ch.pos_rows
    sparse = torch.exp(lp - lse_p[rows]) * wp * (-p.gamma) * coef[rows]
    return dense, sparse


def _pair_grad(
    ch: Chunk, ms: tuple[MSParams, float] | None, circle: tuple[CircleParams, torch.Tensor, float] | None,
    stats: torch.Tensor,
) -> torch.Tensor:
    """d (MultiSimilarity + Circle) / dS for the chunk's rows (zeros if both inactive).

    `ms` is (params, coefficient); `circle` is (params, the chunk's per-row
    |coefficients|, sign); `stats` the chunk's columns of the forward statistics.
    """
    grad_s, grad_pos = None, torch.zeros_like(ch.sp)
    if ms is not None:
        grad_s, sparse = _ms_backward(ch, ms[0], stats[0], stats[1], ms[1])
        grad_s = grad_s if ms[1] > 0 else grad_s.neg_()
        grad_pos += sparse
    if circle is not None:
        dense, sparse = _circle_backward(ch, circle[0], stats[2], stats[3], circle[1])
        grad_s = dense.mul_(circle[2]) if grad_s is None else grad_s.add_(dense, alpha=circle[2])
        grad_pos += sparse * circle[2]
    if grad_s is None:
        return torch.zeros_like(ch.s)
    # Same-label entries were computed as if negatives (possibly inf): replace them.
    flat = grad_s.view(-1)
    flat.index_fill_(0, ch.same_flat, 0.0)
    flat.index_copy_(0, ch.pos_flat, grad_pos)
    return grad_s


# ------------------------------------------------------------------------ triplets


class _Triplets(NamedTuple):
    """Sampled triplets as flat indices into the chunk that holds each similarity:
    S_ap and S_an in the anchor's chunk, S_pn in the positive's. Entries are sorted by
    anchor (ap, an) or by positive (pn), so each chunk's triplets are one slice."""

    margin: float
    by_a: torch.Tensor  # triplet ids sorted by anchor row
    by_p: torch.Tensor  # triplet ids sorted by positive row
    ap_flat: torch.Tensor  # in by_a order
    an_flat: torch.Tensor  # in by_a order
    pn_flat: torch.Tensor  # in by_p order
    a_edges: list[int]  # chunk k's anchors are by_a[a_edges[k]:a_edges[k + 1]]
    p_edges: list[int]


def _index_triplets(
    a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: float, lay: Layout
) -> _Triplets:
    edges = torch.tensor(lay.edges, device=a.device)
    by_a, by_p = torch.argsort(a), torch.argsort(p)
    a_sorted, p_sorted = a[by_a], p[by_p]
    local_a = (a_sorted % lay.chunk_size) * lay.b
    return _Triplets(
        margin,
        by_a,
        by_p,
        local_a + p[by_a],
        local_a + n[by_a],
        (p_sorted % lay.chunk_size) * lay.b + n[by_p],
        torch.searchsorted(a_sorted, edges).tolist(),
        torch.searchsorted(p_sorted, edges).tolist(),
    )


def _gather_triplets(ch: Chunk, trip: _Triplets, k: int, s_trip: torch.Tensor) -> None:
    """Copy the chunk's S_ap, S_an (rows 0, 1, by_a order) and S_pn (row 2, by_p order)."""
    flat = ch.s.view(-1)
    lo, hi = trip.a_edges[k], trip.a_edges[k + 1]
    s_trip[0, lo:hi] = flat[trip.ap_flat[lo:hi]]
    s_trip[1, lo:hi] = flat[trip.an_flat[lo:hi]]
    lo, hi = trip.p_edges[k], trip.p_edges[k + 1]
    s_trip[2, lo:hi] = flat[trip.pn_flat[lo:hi]]


def _reduce_triplets(s_trip: torch.Tensor, trip: _Triplets) -> tuple[torch.Tensor, int, torch.Tensor]:
    """TripletMargin's AvgNonZero mean, its count and d loss_t / d (S_ap, S_an, S_pn)
    (rows in the orders of `s_trip`).

    violation = max(S_an, S_pn) - S_ap + margin (swap); torch.maximum splits the
    gradient evenly on ties, and so does this.
    """
    s_ap, s_an = s_trip[0], s_trip[1]
    s_pn = torch.empty_like(s_ap)
    s_pn[trip.by_p] = s_trip[2]
    s_pn = s_pn[trip.by_a]  # now aligned with s_ap, s_an
    an = torch.maximum(s_an, s_pn) if TRIPLET_SWAP else s_an
    violation = an - s_ap + trip.margin
    losses = F.softplus(violation) if TRIPLET_SMOOTH else F.relu(violation)
    nonzero = losses > 0
    count = int(nonzero.sum())
    loss = losses[nonzero].mean() if count else s_trip.new_zeros(())
    dviol = softplus_grad(violation) if TRIPLET_SMOOTH else (violation > 0).to(s_trip.dtype)
    dviol = dviol * nonzero.to(s_trip.dtype)
    w_an = torch.ones_like(dviol)
    if TRIPLET_SWAP:
        w_an = (s_an > s_pn).to(s_trip.dtype) + 0.5 * (s_an == s_pn).to(s_trip.dtype)
    d_pn = torch.empty_like(dviol)
    d_pn[trip.by_a] = dviol * (1.0 - w_an)
    return loss, count, torch.stack([-dviol, dviol * w_an, d_pn[trip.by_p]])


def _add_triplet_grad(grad_s: torch.Tensor, trip: _Triplets, coef: torch.Tensor, k: int) -> None:
    """Add the chunk's triplets' d loss / dS (repeated pairs accumulate)."""
    flat = grad_s.view(-1)
    lo, hi = trip.a_edges[k], trip.a_edges[k + 1]
    flat.index_add_(0, trip.ap_flat[lo:hi], coef[0, lo:hi])
    flat.index_add_(0, trip.an_flat[lo:hi], coef[1, lo:hi])
    lo, hi = trip.p_edges[k], trip.p_edges[k + 1]
    flat.index_add_(0, trip.pn_flat[lo:hi], coef[2, lo:hi])


# ------------------------------------------------------------- autograd function


def _reduce_circle(stats: torch.Tensor, lay: Layout) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Circle's AvgNonZero mean, its count and each row's d loss / d z (0 if excluded).

    Rows without a positive or a negative are 0 (PML masks them), so they drop out too.
    """
    zero = stats.new_zeros(())
    valid = (lay.row_size > 1) & (lay.row_size < lay.b)
    z = stats[2] + stats[3]
    rows = torch.where(valid, F.softplus(z), zero)
    nonzero = rows > 0
    count = int(nonzero.sum())
    loss = rows[nonzero].mean() if count else zero
    return loss, count, torch.where(nonzero, softplus_grad(z), zero)


class SeedTermsFunction(torch.autograd.Function):
    """MultiSimilarity, Circle and TripletMargin in one pass over row chunks of S.

    Inputs are already L2-normalised embeddings (autograd handles the normalisation)
    and, for the triplet term, the sampled (a, p, n) indices. A term whose parameters
    are None is skipped. Keeps for backward: e, four O(B) per-row log-sum-exps, Circle's
    per-row d loss / d z, O(triplets) triplet coefficients and the O(B + triplets)
    index layout; backward recomputes each chunk's S but no reduction, then turns the
    chunk's d loss / dS into d loss / de with two matmuls (S = e e^T).
    """

    @staticmethod
    def forward(ctx, e, labels, ms_p, circle_p, triplets, margin, chunk_size):  # type: ignore[override]
        lay = batch_layout(labels, chunk_size)
        b = lay.b
        trip = _index_triplets(*triplets, margin, lay) if triplets is not None else None
        stats = e.new_zeros((4, b))  # ms lse_p, ms lse_n, circle lse_p, circle lse_n
        s_trip = e.new_zeros((3, trip.by_a.shape[0] if trip is not None else 0))
        with torch.no_grad():
            for k in range(len(lay.edges) - 1):
                start, stop = lay.edges[k], lay.edges[k + 1]
                ch = similarity_chunk(e, lay, k)
                if ms_p is not None:
                    stats[0, start:stop], stats[1, start:stop] = _ms_forward(ch, ms_p)
                if circle_p is not None:
                    stats[2, start:stop], stats[3, start:stop] = _circle_forward(ch, circle_p)
                if s_trip.shape[1]:
                    _gather_triplets(ch, trip, k, s_trip)
                del ch
        zero = e.new_zeros(())
        ms = circle = triplet = zero
        circle_count = trip_count = 0
        circle_dz = trip_coef = None
        if ms_p is not None and b > 1:
            ms = (stats[0] / ms_p.alpha + stats[1] / ms_p.beta).mean()
        if circle_p is not None:
            circle, circle_count, circle_dz = _reduce_circle(stats, lay)
        if s_trip.shape[1]:
            triplet, trip_count, trip_coef = _reduce_triplets(s_trip, trip)
        ctx.save_for_backward(e, stats, circle_dz, trip_coef)
        ctx.lay, ctx.trip = lay, trip
        ctx.params = (ms_p if b > 1 else None, circle_p if circle_count else None, trip_count)
        ctx.circle_count = circle_count
        return ms, circle, triplet

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_ms, g_circle, g_triplet):  # type: ignore[override]
        e, stats, circle_dz, trip_coef = ctx.saved_tensors
        lay, trip = ctx.lay, ctx.trip
        ms_p, circle_p, trip_count = ctx.params
        grad_e = torch.zeros_like(e)
        ms = (ms_p, float(g_ms) / lay.b) if ms_p is not None and float(g_ms) else None
        circle = None
        if circle_p is not None and float(g_circle):
            circle_coef = circle_dz * (abs(float(g_circle)) / ctx.circle_count)
            circle = (circle_p, circle_coef, math.copysign(1.0, float(g_circle)))
        trip_scaled = None
        if trip_count and float(g_triplet):
            trip_scaled = trip_coef * (float(g_triplet) / trip_count)
        if ms is None and circle is None and trip_scaled is None:
            return grad_e, None, None, None, None, None, None
        for k in range(len(lay.edges) - 1):
            start, stop = lay.edges[k], lay.edges[k + 1]
            ch = similarity_chunk(e, lay, k)
            circle_k = None if circle is None else (circle[0], circle[1][start:stop], circle[2])
            grad_s = _pair_grad(ch, ms, circle_k, stats[:, start:stop])
            if trip_scaled is not None:
                _add_triplet_grad(grad_s, trip, trip_scaled, k)
            # S = e e^T: rows start:stop get dS e, every row gets dS^T e[start:stop].
            grad_e[start:stop].addmm_(grad_s, e)
            grad_e.addmm_(grad_s.T, e[start:stop])
            del ch, grad_s
        return grad_e, None, None, None, None, None, None
