"""Shared fixtures: a tiny dataset in the competition layout, written directly with numpy.

Kept independent of `artistsim.synth` so that data-layer tests do not depend on the
generator they would otherwise be testing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_tiny_dataset(root: Path, n_train_artists: int = 6, n_test_artists: int = 3, tracks: int = 4,
                       seed: int = 0, nested: bool = False, dim: int = 512) -> Path:
    """Write train/test meta, features (dim, T) and test_gt.tsv; artist k's frames centre on a random vector."""
    rng = np.random.default_rng(seed)
    tid = 1000
    gt_rows = []
    for split, n_artists, base_artist in (("train", n_train_artists, 70), ("test", n_test_artists, 900)):
        folder = root / f"{split}_features"
        if nested:
            folder = folder / f"{split}_features"
        lines = ["trackid\tartistid\tarchive_features_path" if split == "train" else "trackid\tarchive_features_path"]
        for a in range(n_artists):
            artist = base_artist + 7 * a
            centre = rng.normal(size=(dim, 1)).astype(np.float32)
            for _ in range(tracks):
                tid += 3
                length = int(rng.choice([81, 81, 30, 5]))
                arr = (centre + 0.5 * rng.normal(size=(dim, length))).astype(np.float32)
                rel = f"{tid % 10}/{tid}.npy"
                (folder / str(tid % 10)).mkdir(parents=True, exist_ok=True)
                np.save(folder / rel, arr)
                if split == "train":
                    lines.append(f"{tid}\t{artist}\t{rel}")
                else:
                    lines.append(f"{tid}\t{rel}")
                    gt_rows.append(f"{tid}\t{artist}")
        (root / f"{split}_meta.tsv").write_text("\n".join(lines) + "\n")
    (root / "test_gt.tsv").write_text("trackid\tartistid\n" + "\n".join(gt_rows) + "\n")
    return root


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")
