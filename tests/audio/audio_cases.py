"""Audio the featurize tests write themselves: tones, clicks, synthetic "artists", bad files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(freq: float, seconds: float, rate: int = 16_000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def artist_track(artist: int, track: int, seconds: float = 20.0, rate: int = 16_000) -> np.ndarray:
    """A track in artist `artist`'s style: its own scale, timbre, tempo and drums.

    Style is drawn from a generator seeded by the artist only, the notes from one seeded by
    (artist, track): every track of an artist sounds alike, no two tracks are the same.
    """
    style = np.random.default_rng(1000 + artist)
    root = 110.0 * 2 ** style.uniform(0, 2.5)
    scale = root * 2 ** (np.sort(style.choice(12, 5, replace=False)) / 12)
    harmonics = np.arange(1, 9)
    amps = harmonics ** -style.uniform(0.3, 2.5) * (style.random(8) < 0.7 + 0.3 * np.arange(8) / 8)
    amps[0] = 1.0
    beat = 60.0 / style.uniform(70, 170)
    drum_level = style.uniform(0.0, 0.6)
    noise_level = style.uniform(0.0, 0.05)
    rng = np.random.default_rng(artist * 1000 + track)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    note_len = beat * style.choice([0.5, 1.0, 2.0])
    idx = (t // note_len).astype(np.int64)
    notes = rng.choice(scale, idx.max() + 1)
    phase_t = t - idx * note_len
    f = notes[idx]
    wave = sum(a * np.sin(2 * np.pi * h * f * t) for h, a in zip(harmonics, amps) if a > 0)
    env = np.exp(-phase_t * style.uniform(1.0, 8.0))
    x = 0.25 * wave * env / np.abs(amps).sum()
    beat_phase = t % beat
    x += drum_level * rng.standard_normal(n) * np.exp(-beat_phase * 40.0) * 0.3
    x += noise_level * rng.standard_normal(n)
    return (x / max(1.0, np.abs(x).max())).astype(np.float32)


def write_artists(folder: Path, n_artists: int, tracks: int, seconds: float = 20.0) -> Path:
    """A manifest (path, artist) over synthetic artists, in rotating formats and rates."""
    folder.mkdir(parents=True, exist_ok=True)
    formats = [("wav", 16_000), ("flac", 22_050), ("ogg", 44_100), ("wav", 48_000)]
    lines = ["path\tartist"]
    for a in range(n_artists):
        for k in range(tracks):
            ext, rate = formats[(a + k) % len(formats)]
            x = artist_track(a, k, seconds, 16_000)
            if rate != 16_000:
                import soxr

                x = soxr.resample(x, 16_000, rate).astype(np.float32)
            name = f"artist{a:02d}/track{k}.{ext}"
            (folder / name).parent.mkdir(exist_ok=True)
            sf.write(folder / name, x, rate)
            lines.append(f"{name}\tband {a}")
    manifest = folder / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def write_bad_folder(folder: Path) -> dict[str, str]:
    """Good files in several shapes plus one file per bad-audio case; name -> expected status/reason."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    good = tone(330, 12, 44_100) + 0.01 * rng.standard_normal(12 * 44_100).astype(np.float32)
    sf.write(folder / "stereo.wav", np.stack([good, good[::-1]], 1), 44_100)
    sf.write(folder / "mono.flac", tone(220, 8, 48_000), 48_000)
    sf.write(folder / "six_channels.wav", np.tile(tone(550, 5, 8_000)[:, None], (1, 6)), 8_000)
    sf.write(folder / "vorbis.ogg", tone(440, 7, 22_050), 22_050)
    (folder / "sub").mkdir()
    sf.write(folder / "sub" / "Björk – ßong №1.wav", tone(660, 4, 11_025), 11_025)
    shutil.copy(folder / "stereo.wav", folder / "sub" / "copy_of_stereo.wav")
    sf.write(folder / "latin1.wav", tone(770, 4, 16_000), 16_000)  # a name that is not UTF-8:
    os.rename(folder / "latin1.wav", os.fsencode(folder) + b"/caf\xe9.wav")
    (folder / "corrupt.mp3").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (folder / "zero_bytes.ogg").write_bytes(b"")
    flac = (folder / "mono.flac").read_bytes()
    (folder / "truncated.flac").write_bytes(flac[:200])
    sf.write(folder / "empty.wav", np.zeros((0, 1), np.float32), 16_000)
    sf.write(folder / "silence.wav", np.zeros(5 * 16_000, np.float32), 16_000)
    sf.write(folder / "short.wav", tone(440, 1.0), 16_000)
    nan = tone(440, 3)
    nan[1000:1010] = np.nan
    sf.write(folder / "nan.wav", nan, 16_000, subtype="FLOAT")
    sf.write(folder / "damaged_middle.ogg", good, 44_100)  # its middle third overwritten: pages lost
    ogg = bytearray((folder / "damaged_middle.ogg").read_bytes())
    third = len(ogg) // 3
    ogg[third : 2 * third] = rng.integers(0, 256, third, dtype=np.uint8).tobytes()
    (folder / "damaged_middle.ogg").write_bytes(bytes(ogg))
    sf.write(folder / "one_hertz.wav", rng.standard_normal(64_000).astype(np.float32) * 0.1, 1)
    (folder / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(100))
    (folder / "notes.txt").write_text("not audio: ignored")
    return {
        "stereo.wav": "ok", "mono.flac": "ok", "six_channels.wav": "ok", "vorbis.ogg": "ok",
        "sub/Björk – ßong №1.wav": "ok", "caf\\xe9.wav": "ok", "sub/copy_of_stereo.wav": "duplicate", "corrupt.mp3": "unreadable",
        "zero_bytes.ogg": "empty", "truncated.flac": "unreadable", "empty.wav": "empty",
        "silence.wav": "silent", "short.wav": "too_short", "nan.wav": "nan", "song.m4a": "unsupported_format",
        "damaged_middle.ogg": "corrupt", "one_hertz.wav": "implausible",
    }
