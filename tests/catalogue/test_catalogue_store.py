"""The on-disk catalogue: generations, refused adds, compaction into a rebuilt index, snapshot search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from artistsim.catalogue.snapshot import open_snapshot
from artistsim.catalogue.store import CatalogueError, Manifest, Part, append, create
from artistsim.search.exact import search


def part(n: int, start: int, d: int = 16, seed: int = 0) -> Part:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return Part(x / np.linalg.norm(x, axis=1, keepdims=True), np.arange(start, start + n), np.full(n, -1))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq"])
def test_search_matches_exact_search_over_main_and_tail(tmp_path, kind):
    create(tmp_path, part(2000, 0), runs=[], embed={}, index=kind)
    append(tmp_path, part(50, 10_000, seed=1), compact=False)
    snap = open_snapshot(tmp_path)
    assert snap.size == 2050 and len(snap.tail) == 50 and (snap.index is None) == (kind == "flat")
    allx = snap.embeddings()
    q = allx[[3, 2010]]
    scores, rows = snap.search(q, 10, exclude=np.array([3, 2010]))
    ref_s, ref_r = search(q, allx, 10, exclude=np.array([3, 2010]))
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, ref_r)])
    assert overlap >= (1.0 if kind == "flat" else 0.8)
    assert 3 not in rows[0] and 2010 not in rows[1]
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_ivfpq_lists_stay_on_disk_and_scores_are_exact(tmp_path):
    import faiss

    create(tmp_path, part(3000, 0, d=32), runs=[], embed={}, index="ivfpq")
    snap = open_snapshot(tmp_path)
    lists = faiss.downcast_InvertedLists(snap.index.invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists)  # memory-mapped from the index file
    q = snap.vectors(np.array([7, 1500]))
    scores, rows = snap.search(q, 20, exclude=np.array([7, 1500]))
    exact = np.einsum("qkd,qd->qk", snap.vectors(rows.ravel()).reshape(2, 20, -1), q)
    np.testing.assert_allclose(scores, exact, rtol=1e-5, atol=1e-6)  # re-scored, not PQ's estimates


def test_hnsw_index_is_memory_mapped_and_answers_like_a_copy_read_whole(tmp_path):
    import faiss

    from artistsim.catalogue.snapshot import EF_SEARCH

    create(tmp_path, part(3000, 0, d=32), runs=[], embed={}, index="hnsw")
    snap = open_snapshot(tmp_path)
    path = tmp_path / Manifest.read(tmp_path).index["file"]
    maps = Path("/proc/self/maps")
    if maps.exists():  # Linux: the file is mapped (shared by every process serving it), not copied
        assert str(path) in maps.read_text()
    whole = faiss.read_index(str(path))
    whole.hnsw.efSearch = EF_SEARCH
    q = snap.vectors(np.arange(0, 3000, 97))
    assert np.array_equal(snap.index.search(q, 20)[1], whole.search(q, 20)[1])


def test_adds_are_generations_and_refuse_bad_tracks(tmp_path):
    m1 = create(tmp_path, part(100, 0), runs=[], embed={}, index="flat")
    with pytest.raises(CatalogueError, match="exists already"):
        create(tmp_path, part(100, 0), runs=[], embed={})
    with pytest.raises(CatalogueError, match="already in the catalogue"):
        append(tmp_path, part(3, 98))
    with pytest.raises(CatalogueError, match="dimension 8"):
        append(tmp_path, part(3, 500, d=8))
    bad = part(3, 600)
    bad.embeddings[1, 2] = np.nan
    with pytest.raises(CatalogueError, match="NaN"):
        append(tmp_path, bad)
    assert Manifest.read(tmp_path).generation == m1.generation  # nothing changed
    m2 = append(tmp_path, part(3, 700))
    assert m2.generation == m1.generation + 1 and open_snapshot(tmp_path).size == 103


def test_compaction_merges_the_tail_into_a_rebuilt_index(tmp_path):
    create(tmp_path, part(1000, 0), runs=[], embed={}, index="hnsw")
    m = append(tmp_path, part(20, 5000, seed=2), compact=True)
    assert m.tail == [] and m.index["file"].endswith(".faiss")
    snap = open_snapshot(tmp_path)
    assert snap.index.ntotal == 1020 and len(snap.tail) == 0
    assert snap.rows_of(np.array([5019, 7, 123456])).tolist() == [1019, 7, -1]
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {"manifest.json", ".lock", m.main, m.index["file"]}  # the replaced ones swept


def test_with_tail_leaves_the_old_snapshot_untouched(tmp_path):
    create(tmp_path, part(50, 0), runs=[], embed={}, index="flat")
    old = open_snapshot(tmp_path)
    new = old.with_tail(part(5, 100, seed=3), old.generation + 1)
    assert old.size == 50 and new.size == 55 and new.rows_of(np.array([104]))[0] == 54


def test_many_small_adds_are_merged_into_one_tail_segment(tmp_path, monkeypatch):
    from artistsim.catalogue import store

    monkeypatch.setattr(store, "MAX_TAIL_SEGMENTS", 3)
    create(tmp_path, part(30, 0), runs=[], embed={}, index="flat")
    for i in range(5):
        m = append(tmp_path, part(2, 100 + 10 * i, seed=i), compact=False)
    assert len(m.tail) <= 3
    snap = open_snapshot(tmp_path)
    assert snap.size == 40 and (snap.rows_of(np.array([100, 141])) >= 0).all()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("seg-")]) == 1 + len(m.tail)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "ivfpq"])
def test_plda_catalogue_finds_the_llr_top_k_over_main_tail_and_compaction(tmp_path, kind):
    """Under the PLDA back end every index kind (L2 over the tracks' points; the exact parts over their keys)
    finds the brute-force LLR top-k, before and after the tail is compacted into a rebuilt index."""
    from artistsim.scoring.plda import PairLLR
    from artistsim.search.backend import Plda

    rng = np.random.default_rng(3)
    labels = np.arange(2050) // 5
    x = rng.normal(size=(labels.max() + 1, 16))[labels] + rng.normal(size=(2050, 16)) * np.geomspace(0.1, 2, 16)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    backend = Plda(PairLLR.fit(x, labels, 0.2))
    ids = np.arange(2050)
    create(tmp_path, Part(x[:2000], ids[:2000], np.full(2000, -1)), runs=[], embed={}, index=kind, backend=backend)
    for compact in (False, True):
        if not compact:
            append(tmp_path, Part(x[2000:], ids[2000:], np.full(50, -1)), compact=False, backend=backend)
        else:
            append(tmp_path, Part(x[2049:], np.array([99_999]), np.full(1, -1)), compact=True,
                   backend=backend)
        snap = open_snapshot(tmp_path, backend=backend)
        allx = snap.embeddings()
        q = allx[[3, 2010]]
        _, rows = snap.search(q, 10, exclude=np.array([3, 2010]))
        llr = backend.model.llr(q, allx)
        llr[[0, 1], [3, 2010]] = -np.inf
        ref = np.argsort(-llr, axis=1)[:, :10]
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, ref)])
        assert overlap >= (1.0 if kind == "flat" else 0.8), (compact, overlap)
