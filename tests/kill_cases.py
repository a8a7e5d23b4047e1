"""Kills triggered by the child's own progress, not by a delay: shared by the kill tests.

Why: a kill after a fixed delay lands wherever the child happens to be, and on a loaded
machine every such kill may land during the imports, testing nothing. Here the child (the
artistsim CLI) announces each atomic write (`os.replace` of a finished temporary file
into its final name) on stdout; at the write chosen by the test it waits on stdin, which
the test never answers, and the test kills it there: a complete temporary file of ours
on disk, not yet renamed, the worst moment for the promise that final names are whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TIMEOUT = 300  # seconds a child may take to reach its write, or to finish

# argv: STOP_AT then the CLI's arguments. Every rename prints "write N DST"; at write
# number STOP_AT (0: never) the child blocks until it is killed.
ANNOUNCED = """
import os, sys
stop_at, real, count = int(sys.argv[1]), os.replace, [0]
def announced(src, dst):
    count[0] += 1
    print(f"write {count[0]} {dst}", flush=True)
    if count[0] == stop_at:
        sys.stdin.readline()
    real(src, dst)
os.replace = announced
from artistsim.cli import main
sys.exit(main(sys.argv[2:]))
"""


def announced(args: list[str], stop_at: int = 0) -> list[str]:
    """The command line of `artistsim ARGS` announcing its writes, stopping at write `stop_at`."""
    return [sys.executable, "-c", ANNOUNCED, str(stop_at), *map(str, args)]


def run_counting_writes(args: list[str]) -> int:
    """Run `artistsim ARGS` to the end; returns how many atomic writes it made."""
    proc = subprocess.run(announced(args), env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    return sum(line.startswith("write ") for line in proc.stdout.splitlines())


def kill_at_write(args: list[str], write: int) -> str:
    """Start `artistsim ARGS`; SIGKILL it once it announces atomic write number `write`.

    Returns the path that write was about to create. Fails (AssertionError) if the child
    ended before reaching that write.
    """
    proc = subprocess.Popen(announced(args, write), env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    target = None
    try:
        for line in proc.stdout:  # ends early only if the child exits before that write
            if line.startswith(f"write {write} "):
                target = line.split(" ", 2)[2].strip()
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
    assert target is not None, f"the child ended (exit {proc.returncode}) before its write {write}"
    assert proc.returncode == -signal.SIGKILL
    return target


def moments(writes: int, extra: int, seed: int) -> list[int]:
    """Writes to kill at: the first, then `extra` seeded ones among the others (if there are others)."""
    if writes < 2:
        return [1]
    return [1, *np.random.default_rng(seed).integers(2, writes + 1, extra).tolist()]
