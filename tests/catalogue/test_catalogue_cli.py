"""The catalogue verbs through the CLI, and a kill during `index add` leaving the catalogue whole."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from artistsim.catalogue.snapshot import open_snapshot
from artistsim.catalogue.store import Manifest
from artistsim.cli import main
from catalogue_cases import features, make_catalogue, write_run
from conftest import write_tiny_dataset
from kill_cases import kill_at_write, run_counting_writes


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_tiny_dataset(root / "data", n_train_artists=8, tracks=5)
    return data, write_run(root / "run")


def test_build_query_add_identify_audit(setup, tmp_path, capsys):
    data, run = setup
    cat = str(tmp_path / "cat")
    assert main(["-q", "index", "build", cat, "--data", str(data), "--run", str(run), "--split", "train"]) == 0
    assert "index flat" in capsys.readouterr().out
    assert main(["-q", "index", "build", cat, "--data", str(data), "--run", str(run)]) == 2  # exists
    assert "exists already" in capsys.readouterr().err
    tid = int((data / "train_meta.tsv").read_text().splitlines()[1].split("\t")[0])
    assert main(["query", cat, "--trackid", str(tid), "--k", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out[0]["neighbours"]) == 4 and tid not in [n["trackid"] for n in out[0]["neighbours"]]
    assert main(["query", cat, "--trackid", "999999"]) == 2
    assert "999999" in capsys.readouterr().err
    f = tmp_path / "4242.npy"
    np.save(f, features(4))
    assert main(["-q", "index", "add", cat, "--features", str(f), "--artist", "70"]) == 0
    assert open_snapshot(cat).size == 41
    assert main(["-q", "index", "add", cat, "--features", str(f)]) == 2  # duplicate trackid
    assert "4242" in capsys.readouterr().err
    bad = tmp_path / "5.npy"
    np.save(bad, np.zeros((100, 3), np.float32))
    assert main(["-q", "index", "add", cat, "--features", str(bad)]) == 2
    assert "5.npy" in capsys.readouterr().err
    assert main(["query", cat, "--features", str(f), "--k", "3"]) == 0
    assert "4242" in capsys.readouterr().out  # the added track is its own nearest
    assert main(["identify", cat, "--features", str(f), "--json"]) == 0
    ident = json.loads(capsys.readouterr().out)[0]
    assert len(ident["candidates"]) == 5 and isinstance(ident["known"], bool)
    assert main(["identify", cat, "--calibrate", "--far", "0.05"]) == 0
    assert "EER" in capsys.readouterr().out
    assert Manifest.read(Path(cat)).calibration["target_far"] == 0.05
    out_tsv = tmp_path / "audit.tsv"
    assert main(["audit", cat, "--top", "7", "--out", str(out_tsv)]) == 0
    lines = out_tsv.read_text().splitlines()
    assert lines[0].startswith("trackid\t") and len(lines) == 8


def test_changed_run_is_refused(setup, tmp_path, capsys):
    data, run = setup
    own_run = write_run(tmp_path / "run")
    cat = make_catalogue(tmp_path / "cat", data, own_run)
    write_run(own_run, seed=1)  # retrained in place: other weights
    assert main(["query", str(cat), "--trackid", "1"]) == 2
    assert "changed since the catalogue was built" in capsys.readouterr().err


_KILL_AT = """
import os, signal, sys
import numpy as np
from artistsim.catalogue import store
point = sys.argv[2]
real_save, real_manifest = np.save, store.atomic_write_text
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "segment":      # killed while writing the new segment's files
    calls = []
    def save(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            die()
        real_save(*a, **k)
    np.save = save
elif point == "manifest":   # killed after the segment, before the manifest switch
    store.atomic_write_text = die
rng = np.random.default_rng(0)
store.append(sys.argv[1], store.Part(rng.normal(size=(10, 16)).astype(np.float32),
             np.arange(900000, 900010), np.full(10, -1)))
"""


def _consistent(cat: Path, size: int) -> None:
    snap = open_snapshot(cat)
    assert snap.size == size
    assert (snap.rows_of(snap.trackids()) == np.arange(size)).all()
    assert np.isfinite(snap.vectors(np.arange(size))).all()
    scores, rows = snap.search(snap.vectors(np.arange(3)), 5)
    assert (rows >= 0).all()


@pytest.mark.parametrize("point", ["segment", "manifest"])
def test_kill_inside_an_add_leaves_the_previous_catalogue(setup, tmp_path, point):
    data, run = setup
    cat = make_catalogue(tmp_path / "cat", data, run)
    before = Manifest.read(cat).generation
    proc = subprocess.run([sys.executable, "-c", _KILL_AT, str(cat), point])
    assert proc.returncode == -signal.SIGKILL
    assert Manifest.read(cat).generation == before
    _consistent(cat, 40)
    assert main(["-q", "index", "add", str(cat), "--features", *_files(tmp_path, 2)]) == 0
    _consistent(cat, 42)
    names = {p.name for p in cat.iterdir()}
    m = Manifest.read(cat)
    assert names == {"manifest.json", ".lock", m.pipeline["arrays"], *({m.main} | set(m.tail))}


def _files(folder: Path, n: int) -> list[str]:
    out = []
    for i in range(n):
        p = folder / f"{700 + i}.npy"
        np.save(p, features(50 + i))
        out.append(str(p))
    return out


def test_sigkill_of_the_cli_during_index_add(setup, tmp_path):
    """A real `artistsim index add` killed at each of its atomic writes: the catalogue is the old or the new one.

    The child signals each write itself (kill_cases.py), so every kill lands inside the
    add, at a known step, however loaded the machine.
    """
    data, run = setup
    cat = make_catalogue(tmp_path / "cat", data, run)
    files = _files(tmp_path, 30)

    def fresh(offset: int) -> list[str]:  # the same tracks under new trackids: each add is a new one
        new = [str(tmp_path / f"{int(Path(f).stem) + offset}.npy") for f in files]
        for old, f in zip(files, new):
            Path(f).write_bytes(Path(old).read_bytes())
        return new

    size = open_snapshot(cat).size
    writes = run_counting_writes(["-q", "index", "add", str(cat), "--features", *fresh(1000)])
    assert writes >= 2 and open_snapshot(cat).size == size + len(files)  # a segment, then the manifest
    for k in range(1, writes + 1):
        size = open_snapshot(cat).size
        target = kill_at_write(["-q", "index", "add", str(cat), "--features", *fresh(1000 * (k + 1))], k)
        after = open_snapshot(cat).size
        assert after in (size, size + len(files)), f"killed before renaming {target}"
        _consistent(cat, after)
    size = open_snapshot(cat).size
    assert main(["-q", "index", "add", str(cat), "--features", *fresh(1000 * (writes + 2))]) == 0
    _consistent(cat, size + len(files))  # the next add after the kills goes through whole


def test_sharded_build_under_torchrun_equals_one_process(setup, tmp_path):
    data, run = setup
    one = make_catalogue(tmp_path / "one", data, run)
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "artistsim", "-q",
                           "index", "build", str(tmp_path / "two"), "--data", str(data), "--from-run", str(run),
                           "--split", "train"], capture_output=True, text=True,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = open_snapshot(one), open_snapshot(tmp_path / "two")
    assert (a.trackids() == b.trackids()).all()
    np.testing.assert_allclose(a.embeddings(), b.embeddings(), atol=1e-6)
