"""Process-wide runtime settings for long CPU jobs (training, embedding, benchmarks).

glibc's malloc serves every allocation above its mmap threshold (128 KB, raised
dynamically up to 32 MB) with a fresh `mmap` and hands it back with `munmap` when freed.
A training step frees and re-allocates the same activation, gradient and batch buffers
every step, so each step first-touches them again: ~90,000 minor page faults per step of
the seed transformer at 64 tracks x 81 frames, and ~11,000 per 100-track crop-81 batch
gathered from the packed store, where they cost more than the gather itself (~1.7 us
each in this workplace's VMs: 21 ms against 5 ms per batch, benchmarks/bench_loading.py).

`tune_allocator` makes glibc keep freed memory in its heap instead (no mmap'd chunks,
no trimming), so buffers of the same sizes are reused without faults -- the effect
Intel's PyTorch CPU tuning guide gets by preloading jemalloc or tcmalloc, without a
native dependency. The cost: memory freed at a peak is not returned to the OS until
the process ends, which for a training or embedding process (whose peak recurs every
step) changes nothing, and a heap that cannot hand back freed blocks fragments: a
one-shot exact search of 1,000 queries against 1,000,000 x 128 embeddings peaked 2.15 GB
above the interpreter's start with the setting, 1.36 GB without (benchmarks/bench_ann.py).
So the CLI turns it on only for the commands that loop (train, embed, evaluate, predict,
demo). Set ``ARTISTSIM_MALLOC=default`` to leave malloc as it is everywhere.

Called by the CLI and the benchmarks, never on import: a library must not change the
allocator of the program that imports it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1

_tuned = False


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap for reuse; True when the setting took effect.

    A no-op (False) off glibc (macOS, musl, Windows), when `ARTISTSIM_MALLOC=default`,
    or when mallopt refuses a value. Safe to call more than once.
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get("ARTISTSIM_MALLOC", "").lower() == "default":
        return False
    libc = _glibc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
    if not ok:
        log.debug("mallopt refused the allocator settings; malloc left as it is")
        return False
    _tuned = True
    return True


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt's parameters are glibc's), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc


def allocator_tuned() -> bool:
    """Whether `tune_allocator` took effect in this process (benchmarks record it)."""
    return _tuned
