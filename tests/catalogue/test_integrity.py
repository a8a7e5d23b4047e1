"""Catalogue integrity: records written with every generation, `index check`, adds on damage refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from artistsim.catalogue.integrity import check_catalogue
from artistsim.catalogue.manifest import CatalogueError, Manifest
from artistsim.runs import file_sha256
from artistsim.catalogue.store import Part, append
from artistsim.cli import main
from catalogue_cases import make_catalogue, write_run
from conftest import write_tiny_dataset


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("integrity")
    data = write_tiny_dataset(root / "data", n_train_artists=6, tracks=4)
    return make_catalogue(root / "cat", data, write_run(root / "run"), index="hnsw")


@pytest.fixture
def cat(built, tmp_path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "cat"))


def _part(n: int, first_id: int, dim: int = 16) -> Part:
    e = np.random.default_rng(first_id).normal(size=(n, dim)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return Part(e, np.arange(first_id, first_id + n), np.full(n, -1))


def test_every_named_file_is_recorded_and_records_follow_the_generations(cat):
    m = Manifest.read(cat)
    assert sorted(m.files) == sorted(m.named_files(cat)) and m.index["file"] in m.files
    assert all(m.files[f]["sha256"] == file_sha256(cat / f) for f in m.files)
    new = append(cat, _part(3, 90_000), compact=False, checksums=True)
    assert sorted(new.files) == sorted(new.named_files(cat)) and len(new.tail) == 1
    assert check_catalogue(cat).ok


def test_index_check_exit_0_when_intact_and_1_with_a_line_per_problem(cat, capsys):
    capsys.readouterr()
    assert main(["index", "check", str(cat)]) == 0
    assert "ok (generation" in capsys.readouterr().out
    m = Manifest.read(cat)
    seg = cat / m.main / "embeddings.npy"
    data = bytearray(seg.read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"  # same size, one value now inf: only the checksum sees it at once
    seg.write_bytes(bytes(data))
    (cat / m.main / "artists.npy").write_bytes((cat / m.main / "artists.npy").read_bytes()[:-8])
    (cat / m.index["file"]).write_bytes(b"\0" * 100)
    assert main(["index", "check", str(cat)]) == 1
    out = capsys.readouterr().out.splitlines()
    damaged = [line for line in out if line.startswith("DAMAGED")]
    assert len(damaged) == 3, out
    assert any("embeddings.npy: SHA-256 differs" in d for d in damaged)
    assert any("artists.npy" in d and "truncated" in d for d in damaged)
    assert any(".faiss" in d for d in damaged)


def test_adds_are_refused_on_a_damaged_generation_and_nothing_changes(cat):
    m = Manifest.read(cat)
    seg = cat / m.main / "trackids.npy"
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0x01  # same size, other bytes
    seg.write_bytes(bytes(data))
    before = sorted(p.name for p in cat.iterdir())
    append(cat, _part(2, 91_000), compact=False, checksums=False)  # the service's cheap check: sizes only
    with pytest.raises(CatalogueError, match=r"trackids.npy: SHA-256 differs.*nothing was added"):
        append(cat, _part(2, 92_000), compact=False, checksums=True)
    assert Manifest.read(cat).generation == m.generation + 1
    assert len(sorted(p.name for p in cat.iterdir())) == len(before) + 1  # only the first add's segment


def test_a_catalogue_written_before_records_still_opens_checks_and_grows(cat):
    path = cat / "manifest.json"
    d = json.loads(path.read_text())
    del d["files"]
    path.write_text(json.dumps(d))
    assert check_catalogue(cat).ok
    new = append(cat, _part(2, 93_000), compact=False, checksums=True)
    assert sorted(new.files) == sorted(new.named_files(cat))  # records added as it grows


def test_negative_or_zero_vectors_are_never_stored(cat):
    part = _part(2, 94_000)
    with pytest.raises(CatalogueError, match="non-negative"):
        append(cat, Part(part.embeddings, np.array([-5, 94_001]), part.artists))
    with pytest.raises(CatalogueError, match="zero vectors"):
        append(cat, Part(np.zeros_like(part.embeddings), part.trackids, part.artists))
