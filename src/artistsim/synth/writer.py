"""Write a synthetic dataset to disk in the competition layout (REFERENCE.md).

Why apart from the generator: `synth.generator` makes the numbers and knows nothing of
files; this module owns the folder (refusing to mix a new set into an old one), the fold
paths and the meta files, so the generator stays usable in memory by tests and benchmarks.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from artistsim.atomic import atomic_write_text
from artistsim.synth.generator import iter_split
from artistsim.synth.plan import MAX_FRAMES, SPLITS, SplitPlan, SynthError, SynthPreset, _plans, resolve_preset

__all__ = ["generate"]

N_FOLDS = 10
_DATASET_ENTRIES = (
    "train_meta.tsv",
    "test_meta.tsv",
    "test_gt.tsv",
    "train_features",
    "test_features",
)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to mix a new dataset into an old one (or an interrupted run's leftovers)."""
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder")
    present = [name for name in _DATASET_ENTRIES if (out / name).exists()]
    if not present:
        return
    if not overwrite:
        raise SynthError(
            f"{out}: already holds a dataset (or a partial one): {present}; "
            "pass overwrite=True (CLI: --overwrite) to replace it"
        )
    for name in present:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


def _feature_rel_path(track_id: int) -> str:
    return f"{track_id % N_FOLDS}/{track_id}.npy"


def _split_root(out: Path, split: str, nested: bool) -> Path:
    root = out / f"{split}_features"
    return root / f"{split}_features" if nested else root


def generate(
    out_dir: str | Path,
    preset: str | SynthPreset = "demo",
    seed: int = 0,
    nested: bool = False,
    progress: bool | None = None,
    overwrite: bool = False,
) -> dict:
    """Write a synthetic dataset in the competition layout to `out_dir`; return a summary.

    Features are written first, streaming artist by artist; the meta files come last
    (atomically), so an interrupted run never leaves a folder that looks complete.
    `progress=None` shows a bar only on a terminal. The summary holds per-split counts
    (`tracks`, `artists`, `short_tracks`, `single_track_artists`), `bytes` and `seconds`.
    """
    p = resolve_preset(preset)
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    start = time.perf_counter()
    plans = _plans(p, seed)
    rel = {s: [_feature_rel_path(int(t)) for t in plans[s].track_ids] for s in SPLITS}
    total = sum(plans[s].n_tracks for s in SPLITS)
    n_bytes = 0
    disable = None if progress is None else not progress
    with tqdm(total=total, disable=disable, unit="track", desc="synth") as bar:
        for split in SPLITS:
            root = _split_root(out, split, nested)
            for fold in range(N_FOLDS):
                (root / str(fold)).mkdir(parents=True, exist_ok=True)
            lo = 0
            for feats, _, _ in iter_split(p, seed, split):
                for j, x in enumerate(feats):
                    np.save(root / rel[split][lo + j], x, allow_pickle=False)
                    n_bytes += x.nbytes + 128
                lo += len(feats)
                bar.update(len(feats))
    _write_meta(out, plans, rel)
    summary: dict = {"out_dir": str(out), "seed": seed, "nested": nested}
    for split in SPLITS:
        plan = plans[split]
        summary[split] = {
            "tracks": plan.n_tracks,
            "artists": len(plan.artist_ids),
            "short_tracks": int((plan.lengths < MAX_FRAMES).sum()),
            "single_track_artists": int((plan.counts == 1).sum()),
        }
    summary["bytes"] = n_bytes
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary


def _write_meta(out: Path, plans: dict[str, SplitPlan], rel: dict[str, list[str]]) -> None:
    """Meta files sorted by track id, so artists' tracks are not adjacent; train's last."""
    test, train = plans["test"], plans["train"]
    test_artist = np.repeat(test.artist_ids, test.counts)
    order = np.argsort(test.track_ids, kind="stable")
    gt = ["trackid\tartistid"] + [f"{test.track_ids[i]}\t{test_artist[i]}" for i in order]
    meta = ["trackid\tarchive_features_path"] + [f"{test.track_ids[i]}\t{rel['test'][i]}" for i in order]
    atomic_write_text(out / "test_gt.tsv", "\n".join(gt) + "\n")
    atomic_write_text(out / "test_meta.tsv", "\n".join(meta) + "\n")
    train_artist = np.repeat(train.artist_ids, train.counts)
    order = np.argsort(train.track_ids, kind="stable")
    rows = ["trackid\tartistid\tarchive_features_path"] + [
        f"{train.track_ids[i]}\t{train_artist[i]}\t{rel['train'][i]}" for i in order
    ]
    atomic_write_text(out / "train_meta.tsv", "\n".join(rows) + "\n")

