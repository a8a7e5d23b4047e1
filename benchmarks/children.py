"""Benchmark children: a fresh interpreter per memory figure, capped so an oversize case fails cleanly."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def run_child(cmd: list[str], memory_limit_gb: float = 0.0, timeout: float = 3600.0) -> dict:
    """Run a benchmark child in a fresh interpreter; its last stdout line is a JSON dict.

    Why fresh: peak RSS only grows within a process, so every memory figure needs its
    own process. `memory_limit_gb` caps the child's address space, so an oversized case
    fails with an allocation error instead of waking the OOM killer on a shared machine.
    The child's peak RSS is also read from RUSAGE_CHILDREN as a cross-check.
    """
    env = dict(os.environ)  # PYTHONPATH holds this checkout (benchmarks/__init__.py)
    limit = int(memory_limit_gb * 2**30) if memory_limit_gb > 0 else None

    def cap() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        tail = next((line for line in reversed(err) if line.strip()), f"exit code {proc.returncode}")
        if proc.returncode < 0:
            tail = f"killed by signal {-proc.returncode}; {tail}"
        elif "MemoryError" in proc.stderr or "DefaultCPUAllocator" in proc.stderr:
            tail = f"out of memory under the {memory_limit_gb:g} GB cap ({tail[:160]})"
        return {"error": tail[:300], "wall_total": wall}
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        return {"error": "child printed no result"}
    out = json.loads(lines[-1])
    out.setdefault("child_maxrss_mb", after.ru_maxrss / 1024.0 if after.ru_maxrss > before.ru_maxrss else None)
    out.setdefault("wall_total", wall)
    return out


def child_command(script: str, *args: str) -> list[str]:
    """`script` (e.g. "bench_ann.py") run again as a module, with these arguments."""
    return [sys.executable, "-m", f"benchmarks.{Path(script).stem}", *args]
