"""Facts about the machine and this process, which a reader needs to interpret absolute figures.

Why ratios: these machines are shared (other processes may hold the cores), so an
absolute time says little. Every benchmark measures its baseline in the same run, next
to the thing measured, and reports the ratio; the load average is recorded before and
after each table.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
from pathlib import Path
from typing import Any


def load_average() -> float:
    """1-minute load average (how many runnable processes shared the cores)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not on Unix
        return float("nan")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def total_ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return float("nan")


def machine_facts() -> dict[str, Any]:
    """What a reader needs to interpret absolute figures."""
    import torch

    from artistsim.runtime import allocator_tuned

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count() or 1
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gb": total_ram_gb(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "malloc_tuned": allocator_tuned(),
        "python": platform.python_version(),
        "load_1min": load_average(),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def peak_rss_mb() -> float:
    """Peak resident set of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmHWM, VmRSS, RssAnon, RssFile) in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def set_threads(n: int, tune_malloc: bool = True) -> None:
    """Torch's thread count, and the allocator setting of the CLI's looping commands.

    Every benchmark process (children included) calls this first, so the library's code
    and the baselines it is compared with run under the same allocator. Benchmarks of
    one-shot library calls (bench_ann's children) pass tune_malloc=False, as the CLI
    leaves malloc alone outside its looping commands (artistsim.runtime).
    """
    import torch

    from artistsim.runtime import tune_allocator

    if tune_malloc:
        tune_allocator()
    if n:
        torch.set_num_threads(n)
