"""The allocator setting: freed buffers are reused without page faults, and it can be opted out of."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's"
)

# Allocate, fill and free a 64 MB tensor (above the 32 MB cap of glibc's dynamic mmap
# threshold) round after round; report the minor page faults per round once the heap has
# settled (the first rounds may still grow it).
PROBE = """
import json, resource, sys
import torch
from artistsim.runtime import allocator_tuned, tune_allocator
took = tune_allocator() if sys.argv[1] == "tune" else False
for _ in range(15):
    torch.ones(16 * 2**20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(16 * 2**20)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
print(json.dumps({"took": took, "tuned": allocator_tuned(), "faults": faults}))
"""


def probe(mode: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tuned_allocator_reuses_freed_buffers_without_page_faults():
    plain = probe("plain")
    tuned = probe("tune")
    assert not plain["tuned"] and tuned["took"] and tuned["tuned"]
    # 64 MB = 16,384 pages: glibc mmaps and unmaps it each round unless tuned.
    assert plain["faults"] > 8000  # every round touches fresh pages
    assert tuned["faults"] < 200


def test_allocator_left_alone_on_request():
    r = probe("tune", ARTISTSIM_MALLOC="default")
    assert not r["took"] and not r["tuned"]


def test_cli_tunes_the_allocator_for_looping_commands_only(monkeypatch, tmp_path):
    from artistsim import cli

    calls = []
    monkeypatch.setattr(cli, "tune_allocator", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert calls == []  # --help exits while parsing, before any work
    missing = str(tmp_path / "missing")
    assert cli.main(["score", missing + ".tsv", missing + "_gt.tsv"]) == 2
    assert calls == []  # one-shot: malloc left as it is
    assert cli.main(["embed", missing, "--run", missing, "--split", "test"]) == 2
    assert calls == [1]
