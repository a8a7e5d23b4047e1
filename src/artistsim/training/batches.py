"""Batches of crops and one batch's forward and backward pass, for the training loop.

`CropLoader` cuts the epoch's batches of whole artists into random crops in a background
thread; `forward_backward` computes a batch's loss and accumulates its gradients, in
micro-batches when the batch is too large to hold its activations at once.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from artistsim.data.layout import FeatureSource
from artistsim.data.splits import crop_indices, take_batch
from artistsim.embed import autocast

__all__ = ["CropLoader", "forward_backward"]


class CropLoader:
    """Background-thread batch producer: cropping and gathering overlap the model's compute.

    Gathering from the memory map and numpy indexing release the GIL, so one thread is
    enough to keep the training thread busy on a 2-core machine.
    """

    def __init__(self, source: FeatureSource, batches: list[np.ndarray], labels: np.ndarray, crop: int,
                 pad_mode: str, rng: np.random.Generator, prefetch: int = 2):
        self.source, self.batches, self.labels = source, batches, labels
        self.crop, self.pad_mode, self.rng = crop, pad_mode, rng
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.stop = threading.Event()

    def _make(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx, true = crop_indices(self.source.lengths[rows], self.crop, self.rng, self.pad_mode)
        x = take_batch(self.source, rows, idx, true, self.pad_mode)
        return torch.from_numpy(x), torch.from_numpy(true), torch.from_numpy(self.labels[rows])

    def _work(self) -> None:
        try:
            for rows in self.batches:
                if self.stop.is_set():
                    return
                self.queue.put(self._make(rows))
        except BaseException as exc:  # surfaced on the training thread
            self.queue.put(exc)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        self.thread.start()
        try:
            for _ in self.batches:
                item = self.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop.set()
            while self.thread.is_alive():
                try:
                    self.queue.get(timeout=0.1)
                except queue.Empty:
                    pass


def forward_backward(net: torch.nn.Module, loss_fn: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor,
                     labels: torch.Tensor, device: torch.device, micro_batch_frames: int = 0) -> torch.Tensor:
    """Loss of one batch, with its gradients accumulated into the parameters.

    The pairwise losses need every embedding of the batch at once, but the encoder's
    activations need not all be alive together. With `micro_batch_frames` > 0 and a larger
    batch, micro-batches of that many frames (tracks x crop) run in two passes (the "gradient cache" idea): first every micro-batch
    without a graph, giving the embeddings, the loss and d loss / d embeddings; then each
    micro-batch again with a graph, replaying its random state so dropout draws the same
    masks, and back-propagating its slice of that gradient. Peak memory is one
    micro-batch's activations for one extra forward pass; the gradient is the full batch's
    (exactly so for encoders without batch statistics; the Conformer's batch norm then
    normalises per micro-batch).
    """
    micro_batch = max(1, micro_batch_frames // x.shape[1])
    if micro_batch_frames <= 0 or len(x) <= micro_batch:
        with autocast(device):
            emb = net(x, lengths)
        loss = loss_fn(emb.float(), labels)
        loss.backward()
        return loss
    slices = [slice(i, i + micro_batch) for i in range(0, len(x), micro_batch)]
    states, parts = [], []
    with torch.no_grad():
        for sl in slices:
            states.append(_rng_state(device))
            with autocast(device):
                parts.append(net(x[sl], lengths[sl]).float())
    emb = torch.cat(parts).requires_grad_()
    loss = loss_fn(emb, labels)
    loss.backward()
    after = _rng_state(device)
    sync = getattr(net, "no_sync", None)
    for i, (sl, state) in enumerate(zip(slices, states)):
        _set_rng_state(device, state)
        last = i == len(slices) - 1
        with (contextlib.nullcontext() if last or sync is None else sync()):
            with autocast(device):
                out = net(x[sl], lengths[sl]).float()
            out.backward(emb.grad[sl])
    _set_rng_state(device, after)
    return loss.detach()


def _rng_state(device: torch.device) -> tuple:
    cpu = torch.get_rng_state()
    return (cpu, torch.cuda.get_rng_state(device)) if device.type == "cuda" else (cpu,)


def _set_rng_state(device: torch.device, state: tuple) -> None:
    torch.set_rng_state(state[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state[1], device)
