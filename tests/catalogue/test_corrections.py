"""Curators' decisions (corrections.tsv) and relabelling a catalogue in a new generation."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue_cases import make_catalogue, write_run
from conftest import write_tiny_dataset

from artistsim.catalogue import corrections
from artistsim.catalogue.corrections import relabel
from artistsim.catalogue.snapshot import open_snapshot
from artistsim.catalogue.store import CatalogueError, Manifest
from artistsim.cli import main


@pytest.fixture
def cat(tmp_path):
    data = write_tiny_dataset(tmp_path / "data")
    return make_catalogue(tmp_path / "cat", data, write_run(tmp_path / "run"))


def test_relabel_writes_new_segments_and_leaves_the_old_generation_intact(cat):
    before = open_snapshot(cat)  # an open reader of the old generation (memory-mapped)
    old_manifest = Manifest.read(cat)
    tids = before.trackids()[[0, 5]]
    old_labels = before.artists().copy()
    relabel(cat, tids, np.array([77, 91]))
    after = open_snapshot(cat)
    assert after.generation == old_manifest.generation + 1
    assert after.artists()[after.rows_of(tids)].tolist() == [77, 91]
    changed = np.flatnonzero(after.artists() != old_labels)
    assert sorted(after.trackids()[changed].tolist()) == sorted(tids.tolist())
    assert np.array_equal(before.artists(), old_labels)  # what the old reader sees did not move
    assert np.array_equal(np.asarray(after.main.embeddings), np.asarray(before.main.embeddings))
    assert main(["index", "check", str(cat)]) == 0  # the new generation's files are recorded and intact
    with pytest.raises(CatalogueError, match="not in the catalogue: \\[424242\\]"):
        relabel(cat, np.array([424242]), np.array([1]))
    assert Manifest.read(cat).generation == after.generation  # nothing written


def test_record_then_apply_takes_each_tracks_last_decision(cat):
    snap = open_snapshot(cat)
    a, b, c = (int(t) for t in snap.trackids()[:3])
    la = int(snap.artists()[0])
    corrections.record(cat, a, la, 500, "move", "alice")
    corrections.record(cat, a, la, la, "confirm", "bob")  # later: the label was right after all
    corrections.record(cat, b, int(snap.artists()[1]), 501, "move", "alice")
    corrections.record(cat, c, int(snap.artists()[2]), 0, "skip", "alice")
    log = corrections.read(cat / corrections.CORRECTIONS)
    assert log["decision"].tolist() == ["move", "confirm", "move", "skip"]
    assert log["new_artist"].tolist()[3] == int(snap.artists()[2])  # a skip moves nothing
    new, n = corrections.apply(cat, cat / corrections.CORRECTIONS, snap)
    assert n == 1 and new is not None
    after = open_snapshot(cat)
    assert after.artists()[after.rows_of(np.array([a, b, c]))].tolist() == [la, 501, int(snap.artists()[2])]
    again, n2 = corrections.apply(cat, cat / corrections.CORRECTIONS, after)
    assert again is None and n2 == 0
    with pytest.raises(ValueError, match="already labelled"):
        corrections.record(cat, a, la, la, "move", "alice")


def test_index_relabel_cli(cat, tmp_path, capsys):
    snap = open_snapshot(cat)
    tid = int(snap.trackids()[4])
    good = tmp_path / "corrections.tsv"
    good.write_text(f"trackid\told_artist\tnew_artist\tdecision\twho\twhen\n{tid}\t1\t321\tmove\tme\t2026-01-01T00:00:00Z\n")
    assert main(["index", "relabel", str(cat), str(good)]) == 0
    assert "relabelled 1 tracks" in capsys.readouterr().out
    after = open_snapshot(cat)
    assert int(after.artists()[after.rows_of(np.array([tid]))[0]]) == 321
    for text, words in (("trackid\tnew_artist\tdecision\nx\t1\tmove\n", "line 2: trackid must be a plain integer"),
                        ("trackid\tnew_artist\tdecision\n1\t1\tdelete\n", "row 2: decision must be one of"),
                        ("trackid\tdecision\n1\tmove\n", "no 'new_artist' column"),
                        ("trackid\tnew_artist\tdecision\n424242\t1\tmove\n", "424242 is not in the catalogue")):
        bad = tmp_path / "bad.tsv"
        bad.write_text(text)
        assert main(["index", "relabel", str(cat), str(bad)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1
    assert Manifest.read(cat).generation == after.generation
    assert main(["index", "relabel", str(cat), str(tmp_path / "missing.tsv")]) == 2
