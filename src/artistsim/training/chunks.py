"""The batch layout and row chunks of the memory-efficient seed loss (`chunked_loss`).

Why apart: these are the index structures and the numerically careful reductions that
forward and backward share (which pairs are positives, chunk by chunk, and log-sum-exp
over ragged or masked rows); the loss terms themselves and their closed-form gradients
stay in `artistsim.training.chunked_loss`, which is the only user of this module.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["Chunk", "Layout", "batch_layout", "dense_logsumexp_", "segment_logsumexp", "similarity_chunk",
           "softplus_grad"]

# torch.nn.functional.softplus(beta=1) returns x itself above this (and its gradient is
# then exactly 1); reproduced so the closed-form gradients match autograd's.
_SOFTPLUS_THRESHOLD = 20.0


def softplus_grad(x: torch.Tensor) -> torch.Tensor:
    """d softplus(x) / dx exactly as torch computes it (1 above the threshold)."""
    return torch.where(x > _SOFTPLUS_THRESHOLD, torch.ones_like(x), torch.sigmoid(x))


# ------------------------------------------------------------------ batch layout
#
# A row's positives are few (its artist's other tracks, ~10) while its negatives are
# almost the whole row. So the dense c x B work of a chunk covers all columns, the
# same-label entries are overwritten through a short list of flat indices, and the
# positive terms are computed on that list as ragged rows. No dense boolean masks.


class Layout(NamedTuple):
    """Index structures of one batch, O(B), shared by forward and backward.

    A chunk's same-label pairs are listed row by row; row i's pairs are numbered
    pair_start[i] .. pair_start[i + 1] - 1 across the whole batch.
    """

    b: int
    chunk_size: int
    edges: list[int]  # chunk boundaries 0, chunk_size, ..., b
    row_size: torch.Tensor  # (B,) rows with this row's label, itself included
    pair_edges: list[int]  # pair_start at the chunk boundaries
    col_shift: torch.Tensor  # (B,) index into `order` of a row's pair q is col_shift + q
    order: torch.Tensor  # (B,) rows sorted by label


def batch_layout(labels: torch.Tensor, chunk_size: int) -> Layout:
    b = labels.shape[0]
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)
    group_first = torch.cumsum(counts, 0) - counts
    row_size = counts[inverse]
    pair_start = F.pad(torch.cumsum(row_size, 0), (1, 0))
    edges = list(range(0, b, chunk_size)) + [b]
    pair_edges = pair_start[edges].tolist()
    col_shift = group_first[inverse] - pair_start[:-1]
    return Layout(b, chunk_size, edges, row_size, pair_edges, col_shift, order)


class Chunk(NamedTuple):
    """Rows start:stop of S = e e^T and their same-label entries."""

    s: torch.Tensor  # (c, B)
    same_flat: torch.Tensor  # flat indices into s of same-label entries, self included
    pos_flat: torch.Tensor  # flat indices of the positive pairs (same label, not self)
    pos_rows: torch.Tensor  # chunk-local row of each positive pair
    sp: torch.Tensor  # similarity of each positive pair


def similarity_chunk(e: torch.Tensor, lay: Layout, k: int) -> Chunk:
    """Chunk k's similarities and pairs; there are as many pairs as the sum of its rows'
    artist sizes (at most c x B, reached only if the whole batch is one artist)."""
    start, stop = lay.edges[k], lay.edges[k + 1]
    lo, hi = lay.pair_edges[k], lay.pair_edges[k + 1]
    s = e[start:stop] @ e.T
    arange = torch.arange(stop - start, device=e.device)
    rows = torch.repeat_interleave(arange, lay.row_size[start:stop], output_size=hi - lo)
    cols = lay.order[lay.col_shift[start:stop][rows] + torch.arange(lo, hi, device=e.device)]
    same_flat = rows * lay.b + cols
    positive = cols != rows + start
    pos_flat = same_flat[positive]
    return Chunk(s, same_flat, pos_flat, rows[positive], s.view(-1)[pos_flat])


def segment_logsumexp(x: torch.Tensor, seg: torch.Tensor, n: int, plus_one: bool) -> torch.Tensor:
    """Per-row log([1 +] sum exp(x)) over ragged rows `seg`; empty rows give 0 / -inf."""
    m = x.new_full((n,), float("-inf")).scatter_reduce_(0, seg, x, reduce="amax")
    m = m.clamp_min(0.0) if plus_one else torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    total = x.new_zeros(n).index_add_(0, seg, torch.exp(x - m[seg]))
    if plus_one:
        total += torch.exp(-m)
    return m + torch.log(total)


def dense_logsumexp_(x: torch.Tensor, plus_one: bool, nonpositive: bool) -> torch.Tensor:
    """Row-wise log([1 +] sum exp(x)), overwriting x; masked entries are -inf.

    `nonpositive` says x <= 0 everywhere (MultiSimilarity negatives with base >= 1),
    so with the extra 1 no shift is needed and log1p keeps full precision.
    """
    if plus_one and nonpositive:
        return torch.log1p(x.exp_().sum(dim=1))
    m = x.amax(dim=1)
    m = m.clamp_min(0.0) if plus_one else torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    total = x.sub_(m[:, None]).exp_().sum(dim=1)
    if plus_one:
        total += torch.exp(-m)
    return m + torch.log(total)
