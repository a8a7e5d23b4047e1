"""torchrun support for the training loop: joining the process group and keeping ranks in step.

Why apart from the loop: these are the only places that talk to torch.distributed, so a
reader of `loop` sees one line per collective decision, and single-process runs never
touch a process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from artistsim.embed import resolve_device


@dataclass
class Dist:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str | None) -> tuple[Dist, torch.device]:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local), device


def broadcast_float(value: float, d: Dist, device: torch.device) -> float:
    """Rank 0's value on every rank (validation scores, stop decisions)."""
    if not d.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return float(t.item())


def sync_loss_grads(loss_fn: torch.nn.Module) -> None:
    """Average the gradients of trainable loss weights (ArcFace) across ranks.

    DistributedDataParallel wraps only the encoder, so the loss's own parameters are
    reduced here to keep every rank's copy identical.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for p in loss_fn.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


def broadcast_module(module: torch.nn.Module, d: Dist) -> None:
    """Copy rank 0's parameters and buffers to all ranks (after reloading a checkpoint)."""
    if d.active:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, 0)
