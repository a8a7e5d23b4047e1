"""NetVLAD / GhostVLAD pooling: residual sums per cluster, ghosts absorb, length does not scale."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from artistsim.models.vlad import VLADPooling


def test_output_is_intra_normalised_residuals_of_the_real_frames() -> None:
    torch.manual_seed(0)
    pool = VLADPooling(4, mask_padding=True, clusters=3)
    x = torch.randn(1, 6, 4)
    pad = torch.tensor([[False] * 4 + [True] * 2])
    a = torch.softmax(pool.assign(x[0, :4]), dim=1)  # [4, 3]
    v = torch.stack([(a[:, k : k + 1] * (x[0, :4] - pool.centres[k])).sum(0) for k in range(3)])
    expected = F.normalize(F.normalize(v, dim=1).flatten(), dim=0)
    torch.testing.assert_close(pool(x, pad)[0], expected, rtol=1e-5, atol=1e-6)


def test_repeating_a_tracks_frames_does_not_change_it() -> None:
    """Sums grow with the frame count; the normalisation takes the count back out."""
    torch.manual_seed(1)
    pool = VLADPooling(8, mask_padding=True, clusters=4, ghost=2)
    x = torch.randn(1, 10, 8)
    twice = torch.cat([x, x], dim=1)
    none = torch.zeros(1, 10, dtype=torch.bool)
    torch.testing.assert_close(pool(twice, torch.zeros(1, 20, dtype=torch.bool)), pool(x, none), rtol=1e-5, atol=1e-6)


def test_a_frame_assigned_to_a_ghost_cluster_leaves_no_trace() -> None:
    pool = VLADPooling(2, mask_padding=True, clusters=1, ghost=1)
    with torch.no_grad():  # frames with x0 > 0 go to the real cluster, x0 < 0 to the ghost
        pool.assign.weight.copy_(torch.tensor([[50.0, 0.0], [-50.0, 0.0]]))
        pool.assign.bias.zero_()
    real = torch.tensor([[[1.0, 0.5], [2.0, -0.3]]])
    with_junk = torch.cat([real, torch.tensor([[[-3.0, 9.0]]])], dim=1)
    out, junk = pool(real, torch.zeros(1, 2, dtype=torch.bool)), pool(with_junk, torch.zeros(1, 3, dtype=torch.bool))
    torch.testing.assert_close(junk, out, rtol=1e-4, atol=1e-5)


def test_bad_cluster_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="clusters"):
        VLADPooling(4, True, clusters=0)
    with pytest.raises(ValueError, match="ghost"):
        VLADPooling(4, True, clusters=2, ghost=-1)
