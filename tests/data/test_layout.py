"""Reading the competition layout: both folder layouts, meta errors that name the row."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_tiny_dataset

from artistsim.data.layout import DataError, read_meta
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
