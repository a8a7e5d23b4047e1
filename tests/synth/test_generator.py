"""Tests of the synthetic dataset generator: layout, ids, determinism, safety, realism."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from artistsim.synth import generator as synth
from artistsim.synth import writer
from artistsim.synth import PRESETS, SynthError, SynthPreset, generate, sample_split, split_plan

TINY = SynthPreset(n_train_artists=8, n_test_artists=5)


def _read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return rows[0], rows[1:]


def _digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `root`."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, TINY, seed=0, progress=False)
    return out


def test_layout_and_meta_columns_are_exact(tiny_dir: Path) -> None:
    header, train = _read_tsv(tiny_dir / "train_meta.tsv")
    assert header == ["trackid", "artistid", "archive_features_path"]
    header, test = _read_tsv(tiny_dir / "test_meta.tsv")
    assert header == ["trackid", "archive_features_path"]
    header, gt = _read_tsv(tiny_dir / "test_gt.tsv")
    assert header == ["trackid", "artistid"]
    assert [r[0] for r in gt] == [r[0] for r in test]
    for split, rows in (("train", train), ("test", test)):
        for row in rows:
            tid, rel = row[0], row[-1]
            fold, name = rel.split("/")
            assert fold in {str(f) for f in range(10)} and name == f"{tid}.npy"
            assert (tiny_dir / f"{split}_features" / rel).is_file()
    # nothing else was written: a reader may glob the folders
    n_files = sum(1 for p in (tiny_dir / "train_features").rglob("*.npy"))
    assert n_files == len(train)
    assert sorted(p.name for p in tiny_dir.iterdir()) == sorted(writer._DATASET_ENTRIES)


def test_features_are_float32_512_by_t_finite_and_nonnegative(tiny_dir: Path) -> None:
    lengths = []
    for path in tiny_dir.rglob("*.npy"):
        x = np.load(path)
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] == 512
        assert 1 <= x.shape[1] <= 81
        assert np.isfinite(x).all() and (x >= 0).all()
        lengths.append(x.shape[1])
    assert max(lengths) == 81


def test_ids_unique_noncontiguous_and_test_artists_disjoint(tiny_dir: Path) -> None:
    _, train = _read_tsv(tiny_dir / "train_meta.tsv")
    _, gt = _read_tsv(tiny_dir / "test_gt.tsv")
    train_tracks = [int(r[0]) for r in train]
    test_tracks = [int(r[0]) for r in gt]
    all_tracks = train_tracks + test_tracks
    assert len(set(all_tracks)) == len(all_tracks) and min(all_tracks) > 0
    assert train_tracks == sorted(train_tracks)  # artists' tracks are not adjacent
    train_artists = {int(r[1]) for r in train}
    test_artists = {int(r[1]) for r in gt}
    assert len(train_artists) == TINY.n_train_artists and len(test_artists) == TINY.n_test_artists
    assert not train_artists & test_artists
    artists = sorted(train_artists | test_artists)
    # ids are not positions: neither 0..n-1 nor 1..n nor a contiguous block
    assert artists[-1] - artists[0] + 1 > 10 * len(artists)
    assert max(all_tracks) - min(all_tracks) + 1 > 10 * len(all_tracks)


def test_same_seed_same_bytes_other_seed_other_data(tiny_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, TINY, seed=0, progress=False)
    assert _digest(again) == _digest(tiny_dir)
    other = tmp_path / "other"
    generate(other, TINY, seed=1, progress=False)
    a, b = _digest(tiny_dir), _digest(other)
    assert a["train_meta.tsv"] != b["train_meta.tsv"]
    assert not set(a.values()) & set(b.values())


def test_sample_split_matches_written_files(tiny_dir: Path) -> None:
    feats, labels, tids = sample_split(TINY, seed=0, split="test")
    _, gt = _read_tsv(tiny_dir / "test_gt.tsv")
    truth = {int(r[0]): int(r[1]) for r in gt}
    assert len(feats) == len(labels) == len(tids) == len(truth)
    for x, aid, tid in zip(feats, labels, tids):
        assert truth[int(tid)] == aid
        assert np.array_equal(np.load(tiny_dir / "test_features" / f"{tid % 10}/{tid}.npy"), x)


def test_nested_layout_holds_the_same_data(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "nested"
    generate(out, TINY, seed=0, nested=True, progress=False)
    assert (out / "train_meta.tsv").read_bytes() == (tiny_dir / "train_meta.tsv").read_bytes()
    _, rows = _read_tsv(out / "test_meta.tsv")
    for tid, rel in rows:
        nested = np.load(out / "test_features" / "test_features" / rel)
        assert np.array_equal(nested, np.load(tiny_dir / "test_features" / rel))
    assert not any((out / "train_features").glob("[0-9]"))


def test_refuses_to_overwrite_a_dataset_unless_asked(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="already holds a dataset"):
        generate(tiny_dir, TINY, seed=0, progress=False)
    out = tmp_path / "data"
    generate(out, TINY, seed=0, nested=True, progress=False)
    (out / "notes.txt").write_text("mine")  # unrelated files are left alone
    summary = generate(out, TINY, seed=1, overwrite=True, progress=False)
    assert summary["train"]["artists"] == TINY.n_train_artists
    assert not (out / "train_features" / "train_features").exists()  # old layout removed
    assert (out / "notes.txt").read_text() == "mine"


def test_partial_run_refused_and_interrupted_run_writes_no_meta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "data"
    real = synth._artist_tracks
    calls = {"n": 0}

    def interrupted(*args: object, **kwargs: object) -> list[np.ndarray]:
        calls["n"] += 1
        if calls["n"] > 3:  # some feature files are written, then the user hits Ctrl-C
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "_artist_tracks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(out, TINY, seed=0, progress=False)
    monkeypatch.setattr(synth, "_artist_tracks", real)
    assert any(out.rglob("*.npy"))
    assert not list(out.glob("*.tsv"))  # does not look complete
    with pytest.raises(SynthError, match="partial"):
        generate(out, TINY, seed=0, progress=False)
    generate(out, TINY, seed=0, progress=False, overwrite=True)
    assert (out / "train_meta.tsv").is_file()


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="unknown synth preset"):
        generate(tmp_path / "x", "huge")
    with pytest.raises(SynthError, match="unknown split"):
        split_plan(TINY, 0, "valid")
    with pytest.raises(SynthError):
        SynthPreset(n_train_artists=0, n_test_artists=1)


def test_tracks_per_artist_and_lengths_look_like_the_real_set() -> None:
    counts = np.concatenate([split_plan("demo", s, "train").counts for s in (0, 1)])
    assert 0.5 < (counts == 10).mean() < 0.75
    assert 0.01 < (counts == 1).mean() < 0.08
    assert 0.15 < ((counts >= 2) & (counts <= 9)).mean() < 0.35
    assert (counts >= 20).sum() >= 5 and counts.max() <= 60
    assert 8.5 < counts.mean() < 10.0
    plan = split_plan("demo", 0, "train")
    assert 2500 < plan.n_tracks < 3500
    assert 800 < split_plan("demo", 0, "test").n_tracks < 1200
    lengths = plan.lengths
    short = lengths[lengths < 81]
    assert 0.10 < len(short) / len(lengths) < 0.20
    assert lengths.min() >= 1 and (short < 30).any() and (short > 60).any()


def test_full_preset_has_the_real_sizes_without_generating_features() -> None:
    train = split_plan("full", 0, "train")
    test = split_plan("full", 0, "test")
    assert len(train.artist_ids) == 18468
    assert 160_000 < train.n_tracks < 176_000
    assert 38_000 < test.n_tracks < 45_000
    assert len(np.unique(np.concatenate([train.track_ids, test.track_ids]))) == (
        train.n_tracks + test.n_tracks
    )
    assert PRESETS["small"].n_train_artists == 10 * PRESETS["demo"].n_train_artists


# --------------------------------------------------------------------------- calibration
# A miniature of the calibration run for the module docstring (demo preset: mean-pool
# ~0.24, LDA(mean, std) ~0.35, nonlinear probe ~0.60-0.68): it guards the property the
# generator exists for -- artist signal that averaging destroys but a per-frame
# nonlinearity recovers -- against a future edit that flattens it.


def _ndcg100(emb: np.ndarray, labels: np.ndarray) -> float:
    """Competition nDCG@100: self excluded, single-track artists' queries skipped."""
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    k = min(100, len(labels) - 1)
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    rel = labels[top] == labels[:, None]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    _, inv, cnt = np.unique(labels, return_inverse=True, return_counts=True)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(k, cnt[inv] - 1)]
    q = ideal > 0
    return float(((rel * disc).sum(1)[q] / ideal[q]).mean())


def _lda(train: np.ndarray, labels: np.ndarray, dims: int = 100, shrink: float = 0.5):
    """Shrinkage LDA fitted on `train`; returns the projection of new rows."""
    mu, sd = train.mean(0), train.std(0) + 1e-6
    z = (train - mu) / sd
    _, inv = np.unique(labels, return_inverse=True)
    means = np.zeros((inv.max() + 1, z.shape[1]))
    np.add.at(means, inv, z)
    n_c = np.bincount(inv)
    means /= n_c[:, None]
    within = z - means[inv]
    sw = within.T @ within / len(z)
    sw = (1 - shrink) * sw + shrink * np.trace(sw) / len(sw) * np.eye(len(sw))
    sb = (means * n_c[:, None]).T @ means / len(z)
    lam, vec = np.linalg.eigh(sw)
    white = vec / np.sqrt(lam)
    _, u = np.linalg.eigh(white.T @ sb @ white)
    proj = white @ u[:, ::-1][:, : min(dims, len(n_c) - 1)]
    return lambda rows: ((rows - mu) / sd) @ proj


def _pool(frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.add.reduceat(frames, starts, axis=0) / lengths[:, None]


def _scores(preset: SynthPreset, seed: int) -> dict[str, float]:
    """Mean-pool and a nonlinear probe (LDA fitted on train artists), on the test split."""
    data = {}
    for split in ("train", "test"):
        feats, labels, _ = sample_split(preset, seed, split)
        lengths = np.array([f.shape[1] for f in feats])
        data[split] = (np.concatenate([f.T for f in feats]), lengths, labels)
    x_tr, len_tr, y_tr = data["train"]
    x_te, len_te, y_te = data["test"]
    mean_te = _pool(x_te, len_te)
    # probe: whiten (PCA-64 of train frames), then the mean over frames of |r . (y - y_track)|
    # for 256 random r, beside the whitened mean: a per-frame nonlinearity before pooling
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    lam, vec = np.linalg.eigh(np.cov(((x_tr[::4] - mu) / sd).T))
    white = (vec[:, ::-1][:, :64] / np.sqrt(lam[::-1][:64]) / sd[:, None]).astype(np.float32)
    rand = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32) / 8.0

    def probe(frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        y = frames @ white
        m = _pool(y, lengths)
        return np.concatenate([m, _pool(np.abs((y - np.repeat(m, lengths, axis=0)) @ rand), lengths)], 1)

    project = _lda(probe(x_tr, len_tr), y_tr)
    emb = project(probe(x_te, len_te))
    return {
        "meanpool": _ndcg100(mean_te - mean_te.mean(0), y_te),
        "probe": _ndcg100(emb - emb.mean(0), y_te),
    }


def test_artist_signal_is_mostly_beyond_the_mean() -> None:
    preset = SynthPreset(n_train_artists=120, n_test_artists=40)
    flat = SynthPreset(n_train_artists=120, n_test_artists=40, style_strength=0.0)
    with_style, without = _scores(preset, seed=0), _scores(flat, seed=0)
    # the probe sees much more than the mean ...
    assert with_style["probe"] > with_style["meanpool"] + 0.10, with_style
    # ... and what it sees beyond the mean is the style structure, which the mean misses
    assert with_style["probe"] > without["probe"] + 0.08, (with_style, without)
    assert abs(with_style["meanpool"] - without["meanpool"]) < 0.04, (with_style, without)
    assert 0.15 < with_style["meanpool"] < 0.6  # not trivially solved, not pure noise
