"""Audio in, ranked lists out, through the CLI: featurize -> validate -> pack -> baseline ->
train -> predict -> score, on audio the test synthesises itself (distinct "artists", each
with its own scale, timbre, tempo and drums). A trained model must rank same-artist tracks
first on artists it never saw."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from artistsim.cli import main

sys.path.insert(0, str(Path(__file__).parent / "audio"))
from audio_cases import write_artists  # noqa: E402
from fault_cases import transformer_toml  # noqa: E402

CONFIG = transformer_toml(64, 4, 128, 64, 32, [dict(artists_per_batch=6, crop=8, lr=2e-3, max_epochs=15)],
                          val_fraction=0.2, eval_batch_size=64, dropout=0.1, patience=4)


def audio_to_submission(tmp_path: Path, manifest: Path, config: str, *featurize_args: str) -> tuple[Path, Path]:
    """featurize -> validate -> pack -> train -> predict through the CLI; returns (data folder, submission)."""
    data, cfg, run, sub = tmp_path / "data", tmp_path / "config.toml", tmp_path / "run", tmp_path / "submission.tsv"
    assert main(["-q", "featurize", str(manifest), str(data), "--seed", "1", "--workers", "1", *featurize_args]) == 0
    assert main(["-q", "validate", str(data)]) == 0
    assert main(["-q", "pack", str(data)]) == 0
    cfg.write_text(config)
    assert main(["-q", "train", str(data), "--config", str(cfg), "--out", str(run)]) == 0
    assert main(["-q", "predict", str(data), "--run", str(run), "--out", str(sub), "--no-rerank"]) == 0
    return data, sub


@pytest.mark.slow
def test_featurize_then_train_ranks_same_artist_first(tmp_path, capsys):
    manifest = write_artists(tmp_path / "music", n_artists=14, tracks=5, seconds=12.0)
    data, sub = audio_to_submission(tmp_path, manifest, CONFIG, "--test-fraction", "0.3", "--frontend", "dsp")
    capsys.readouterr()
    assert main(["score", str(sub), str(data / "test_gt.tsv")]) == 0
    ndcg = float(capsys.readouterr().out.split()[-1])
    gt = pd.read_csv(data / "test_gt.tsv", sep="\t").set_index("trackid")["artistid"]
    top1 = [gt[int(line.split("\t")[1].split()[0])] == gt[int(line.split("\t")[0])]
            for line in sub.read_text().splitlines()]
    print(f"audio end-to-end: test nDCG@100 {ndcg:.3f}, top-1 same artist {sum(top1)}/{len(top1)}")
    assert ndcg > 0.8 and sum(top1) >= 0.8 * len(top1)


SMALL_CONFIG = transformer_toml(32, 2, 64, 32, 16, [dict(artists_per_batch=3, crop=4, lr=1e-3, max_epochs=1)],
                                val_fraction=0.25)


@pytest.mark.slow
@pytest.mark.parametrize("frontend, dim, flag", [("musicnn-msd", 753, ()),  # the default: no flag
                                               ("musicnn-mtt", 753, ("--frontend", "musicnn-mtt"))])
def test_every_front_end_runs_from_audio_to_a_submission(tmp_path, capsys, frontend, dim, flag):
    """A few short tracks per pretrained front end through the whole chain (dsp: the test above).

    D comes from frontend.json: validate, pack and train read it, no option says 753.
    """
    import json

    import numpy as np

    if frontend != "dsp":
        from artistsim.audio.musicnn import MusicnnError, checkpoint_prefix

        try:
            checkpoint_prefix("MSD_musicnn")
        except MusicnnError:
            pytest.skip("musicnn package not installed (make setup installs it)")
    manifest = write_artists(tmp_path / "music", n_artists=6, tracks=3, seconds=4.0)
    data, sub = audio_to_submission(tmp_path, manifest, SMALL_CONFIG, "--test-fraction", "0.34", *flag)
    record = json.loads((data / "frontend.json").read_text())
    assert (record["name"], record["dim"]) == (frontend, dim)
    some = next((data / "train_features").rglob("*.npy"))
    assert np.load(some).shape[0] == dim
    test_ids = pd.read_csv(data / "test_meta.tsv", sep="\t")["trackid"]
    assert sorted(int(line.split("\t")[0]) for line in sub.read_text().splitlines()) == sorted(test_ids)
    capsys.readouterr()
