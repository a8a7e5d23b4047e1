"""Artist-disjoint splits of a featurized real set, as data folders the CLI can train on.

Why: the real set (benchmarks/real_music.py) is small (217 tracks of 36 artists), so one
split says little; `featurize` draws one artist split per folder, and featurizing again
per split would run the musicnn network over every track three more times. Here the
frames are featurized once (one folder per front end) and each split is a new folder
whose meta files regroup the same .npy files (hard links, or copies across file
systems), with the folder's `frontend.json`.

The splits are the ones `bench_frontends quality` scores: for seed s, the first 30% of
the artists in `numpy.random.default_rng(s).permutation` of the sorted artist ids are
the test artists.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

TEST_SHARE = 0.3


def tracks(featurized: Path) -> pd.DataFrame:
    """Every track of a finalized featurize folder: trackid, artistid, its .npy file."""
    from artistsim.data.layout import GT_FILE, meta_path

    train = pd.read_csv(meta_path(featurized, "train"), sep="\t")
    test = pd.read_csv(meta_path(featurized, "test"), sep="\t").merge(
        pd.read_csv(featurized / GT_FILE, sep="\t"), on="trackid")
    train["file"] = [featurized / "train_features" / p for p in train["archive_features_path"]]
    test["file"] = [featurized / "test_features" / p for p in test["archive_features_path"]]
    return pd.concat([train, test])[["trackid", "artistid", "archive_features_path", "file"]].sort_values("trackid")


def test_artists(artist_ids: np.ndarray, seed: int) -> np.ndarray:
    """The test artists of split `seed` (30% of the artists, artist-disjoint from train)."""
    artists = np.unique(artist_ids)
    return np.random.default_rng(seed).permutation(artists)[: int(round(TEST_SHARE * len(artists)))]


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copyfile(src, dst)


def make_split(featurized: Path, out: Path, seed: int) -> Path:
    """Data folder `out` holding split `seed` of `featurized`'s tracks (idempotent)."""
    df = tracks(featurized)
    test = df["artistid"].isin(test_artists(df["artistid"].to_numpy(), seed))
    for split, rows in (("train", df[~test]), ("test", df[test])):
        for rel, src in zip(rows["archive_features_path"], rows["file"]):
            _link(src, out / f"{split}_features" / rel)
    out.mkdir(parents=True, exist_ok=True)
    df[~test][["trackid", "artistid", "archive_features_path"]].to_csv(out / "train_meta.tsv", sep="\t", index=False)
    df[test][["trackid", "archive_features_path"]].to_csv(out / "test_meta.tsv", sep="\t", index=False)
    df[test][["trackid", "artistid"]].to_csv(out / "test_gt.tsv", sep="\t", index=False)
    shutil.copyfile(featurized / "frontend.json", out / "frontend.json")
    return out
