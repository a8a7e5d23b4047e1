"""SIGKILL at chosen moments of pack, train and predict leaves nothing of ours behind.

A kill cannot be cleaned up after by the killed process, so the promise is: outputs
under their final names are always whole (temp file + rename), and the next run of the
verb removes the killed run's temporary files. Each case runs the verb as a subprocess
and kills it at one of its atomic writes, signalled by the child itself (kill_cases.py):
the first write and a seeded random one of an uninterrupted run's writes, so the kill
lands where it is meant to whatever the machine's load. After each kill the outputs are
checked; then the verb is re-run once and the folder compared with the uninterrupted
run's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import write_tiny_dataset
from fault_cases import tiny_config
from kill_cases import kill_at_write, moments, run_counting_writes

from artistsim.data.layout import read_meta
from artistsim.data.store import PackedStore, store_exists
from artistsim.embed import load_checkpoint
from artistsim.evaluation.submission import read_submission

pytestmark = pytest.mark.slow
RANDOM_KILLS = 1  # per verb, besides the kill at the first write: the suite must stay fast


def _cli(*args: object) -> list[str]:
    return ["-q", *map(str, args)]


def _files(root: Path, logs: bool = True) -> set[str]:
    """Files under root; without TensorBoard's event files when logs=False (see test_kill_train)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
            and (logs or not p.name.startswith("events.out.tfevents."))}


def test_kill_pack(tmp_path):
    clean = write_tiny_dataset(tmp_path / "clean", n_train_artists=40, tracks=6)
    data = tmp_path / "data"
    shutil.copytree(clean, data)
    writes = run_counting_writes(_cli("pack", clean, "--dtype", "float32"))
    (data / "packed").mkdir()
    for moment in moments(writes, RANDOM_KILLS, seed=1):
        kill_at_write(_cli("pack", data, "--dtype", "float32", "--force"), moment)
        for split in ("train", "test"):
            if store_exists(data, split):  # whatever carries a final name is whole
                store = PackedStore.open(data, split, read_meta(data, split))
                assert store.frames.shape[0] == store.lengths.sum()
    run_counting_writes(_cli("pack", data, "--dtype", "float32"))  # one run after all the kills cleans up after each
    assert _files(data) == _files(clean)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path, int]:
    root = tmp_path_factory.mktemp("kills")
    data = write_tiny_dataset(root / "data", n_train_artists=10)
    config = tiny_config(root, max_epochs=3)
    writes = run_counting_writes(_cli("train", data, "--config", config, "--out", root / "clean"))
    return data, config, root / "clean", writes


def test_kill_train(trained, tmp_path):
    data, config, clean, writes = trained
    run = tmp_path / "run"
    run.mkdir()
    for moment in moments(writes, RANDOM_KILLS, seed=2):
        kill_at_write(_cli("train", data, "--config", config, "--out", run, "--resume"), moment)
        for ckpt in run.glob("[!.]*.pt"):  # final names only: whole checkpoints
            load_checkpoint(ckpt)
    run_counting_writes(_cli("train", data, "--config", config, "--out", run, "--resume"))
    # TensorBoard's event files are logs named by time and process: every run, a killed one
    # too, adds its own (holding the epochs it finished), and TensorBoard reads them as one run.
    assert _files(run, logs=False) == _files(clean, logs=False)
    assert any(name.startswith("events.out.tfevents.") for name in _files(run))


def test_kill_predict(trained, tmp_path):
    data, _, clean_run, _ = trained
    out = tmp_path / "out"
    out.mkdir()
    writes = run_counting_writes(_cli("predict", data, "--run", clean_run, "--out", out / "clean.tsv"))
    for moment in moments(writes, RANDOM_KILLS, seed=3):
        kill_at_write(_cli("predict", data, "--run", clean_run, "--out", out / "sub.tsv"), moment)
        if (out / "sub.tsv").exists():
            assert len(read_submission(out / "sub.tsv")) == len(read_meta(data, "test"))
    run_counting_writes(_cli("predict", data, "--run", clean_run, "--out", out / "sub.tsv"))
    assert _files(out) == {"clean.tsv", "sub.tsv"}
