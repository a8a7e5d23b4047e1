"""Additive angular margin softmax (ArcFace / AAM-softmax) over every training artist.

logit_j = scale * cos(theta_j) for the other artists, scale * cos(theta_y + m) for the
track's own artist y: its tracks must sit a margin m closer (in angle) to their class
centre than to any other. With `subcenters` K > 1 each artist has K centres and a track
is compared with the nearest of its artist's (sub-center ArcFace: an artist with two
kinds of albums is not forced into one cluster).

Why our own module rather than pytorch-metric-learning's ArcFaceLoss (the same formula):
(1) class centres initialised at unit norm: PML draws N(0, 1) entries, a norm of
sqrt(dim) (16 at 256-d), so AdamW's per-element steps of lr turn a centre by only ~lr
radians per step, while each artist is in one batch per epoch (issue 24, measured on the
demo: 0.60 -> 0.66 validation nDCG@100 after 6 epochs with unit-norm centres); (2) a
margin that can warm up from 0 (`set_margin_fraction`), as speaker-verification recipes
do. The parameter keeps PML's name and layout (`W`, embedding_dim x classes*K,
sub-centres of a class adjacent), so checkpoints of either load into the other. The
other half of issue 24's defect is not here but in the encoder: see
`models.heads.build_embedding_norm` (an untrained encoder's embeddings sit in a narrow
cone, where a cosine classifier barely separates classes).

Past theta = pi - m, cos(theta + m) would rise again as theta grows (the target logit
must keep falling the further a track is from its centre): there the logit is continued
as cos(theta) - m sin(m), the usual threshold of ArcFace implementations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MarginSoftmax"]

COS_EPS = 1e-7  # acos has an infinite slope at +-1


class MarginSoftmax(nn.Module):
    """forward(embeddings [B, D], labels [B] in 0..num_classes-1) -> mean cross-entropy."""

    def __init__(self, num_classes: int, embedding_dim: int, margin_deg: float, scale: float,
                 subcenters: int = 1) -> None:
        super().__init__()
        if num_classes < 2 or embedding_dim < 1 or subcenters < 1:
            raise ValueError(f"a margin softmax needs num_classes >= 2, embedding_dim >= 1 and subcenters >= 1, "
                             f"got {num_classes}, {embedding_dim}, {subcenters}")
        if not 0.0 <= margin_deg < 90.0 or scale <= 0:
            raise ValueError(f"margin must be in [0, 90) degrees and scale > 0, got {margin_deg} and {scale}")
        self.num_classes, self.subcenters = int(num_classes), int(subcenters)
        self.margin, self.scale = math.radians(margin_deg), float(scale)
        self.fraction = 1.0  # of the margin in force (the trainer's warm-up sets it)
        self.W = nn.Parameter(F.normalize(torch.randn(embedding_dim, num_classes * subcenters), dim=0))

    def set_margin_fraction(self, fraction: float) -> None:
        """Use `fraction` (clipped to [0, 1]) of the configured margin from now on."""
        self.fraction = min(max(float(fraction), 0.0), 1.0)

    def cosines(self, embeddings: Tensor) -> Tensor:
        """[B, num_classes]: cosine of each track with each artist's (nearest) centre."""
        cos = F.normalize(embeddings, dim=1) @ F.normalize(self.W, dim=0)
        if self.subcenters > 1:
            cos = cos.view(len(cos), self.num_classes, self.subcenters).amax(dim=2)
        return cos

    def logits(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Scaled logits with the margin on each track's own artist."""
        if labels.dim() != 1 or len(labels) != len(embeddings):
            raise ValueError(f"labels must be [B] with B = {len(embeddings)}, got shape {tuple(labels.shape)}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must be class indices in 0..{self.num_classes - 1}")
        cos = self.cosines(embeddings)
        m = self.margin * self.fraction
        target = cos.gather(1, labels.unsqueeze(1)).clamp(-1.0 + COS_EPS, 1.0 - COS_EPS)
        theta = torch.acos(target)
        shifted = torch.where(theta <= math.pi - m, torch.cos(theta + m), target - m * math.sin(m))
        return self.scale * cos.scatter(1, labels.unsqueeze(1), shifted)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(self.logits(embeddings, labels), labels)

    def extra_repr(self) -> str:
        return (f"classes={self.num_classes}, subcenters={self.subcenters}, "
                f"margin={math.degrees(self.margin):.1f} deg, scale={self.scale:g}")
