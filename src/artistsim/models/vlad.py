"""NetVLAD / GhostVLAD pooling: a track as a mixture of recurring timbres.

Why: a track is a few kinds of frames (its sections' states, generic runs) that recur
across the catalogue. NetVLAD learns `clusters` centres with soft assignments and pools,
per centre, the sum of the frames' residuals from it: where, around each recurring
timbre, this track's frames sit. GhostVLAD (speaker verification, Zhong et al. 2019) adds
`ghost` clusters that take part in the soft assignment but are dropped from the output,
so frames that match no useful centre (silence, applause, generic runs) can be absorbed
there instead of blurring a real cluster.

Padding-safe by construction: padded frames get assignment 0 (masked before the
softmax's output is used) and are zeroed before any arithmetic, so they contribute
nothing. Each cluster's vector is L2-normalised (intra-normalisation) and then the whole,
so a track's number of real frames does not scale its embedding either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class VLADPooling(nn.Module):
    """forward(x [B, T, D], pad [B, T] or None) -> [B, clusters * D]."""

    def __init__(self, dim: int, mask_padding: bool, clusters: int = 8, ghost: int = 0) -> None:
        super().__init__()
        if clusters < 1 or ghost < 0:
            raise ValueError(f"VLAD needs clusters >= 1 and ghost clusters >= 0, got {clusters} and {ghost}")
        self.mask_padding, self.clusters, self.ghost = mask_padding, clusters, ghost
        self.out_dim = clusters * dim
        self.assign = nn.Linear(dim, clusters + ghost)
        self.centres = nn.Parameter(torch.randn(clusters, dim) * dim ** -0.5)

    def forward(self, x: Tensor, pad: Tensor | None) -> Tensor:
        pad = pad if self.mask_padding else None
        if pad is not None:
            x = x.masked_fill(pad.unsqueeze(-1), 0.0)
        a = torch.softmax(self.assign(x), dim=2)[..., : self.clusters]  # ghosts absorb, then leave
        if pad is not None:
            a = a.masked_fill(pad.unsqueeze(-1), 0.0)
        # sum_t a_tk (x_t - c_k) = sum_t a_tk x_t - (sum_t a_tk) c_k, without a [B, T, K, D] tensor
        v = torch.einsum("btk,btd->bkd", a, x) - a.sum(dim=1).unsqueeze(-1) * self.centres
        v = F.normalize(v, dim=2)
        return F.normalize(v.flatten(1), dim=1)

    def extra_repr(self) -> str:
        return f"clusters={self.clusters}, ghost={self.ghost}, mask_padding={self.mask_padding}"
