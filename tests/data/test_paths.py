"""Meta paths stay inside the data directory: symbolic links that leave it are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_tiny_dataset

from artistsim.cli import main
from artistsim.data.layout import DataError, read_meta
from artistsim.data.paths import escaping_links, outside_paths_allowed
from artistsim.data.splits import load_split
from artistsim.data.validate import validate_dataset


def _link_out(data: Path, outside: Path, row: int) -> str:
    """Move train row `row`'s file outside `data` and leave a link to it in its place."""
    rel = read_meta(data, "train")["archive_features_path"].iloc[row]
    src = data / "train_features" / rel
    outside.mkdir(parents=True, exist_ok=True)
    target = outside / src.name
    shutil.move(src, target)
    src.symlink_to(target)
    return rel


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")


def test_a_file_linked_outside_is_refused_by_readers_and_listed_by_validate(data, tmp_path):
    rel = _link_out(data, tmp_path / "elsewhere", row=2)
    with pytest.raises(DataError, match=rf"train_meta.tsv line 4: .*{rel}: symbolic link to .*elsewhere"):
        load_split(data, "train")
    report = validate_dataset(data, progress=False)
    linked = [e for e in report.errors if "symbolic link" in e]
    assert len(linked) == 1 and "line 4" in linked[0] and "--allow-outside-paths" in linked[0]
    with outside_paths_allowed():
        assert load_split(data, "train").source.lengths.min() > 0
        assert not [e for e in validate_dataset(data, progress=False).errors if "symbolic link" in e]


def test_a_linked_folder_leaving_the_data_dir_refuses_every_row_under_it(data, tmp_path):
    folder = data / "train_features" / "3"
    rows = read_meta(data, "train")["archive_features_path"].str.startswith("3/").to_numpy()
    shutil.move(folder, tmp_path / "moved")
    folder.symlink_to(tmp_path / "moved", target_is_directory=True)
    rel = read_meta(data, "train")["archive_features_path"].tolist()
    escaped = escaping_links(data, data / "train_features", rel)
    assert sorted(escaped) == np.flatnonzero(rows).tolist() and len(escaped) > 0


def test_links_that_stay_inside_the_data_dir_are_fine(data):
    """Dataset managers (git-annex, DVC's link cache) keep objects under the same tree."""
    meta = read_meta(data, "train")
    rel = meta["archive_features_path"].iloc[0]
    src = data / "train_features" / rel
    store = data / ".annex" / "objects"
    store.mkdir(parents=True)
    shutil.move(src, store / "obj.npy")
    src.symlink_to(store / "obj.npy")
    assert escaping_links(data, data / "train_features", meta["archive_features_path"].tolist()) == {}
    assert len(load_split(data, "train").meta) == len(meta)


def test_pack_names_the_row_in_one_line(data, tmp_path, capsys):
    _link_out(data, tmp_path / "elsewhere", row=0)
    capsys.readouterr()
    assert main(["-q", "pack", str(data)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "train_meta.tsv line 2" in err[0] and "symbolic link" in err[0], err
    assert main(["-q", "--allow-outside-paths", "pack", str(data)]) == 0


def test_no_links_costs_one_walk_and_finds_nothing(data):
    rel = pd.Series(read_meta(data, "train")["archive_features_path"]).tolist()
    assert escaping_links(data, data / "train_features", rel) == {}


def test_paths_read_from_any_file_stay_in_their_folder(tmp_path):
    """escaping_rows / inside: the policy for featurize manifests and catalogue manifests."""
    from artistsim.data.paths import PathError, escaping_rows, inside

    base = tmp_path / "base"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "ok.wav").write_bytes(b"x")
    (tmp_path / "out.wav").write_bytes(b"x")
    (base / "in_link.wav").symlink_to(base / "sub" / "ok.wav")
    (base / "out_link.wav").symlink_to(tmp_path / "out.wav")
    rows = ["sub/ok.wav", "in_link.wav", "../out.wav", str(tmp_path / "out.wav"), "out_link.wav", "sub/../sub/ok.wav"]
    found = escaping_rows(base, rows)
    assert sorted(found) == [2, 3, 4, 5]
    assert "'..'" in found[2] and "absolute" in found[3] and "symbolic link" in found[4]
    with pytest.raises(PathError, match=r"^manifest.json: field 'main' is absolute .*--allow-outside-paths"):
        inside(base, "/etc", "manifest.json: field 'main'")
    with outside_paths_allowed():
        assert escaping_rows(base, rows) == {}
        assert inside(base, "../x", "w") == base / "../x"
