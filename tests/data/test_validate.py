"""validate: every bad feature file named with its meta line; warnings for unscorable artists."""

from __future__ import annotations

import numpy as np
import pytest
from data_cases import _first_feature

from artistsim.data.validate import validate_dataset


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.unlink(), "not found"),
        (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated"),
        (lambda p: np.save(p, np.zeros((20, 512), np.float32)), "transposed"),
        (lambda p: np.save(p, np.zeros((256, 20), np.float32)), "512 rows"),
        (lambda p: np.save(p, np.zeros((512, 90), np.float32)), "T <= 81"),
        (lambda p: np.save(p, np.zeros((512,), np.float32)), "2-D"),
        (lambda p: np.save(p, np.full((512, 9), np.inf, np.float32)), "NaN/Inf"),
    ],
)
def test_validate_names_bad_file(tiny_data, damage, message):
    path = _first_feature(tiny_data)
    damage(path)
    report = validate_dataset(tiny_data, progress=False)
    assert not report.ok
    assert any(message in e and path.name in e and "line 2" in e for e in report.errors), report.errors


def test_validate_clean_and_single_track_artist(tiny_data):
    assert validate_dataset(tiny_data, progress=False).ok
    meta_file = tiny_data / "train_meta.tsv"
    lines = meta_file.read_text().splitlines()
    tid, _, path = lines[1].split("\t")
    lines[1] = f"{tid}\t555555\t{path}"
    meta_file.write_text("\n".join(lines) + "\n")
    report = validate_dataset(tiny_data, progress=False)
    assert report.ok and any("one track" in w and "555555" in w for w in report.warnings)
