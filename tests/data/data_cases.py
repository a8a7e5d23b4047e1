"""Small helpers shared by the data tests."""

from __future__ import annotations

from pathlib import Path

from artistsim.data.layout import read_meta


def _first_feature(root: Path) -> Path:
    meta = read_meta(root, "train")
    return root / "train_features" / meta["archive_features_path"].iloc[0]
