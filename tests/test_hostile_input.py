"""Issue 20's fault matrix (tests/hostile_cases.py) run against the batch verbs.

Every row: exit status 2, one line `artistsim VERB: error: ...` naming the place, no
traceback, no planted secret echoed, and the workspace byte-for-byte unchanged (nothing
written, not even an empty output folder). The verbs run in this process (no start-up
per case); one dataset, run and pair of catalogues serve the whole module.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from catalogue.catalogue_cases import write_run
from conftest import write_tiny_dataset
from fault_cases import assert_one_line_error
from hostile_cases import CASES, SECRET, Case, Workspace

from artistsim.catalogue.build import build_catalogue
from artistsim.cli import main
from artistsim.audio.descriptor import frontend
from artistsim.data.provenance import write_frontend


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    data = write_tiny_dataset(root / "data", n_train_artists=6, tracks=4)
    run = write_run(root / "run")
    for folder in (data, run):  # featurize's front end: the catalogue takes audio, whose faults are cases
        write_frontend(folder, frontend())
    build_catalogue(root / "cat", data, [run], ["train"], index="flat", progress=False)
    build_catalogue(root / "hnsw", data, [run], ["train"], index="hnsw", progress=False)
    np.save(root / "4242.npy", np.random.default_rng(0).normal(size=(512, 30)).astype(np.float32))
    (root / "secret.txt").write_text(SECRET + "\n")
    return root


def _workspace(base: Path, to: Path) -> Workspace:
    shutil.copytree(base, to, symlinks=True)
    return Workspace(to, to / "data", to / "cat", to / "hnsw", base / "run", to / "4242.npy", base / "secret.txt")


def _tree(root: Path) -> dict[str, str]:
    """Every entry under root: folders as 'dir', files by content hash, links by target."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = f"link {p.readlink()}"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def _run(capsys, argv: list) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(["-q", *[str(a) for a in argv]])
    except SystemExit as stop:  # a usage error, reported by argparse
        code = stop.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_refused_in_one_line_and_nothing_is_written(base, tmp_path, capsys, case: Case):
    ws = _workspace(base, tmp_path / "ws")
    argv = case.argv(ws)
    before = _tree(ws.root)
    code, err = _run(capsys, argv)
    assert_one_line_error(code, err, case.verb, *case.needles(ws))
    assert SECRET not in err and "root:" not in err, err
    assert _tree(ws.root) == before


def test_the_matrix_covers_every_verb_the_issue_names():
    verbs = {c.verb.split()[0] for c in CASES}
    assert {"query", "index", "identify", "featurize", "pack", "predict", "serve"} <= verbs
    assert len({c.name for c in CASES}) == len(CASES)
