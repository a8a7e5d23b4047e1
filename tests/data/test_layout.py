"""Reading the competition layout: both folder layouts, meta errors that name the row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import write_tiny_dataset

from artistsim.data.layout import (
    DataError,
    features_root,
    read_meta,
    scan_meta,
    scan_tsv,
)
from artistsim.data.paths import outside_paths_allowed, outside_rows
from artistsim.data.splits import full_batch, load_split
from artistsim.data.validate import validate_dataset


def test_reads_both_layouts(tmp_path):
    flat = load_split(write_tiny_dataset(tmp_path / "flat"), "train")
    nested = load_split(write_tiny_dataset(tmp_path / "nested", nested=True), "train")
    assert np.array_equal(flat.source.lengths, nested.source.lengths)
    rows = np.arange(3)
    assert np.array_equal(full_batch(flat.source, rows)[0], full_batch(nested.source, rows)[0])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ls: ls + [ls[1]], "first on line 2"),
        (lambda ls: ["trackid\tartist\tarchive_features_path"] + ls[1:], "missing column"),
        (lambda ls: ls[:1] + ["abc\t1\tx.npy"] + ls[2:], "line 2: column 'trackid' must be a plain integer"),
    ],
)
def test_meta_errors_name_row(tiny_data, edit, message):
    meta_file = tiny_data / "train_meta.tsv"
    meta_file.write_text("\n".join(edit(meta_file.read_text().splitlines())) + "\n")
    with pytest.raises(DataError, match=message):
        read_meta(tiny_data, "train")
    assert any(message in e for e in validate_dataset(tiny_data, progress=False).errors)


@pytest.mark.parametrize(
    "value, reason",
    [("12", None), ("+12", None), (" 7 ", None), ("9223372036854775807", None),
     ("9223372036854775808", "beyond the 64-bit"), ("99999999999999999999", "beyond the 64-bit"),
     ("-3", "non-negative"), ("1e3", "plain integer"), ("1.0", "plain integer"), ("inf", "plain integer"),
     ("nan", "plain integer"), ("", "is empty"), ("0x10", "plain integer")],
)
def test_ids_are_strict(tmp_path, value, reason):
    path = tmp_path / "gt.tsv"
    path.write_text(f"trackid\tartistid\n{value}\t5\n1\t5\n")
    scan = scan_tsv(path, ("trackid", "artistid"), ("trackid", "artistid"))
    if reason is None:
        assert scan.problems == [] and scan.table["trackid"].iloc[0] == int(value)
    else:
        assert len(scan.problems) == 1 and "line 2: column 'trackid'" in scan.problems[0] and reason in scan.problems[0]
        with pytest.raises(DataError, match=reason):
            scan.raise_if_bad()


def test_scan_collects_every_bad_row_and_read_meta_counts_them(tiny_data):
    meta_file = tiny_data / "train_meta.tsv"
    lines = meta_file.read_text().splitlines()
    for i in (1, 3, 5):
        lines[i] = "x\t" + lines[i].split("\t", 1)[1]
    lines[7] = "\t".join(lines[7].split("\t")[:2] + [""])
    meta_file.write_text("\n".join(lines) + "\n")
    assert len(scan_meta(tiny_data, "train").problems) == 4
    with pytest.raises(DataError, match=r"line 2: .*\(and 3 more problem\(s\)"):
        read_meta(tiny_data, "train")


def test_outside_rows_and_policy(tiny_data):
    paths = pd.Series(["a/b.npy", "/etc/x.npy", "../x.npy", "a/../../x.npy", "a/..b.npy", "C:\\x.npy", "a\\..\\..\\x"])
    assert outside_rows(paths).tolist() == [False, True, True, True, False, True, True]
    meta_file = tiny_data / "train_meta.tsv"
    lines = meta_file.read_text().splitlines()
    lines[1] = "\t".join(lines[1].split("\t")[:2] + ["../../elsewhere.npy"])
    meta_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 2: archive_features_path leaves train_features/"):
        read_meta(tiny_data, "train")
    with outside_paths_allowed():
        assert read_meta(tiny_data, "train")["archive_features_path"].iloc[0] == "../../elsewhere.npy"


def test_features_root_decided_by_the_directory(tmp_path):
    data = write_tiny_dataset(tmp_path / "d", nested=True)
    rel = read_meta(data, "train")["archive_features_path"].tolist()
    nested = data / "train_features" / "train_features"
    (nested / rel[0]).unlink()
    assert features_root(data, "train", rel[:1]) == nested  # the missing first file does not decide
    (data / "train_features" / "stray.txt").write_text("x")  # a sibling: the sample of files decides
    assert features_root(data, "train", rel) == nested


def _reshape_dataset(root, dim: int) -> None:
    """Cut every feature file of a tiny dataset to its first `dim` rows and record D = dim."""
    from artistsim.data.provenance import Frontend, write_frontend

    for path in root.glob("*_features/*/*.npy"):
        np.save(path, np.load(path)[:dim])
    write_frontend(root, Frontend("elsewhere", "1", dim, {}))


def test_frames_of_any_dimension_are_read_validated_and_packed(tmp_path):
    from artistsim.data.layout import feature_dim
    from artistsim.data.store import pack_split

    root = write_tiny_dataset(tmp_path / "d")
    _reshape_dataset(root, 24)
    assert feature_dim(root) == 24
    assert validate_dataset(root, progress=False).ok
    split = load_split(root, "train", progress=False)
    x, lengths = full_batch(split.source, np.arange(3))
    assert x.shape[2] == 24
    for s in ("train", "test"):
        pack_split(root, s, dtype="float32")
    packed = load_split(root, "train", progress=False)
    np.testing.assert_array_equal(full_batch(packed.source, np.arange(3))[0], x)


def test_a_file_of_another_dimension_than_the_record_names_both(tmp_path):
    root = write_tiny_dataset(tmp_path / "d")
    _reshape_dataset(root, 24)
    bad = sorted(root.glob("train_features/*/*.npy"))[0]
    np.save(bad, np.zeros((512, 5), np.float32))
    report = validate_dataset(root, progress=False)
    assert not report.ok
    assert any(f"{bad}: expected 24 rows (features, as frontend.json's dim says), got shape (512, 5)" in e
               for e in report.errors)


def test_a_store_packed_for_another_dimension_is_refused(tmp_path):
    from artistsim.data.store import PackedStore, pack_split

    root = write_tiny_dataset(tmp_path / "d")
    pack_split(root, "train", dtype="float32")
    _reshape_dataset(root, 24)
    with pytest.raises(DataError, match="store holds 512-d frames, frontend.json says 24"):
        PackedStore.open(root, "train")
