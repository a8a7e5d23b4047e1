"""The front ends `featurize` can apply: audio fragment in, (D, T) frames out, one record each.

Why a registry: a user picks a front end by name (`featurize --frontend NAME`), the
folder records which one made its frames (`frontend.json`, `artistsim.data.provenance`),
and whoever featurizes audio later (the catalogue's `--audio`) must apply the very same
one, found again from that record.

- `musicnn-msd` (the default) / `musicnn-mtt`: the musicnn tagger (`artistsim.audio.musicnn`)
  trained on the Million Song Dataset / MagnaTagATune; the `mean_pool` layer (753 numbers:
  the front- and mid-end feature maps averaged over the window) of a 3 s window.
- `dsp`: the hand-designed 512-d descriptor of `artistsim.audio.descriptor`, 1.5 s windows;
  ~10x cheaper per track and needs no weights.

Why musicnn-msd is the default: on the labelled real set (3 artist-disjoint splits) the
recommended pipeline scores 0.752 test nDCG@100 on it against 0.693 on `dsp` (+0.059 ±
0.016 paired, every split ahead; docs/featurize.md). A featurize folder from before front
ends were recorded (a `descriptor_version` mark, no `frontend.json`) holds `dsp` frames
(LEGACY); runs and catalogues with no record are competition features (no audio queries).

Both use the competition's framing (`artistsim.audio.decode`): T windows (<= 81) centred
every 0.73125 s over the centred 60 s fragment; the musicnn windows are 3 s (what it was
trained on) around the same centres, shifted inward at the fragment's edges (a window never
reaches outside the decoded audio; a fragment shorter than 3 s is padded with silence).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from artistsim.audio import descriptor
from artistsim.audio.decode import (HOP, SAMPLE_RATE, WINDOW, AudioError, centre_fragment, check_signal, decode_fragment,
                                  to_mono_16k)
from artistsim.data.provenance import Frontend

DEFAULT = "musicnn-msd"
LEGACY = "dsp"  # what made a featurize folder that has a descriptor_version mark and no front-end record
MUSICNN = {"musicnn-msd": "MSD_musicnn", "musicnn-mtt": "MTT_musicnn"}
NAMES = ("dsp", *MUSICNN)
MUSICNN_LAYER = "mean_pool"
MUSICNN_VERSION = "1"


class FrontendError(ValueError):
    """An unknown front end, or one whose weights are missing (one line)."""


def check_name(name: str) -> str:
    """`name` if it is a known front end, else FrontendError listing the known ones."""
    if name not in NAMES:
        raise FrontendError(f"unknown front end {name!r}; choose from {', '.join(NAMES)}")
    return name


def record(name: str) -> Frontend:
    """The provenance record of front end `name` (what featurize writes to frontend.json)."""
    if check_name(name) == "dsp":
        return descriptor.frontend()
    from artistsim.audio import musicnn as m

    params = {"model": MUSICNN[name], "layer": MUSICNN_LAYER, "sample_rate": SAMPLE_RATE,
              "window": m.PATCH * m.MEL_HOP, "hop": HOP, "n_mels": m.N_MELS, "mel_hop": m.MEL_HOP,
              "n_fft": m.N_FFT, "weights": "musicnn 0.1.0"}
    return Frontend(name, MUSICNN_VERSION, m.LAYERS[MUSICNN_LAYER], params)


def prepare(name: str) -> Frontend:
    """Check that front end `name` can run here (its weights load) before any track is decoded.

    Why up front: a missing or broken checkpoint would otherwise skip every track one by one.
    """
    rec = record(name)
    if name in MUSICNN:
        from artistsim.audio import musicnn as m

        try:
            m.load_weights(m.checkpoint_prefix(MUSICNN[name]))
        except m.MusicnnError as exc:
            raise FrontendError(f"front end {name}: {exc}; or pick --frontend dsp (no weights)") from None
    return rec


def name_of(frontend: Frontend) -> str:
    """The front end that `featurize` would run to reproduce `frontend`'s frames (FrontendError if none)."""
    if frontend.name in NAMES and record(frontend.name).same_as(frontend):
        return frontend.name
    raise FrontendError(f"front end {frontend.label()} is not one featurize can apply (it knows "
                        f"{', '.join(record(n).label() for n in NAMES)})")


def window_centres(t: int) -> np.ndarray:
    """Sample index of the centre of each of the T competition windows in the fragment."""
    return np.arange(t, dtype=np.int64) * HOP + WINDOW // 2


def musicnn_starts(t: int, frames: int) -> np.ndarray:
    """First mel frame of each 3 s window, centred on the competition's window centres, kept inside."""
    from artistsim.audio.musicnn import MEL_HOP, PATCH

    starts = np.rint(window_centres(t) / MEL_HOP).astype(np.int64) - PATCH // 2
    return np.clip(starts, 0, max(0, frames - PATCH))


def musicnn_frames(x: np.ndarray, name: str, device: str | None = None) -> np.ndarray:
    """A checked mono 16 kHz fragment holding T windows -> (753, T) musicnn mean-pool frames."""
    import torch

    from artistsim.audio import musicnn as m

    t = check_signal(x)
    net = m.load_model(MUSICNN[name], device)
    device = next(net.buffers()).device
    with torch.inference_mode():
        mel = m.log_mel(x, device)
        if len(mel) < m.PATCH:  # shorter than 3 s: silence after (log10(1 + 0) = 0)
            mel = torch.nn.functional.pad(mel, (0, 0, 0, m.PATCH - len(mel)))
        starts = torch.as_tensor(musicnn_starts(t, len(mel)), device=device)
        out = net.embed_track(mel, starts)[MUSICNN_LAYER]
    return np.ascontiguousarray(out.T.float().cpu().numpy(), dtype=np.float32)


def describe(x: np.ndarray, name: str = DEFAULT) -> np.ndarray:
    """A mono 16 kHz fragment (already cut) -> (D, T) float32 frames of front end `name`.

    AudioError (nan / too_short / silent) when it has no usable window; the musicnn
    weights failing to load raise MusicnnError (never random weights).
    """
    if check_name(name) == "dsp":
        return descriptor.describe_samples(x)
    return musicnn_frames(x, name)


def featurize_array(samples: np.ndarray, sample_rate: int, name: str = DEFAULT) -> np.ndarray:
    """Audio in memory ((n,) or (n, channels), any rate) -> (D, T): the same path as a file."""
    x = to_mono_16k(centre_fragment(np.asarray(samples), int(sample_rate)), int(sample_rate))
    return describe(x, name)


def featurize_file(path: str | Path, name: str = DEFAULT) -> np.ndarray:
    """An audio file -> (D, T) float32; decodes only the fragment used. AudioError naming the file if bad."""
    if name == "dsp":
        return descriptor.featurize_file(path)
    try:
        return describe(decode_fragment(path).samples, name)
    except AudioError as exc:
        raise AudioError(exc.reason, f"{path}: bad audio ({exc.reason}): {exc}") from None
