"""A small curated catalogue for the curator pages' tests: names, WAV source files, a key.

Six artists of five tracks (the tiny dataset, an untrained seeded run), each track a
one-second WAV (a sine per artist) under an audio root, named in a names TSV with
relative paths; one track's file is a symlink leading out of the root (never served), and one track is
filed under the wrong artist (the audit's first suspect).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from catalogue_cases import make_catalogue, write_run
from conftest import write_tiny_dataset

from artistsim.audio.descriptor import frontend
from artistsim.catalogue.names import gather, keep
from artistsim.data.provenance import write_frontend

KEY = "curator-key-0123456789abcdef"
WRITERS = {"alice": KEY}
RATE = 8000


def curated_catalogue(root: Path) -> dict[str, object]:
    """Build it under `root`; returns the paths and the trackids of note."""
    data = write_tiny_dataset(root / "data", n_train_artists=6, n_test_artists=2, tracks=5)
    meta = pd.read_csv(data / "train_meta.tsv", sep="\t")
    planted = int(meta["trackid"].iloc[25])  # the sixth artist's first track, filed under the third
    meta.loc[25, "artistid"] = meta["artistid"].iloc[10]
    meta.to_csv(data / "train_meta.tsv", sep="\t", index=False)
    run = write_run(root / "run")
    for folder in (data, run):  # a catalogue of featurize's dsp features: the pages take audio
        write_frontend(folder, frontend())
    cat = make_catalogue(root / "cat", data, run)
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    lines = ["trackid\tpath\tduration\tartistid\tartist"]
    t = np.arange(RATE, dtype=np.float32) / RATE
    for tid, artist in zip(meta["trackid"], meta["artistid"]):
        wave = 0.2 * np.sin(2 * np.pi * (220 + 20 * (artist % 11)) * t)
        sf.write(audio / f"{tid}.wav", wave.astype(np.float32), RATE)
        lines.append(f"{tid}\t{tid}.wav\t1.0\t{artist}\tSinger {artist}")
    outside = root / "outside"
    outside.mkdir(exist_ok=True)
    sf.write(outside / "secret.wav", np.zeros(RATE, np.float32), RATE)
    escaped = int(meta["trackid"].iloc[-1])
    (audio / f"{escaped}.wav").unlink()
    (audio / f"{escaped}.wav").symlink_to(outside / "secret.wav")
    (root / "names.tsv").write_text("\n".join(lines) + "\n")
    keep(cat, gather(None, root / "names.tsv", audio))
    return {"catalogue": cat, "data": data, "audio": audio, "trackids": meta["trackid"].tolist(),
            "artists": meta["artistid"].tolist(), "escaped": escaped, "planted": planted, "first": int(meta["trackid"].iloc[0]),
            "first_artist": int(meta["artistid"].iloc[0])}
