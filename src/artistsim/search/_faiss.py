"""FAISS plumbing shared by exact search and the approximate indexes: import and threads.

Why its own module: both `exact` (FAISS's brute-force kernel) and `ann` (indexes) need
the optional import and the OpenMP thread cap, and neither should import the other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any


def faiss_module() -> Any | None:
    """The faiss module, or None when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def omp_threads(faiss: Any, threads: int | None) -> Iterator[None]:
    """Run FAISS with `threads` OpenMP threads (default: the CPUs this process may use).

    OpenMP otherwise sizes its pool from the host's cores, which in a container can be
    far more than the process is allowed, and oversubscription makes search slower.
    """
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads if threads else available_cpus())
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)
