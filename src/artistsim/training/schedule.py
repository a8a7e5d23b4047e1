"""Schedules around the optimizer: learning-rate warm-up, margin warm-up, checkpoint averaging.

Why apart from the loop: each is a config switch (off by default, so the seed's recipe is
unchanged) with a small state of its own, and each is tested alone here.

- `LinearWarmup`: the learning rates of every parameter group rise linearly from lr/n to
  lr over the first n steps of a stage. Every curriculum stage starts a fresh AdamW whose
  second-moment estimates are still empty: its first steps are the largest and least
  informed (speaker-verification recipes warm up from 0 for the same reason).
- `margin_fraction`: the share of the angular margin in force after some epochs.
- `WeightAverage`: stochastic weight averaging over epochs. It keeps the last few epochs'
  weights (CPU copies) and averages the window that ends at a chosen epoch; buffers (batch
  norm statistics) are averaged too, integer buffers taken from the last epoch.
"""

from __future__ import annotations

from collections import deque

import torch

__all__ = ["LinearWarmup", "WeightAverage", "margin_fraction"]


class LinearWarmup:
    """Scale each group's `initial_lr` by min(1, (step + 1) / steps) before each optimizer step."""

    def __init__(self, optimizer: torch.optim.Optimizer, steps: int, done: int = 0) -> None:
        if steps < 0 or done < 0:
            raise ValueError(f"warm-up steps and steps done must be >= 0, got {steps} and {done}")
        self.optimizer, self.steps, self.done = optimizer, int(steps), int(done)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])

    def factor(self) -> float:
        """The share of the full learning rate the next step takes."""
        return 1.0 if self.done >= self.steps else (self.done + 1) / self.steps

    def before_step(self) -> None:
        """Set this step's learning rates; call once per optimizer step, before it."""
        f = self.factor()
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f
        self.done += 1


def margin_fraction(epochs_done: int, warmup_epochs: float) -> float:
    """Share of the margin for the next epoch: 0 at the first, growing by 1/warmup an epoch."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, epochs_done / warmup_epochs)


class WeightAverage:
    """The weights of recent epochs, and the average of a window of them."""

    def __init__(self, window: int, keep: int) -> None:
        if window < 1 or keep < window:
            raise ValueError(f"need 1 <= window <= keep, got window {window}, keep {keep}")
        self.window = int(window)
        self.states: deque[tuple[int, dict[str, torch.Tensor]]] = deque(maxlen=int(keep))

    def push(self, epoch: int, module: torch.nn.Module) -> None:
        """Remember `module`'s weights after `epoch`."""
        self.states.append((int(epoch), {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}))

    def average(self, end_epoch: int) -> tuple[dict[str, torch.Tensor], int] | None:
        """(averaged state dict, epochs averaged) over the `window` epochs ending at `end_epoch`.

        None when fewer than two of those epochs are held (nothing to average).
        """
        chosen = [s for e, s in self.states if end_epoch - self.window < e <= end_epoch]
        if len(chosen) < 2:
            return None
        out = {}
        for key, last in chosen[-1].items():
            if last.is_floating_point():
                out[key] = torch.stack([s[key] for s in chosen]).mean(dim=0).to(last.dtype)
            else:
                out[key] = last.clone()
        return out, len(chosen)
