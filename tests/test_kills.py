"""SIGKILL at random moments of pack, train and predict leaves nothing of ours behind.

A kill cannot be cleaned up after by the killed process, so the promise is: outputs
under their final names are always whole (temp file + rename), and the next run of the
verb removes the killed run's temporary files. Each case runs the verb as a subprocess,
kills it once just as a temporary file of ours appears (mid-write, the worst moment) and
at seeded random moments of an uninterrupted run's duration, checking the outputs after
each kill; then re-runs the verb once and compares the folder with the uninterrupted run's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_dataset
from fault_cases import tiny_config

from artistsim.data.layout import read_meta
from artistsim.data.store import PackedStore, store_exists
from artistsim.embed import load_checkpoint
from artistsim.evaluation.submission import read_submission

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
RANDOM_KILLS = 1  # per verb, besides the kill at the first temp file: the suite must stay fast


# A slow disk: every rename waits, so a kill at the first temp file lands mid-write for sure.
SLOW_DISK = """
import os, sys, time
real = os.replace
def slow(src, dst):
    time.sleep(0.5)
    real(src, dst)
os.replace = slow
from artistsim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "artistsim", "-q", *map(str, args)]


def _slow(cmd: list[str]) -> list[str]:
    return [sys.executable, "-c", SLOW_DISK, *cmd[3:]]


def _run(cmd: list[str]) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return time.monotonic() - t0


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _kill(cmd: list[str], watch: Path, delay: float | None) -> None:
    """Start `cmd`; SIGKILL it after `delay` s, or (None) on a slow disk once a hidden file appears in `watch`."""
    before = set(os.listdir(watch)) if watch.is_dir() else set()
    proc = subprocess.Popen(_slow(cmd) if delay is None else cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + (delay if delay is not None else 120)
    while proc.poll() is None and time.monotonic() < deadline:
        if delay is None and watch.is_dir() and any(n.startswith(".") for n in set(os.listdir(watch)) - before):
            break
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _moments(clean_seconds: float, seed: int) -> list[float | None]:
    rng = np.random.default_rng(seed)
    return [None, *rng.uniform(0.3 * clean_seconds, 0.95 * clean_seconds, RANDOM_KILLS).tolist()]


def test_kill_pack(tmp_path):
    clean = write_tiny_dataset(tmp_path / "clean", n_train_artists=40, tracks=6)
    data = tmp_path / "data"
    shutil.copytree(clean, data)
    seconds = _run(_cli("pack", clean, "--dtype", "float32"))
    (data / "packed").mkdir()
    for moment in _moments(seconds, seed=1):
        _kill(_cli("pack", data, "--dtype", "float32", "--force"), data / "packed", moment)
        for split in ("train", "test"):
            if store_exists(data, split):  # whatever carries a final name is whole
                store = PackedStore.open(data, split, read_meta(data, split))
                assert store.frames.shape[0] == store.lengths.sum()
    _run(_cli("pack", data, "--dtype", "float32"))  # one run after all the kills cleans up after each
    assert _files(data) == _files(clean)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path, float]:
    root = tmp_path_factory.mktemp("kills")
    data = write_tiny_dataset(root / "data", n_train_artists=10)
    config = tiny_config(root, max_epochs=3)
    seconds = _run(_cli("train", data, "--config", config, "--out", root / "clean"))
    return data, config, root / "clean", seconds


def test_kill_train(trained, tmp_path):
    data, config, clean, seconds = trained
    run = tmp_path / "run"
    run.mkdir()
    for moment in _moments(seconds, seed=2):
        _kill(_cli("train", data, "--config", config, "--out", run, "--resume"), run, moment)
        for ckpt in run.glob("[!.]*.pt"):  # final names only: whole checkpoints
            load_checkpoint(ckpt)
    _run(_cli("train", data, "--config", config, "--out", run, "--resume"))
    assert _files(run) == _files(clean)


def test_kill_predict(trained, tmp_path):
    data, _, clean_run, _ = trained
    out = tmp_path / "out"
    out.mkdir()
    seconds = _run(_cli("predict", data, "--run", clean_run, "--out", out / "clean.tsv"))
    for moment in _moments(seconds, seed=3):
        _kill(_cli("predict", data, "--run", clean_run, "--out", out / "sub.tsv"), out, moment)
        if (out / "sub.tsv").exists():
            assert len(read_submission(out / "sub.tsv")) == len(read_meta(data, "test"))
    _run(_cli("predict", data, "--run", clean_run, "--out", out / "sub.tsv"))
    assert _files(out) == {"clean.tsv", "sub.tsv"}
