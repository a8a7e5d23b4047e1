"""Names in the catalogue: read from featurize tables or a --names TSV, kept per generation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from catalogue_cases import make_catalogue, write_run
from conftest import write_tiny_dataset

from artistsim.catalogue.names import Names, gather, read_names, read_table
from artistsim.catalogue.store import CatalogueError, Manifest
from artistsim.cli import main
from artistsim.data.errors import DataError


def featurize_tables(data: Path, audio_root: Path) -> None:
    """tracks.tsv / artists.tsv as `featurize` writes them (paths relative to the folder it read)."""
    (data / "tracks.tsv").write_text(
        "trackid\tpath\tsplit\tartistid\tartist\tduration\tframes\tstatus\treason\n"
        "1003\tband/a.wav\ttrain\t70\tThe Band\t12.5\t81\tok\t\n"
        "1006\tband/b.wav\ttrain\t70\tThe Band\t3.0\t81\tok\t\n"
        "9999\tbroken.mp3\ttrain\t70\tThe Band\t\t\tskipped\tdecode: bad\n")
    (data / "artists.tsv").write_text("artistid\tartist\n70\tThe Band\n77\tSoloist\n")
    (audio_root / "band").mkdir(parents=True, exist_ok=True)


def test_build_keeps_names_of_a_featurize_folder(tmp_path):
    data = write_tiny_dataset(tmp_path / "data")
    featurize_tables(data, tmp_path / "music")
    run = write_run(tmp_path / "run")
    cat = tmp_path / "cat"
    assert main(["index", "build", str(cat), "--data", str(data), "--run", str(run), "--split", "train",
                 "--audio-root", str(tmp_path / "music")]) == 0
    manifest = Manifest.read(cat)
    names = read_names(cat, manifest)
    assert names.artists == {70: "The Band", 77: "Soloist"}
    assert names.tracks[1003] == (str(tmp_path / "music" / "band" / "a.wav"), 12.5)
    assert 9999 not in names.tracks  # skipped by featurize: no features, no entry
    assert names.roots == [str(tmp_path / "music")]
    assert manifest.names == f"names-{manifest.generation:06d}.json"
    assert main(["index", "check", str(cat)]) == 0  # the names file is recorded with its checksum
    assert manifest.files[manifest.names]["size"] == (cat / manifest.names).stat().st_size
    # an add with a --names TSV merges into a new names file (the old one is swept by a later writer)
    extra = tmp_path / "more.tsv"
    extra.write_text("trackid\tartistid\tartist\n1006\t77\tSoloist Renamed\n")
    feats = tmp_path / "5555.npy"
    import numpy as np

    np.save(feats, np.random.default_rng(0).normal(size=(512, 20)).astype(np.float32))
    assert main(["index", "add", str(cat), "--features", str(feats), "--names", str(extra)]) == 0
    later = Manifest.read(cat)
    merged = read_names(cat, later)
    assert merged.artists[77] == "Soloist Renamed" and merged.tracks[1003][1] == 12.5
    assert later.names != manifest.names and (cat / later.names).is_file()


def test_bad_names_tables_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "names.tsv"
    bad.write_text("trackid\tartistid\tartist\n12\t3\tA\nx\t4\tB\n")
    with pytest.raises(DataError, match=r"names.tsv line 3: trackid must be a plain integer"):
        read_table(bad)
    (tmp_path / "none.tsv").write_text("id\tname\n1\ta\n")
    with pytest.raises(CatalogueError, match="no 'trackid' column"):
        gather(None, tmp_path / "none.tsv", None)
    data = write_tiny_dataset(tmp_path / "data")
    run = write_run(tmp_path / "run")
    code = main(["index", "build", str(tmp_path / "cat"), "--data", str(data), "--run", str(run), "--names", str(bad)])
    assert code == 2 and not (tmp_path / "cat" / "manifest.json").exists()  # refused before any work
    assert "line 3" in capsys.readouterr().err


def test_audio_file_stays_inside_the_roots(tmp_path):
    root, outside = tmp_path / "music", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    (root / "ok.wav").write_bytes(b"x")
    (outside / "secret.wav").write_bytes(b"y")
    (root / "link.wav").symlink_to(outside / "secret.wav")
    names = Names({}, {1: (str(root / "ok.wav"), None), 2: (str(root / "link.wav"), None),
                       3: (str(root / ".." / "private" / "secret.wav"), None), 4: (str(root / "gone.wav"), None)},
                  [str(root)])
    assert names.audio_file(1) == (root / "ok.wav").resolve()
    assert [names.audio_file(t) for t in (2, 3, 4, 5)] == [None] * 4
    assert Names.from_json(names.to_json(), "x").tracks == names.tracks


def test_catalogues_without_names_read_as_empty(tmp_path):
    data = write_tiny_dataset(tmp_path / "data")
    cat = make_catalogue(tmp_path / "cat", data, write_run(tmp_path / "run"))
    manifest = Manifest.read(cat)
    assert manifest.names is None and not read_names(cat, manifest)
    assert "names" in json.loads((cat / "manifest.json").read_text())
