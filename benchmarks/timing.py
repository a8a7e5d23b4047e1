"""Wall and CPU seconds of a measured call, and the compute bound of matmul-shaped work.

CPU-seconds are reported alongside wall time: a process that loses its cores to a
neighbour waits longer but does not burn more CPU-seconds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.machine import load_average


@dataclasses.dataclass
class Timing:
    """Wall and CPU seconds of one measured call, with the load average around it."""

    wall: float
    cpu: float
    load_before: float
    load_after: float

    @property
    def cores_used(self) -> float:
        """CPU-seconds per wall second: ~threads when the cores were ours, less when shared."""
        return self.cpu / self.wall if self.wall > 0 else float("nan")


@contextmanager
def timed() -> Iterator[Timing]:
    """`with timed() as t: ...` fills t.wall / t.cpu (this process, all threads)."""
    t = Timing(0.0, 0.0, load_average(), float("nan"))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        yield t
    finally:
        t.wall = time.perf_counter() - wall0
        t.cpu = time.process_time() - cpu0
        t.load_after = load_average()


def time_call(fn: Callable[[], Any]) -> tuple[Timing, Any]:
    with timed() as t:
        out = fn()
    return t, out


def matmul_rate(size: int = 2048, repeats: int = 3) -> float:
    """FLOP/s of a large square fp32 matmul on this process's threads (best of `repeats`).

    The compute bound of anything matmul-shaped: measured in the same process and run as
    what it is compared with, so a busy machine lowers both alike.
    """
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # first call: thread pool start-up, packing buffers
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best
