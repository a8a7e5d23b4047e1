"""Audio in: decode only the needed fragment of a file, mix down, resample, and frame it.

Framing follows the competition (REFERENCE.md): a 60 s fragment from the middle of the
track, cut into ~1.5 s windows every ~0.74 s, at most 81 windows. Here exactly:

- everything runs at `SAMPLE_RATE` = 16 kHz mono (content above 8 kHz is dropped);
- a window is `WINDOW` = 24,000 samples (1.5 s), the hop `HOP` = 11,700 samples
  (0.73125 s), so 81 windows span exactly `FRAGMENT` = 960,000 samples (60 s);
- the fragment is the centred min(60 s, duration) of the track. A track of 85.7 s or
  more has its fragment inside the middle 70% (the competition's rule); a shorter one
  keeps its 60 s centred (so T = 81 for every track of 60 s or more, as the competition
  says T < 81 only when the track is shorter than 60 s), and a track under 60 s is used
  whole, giving T = 1 + (n - 24,000) // 11,700 windows;
- a track shorter than one window (1.5 s) has no window and is skipped.

Decoding is libsndfile (`soundfile`): the file is opened, its length and rate read from
the header, and only the fragment is read after a seek (every format libsndfile reads
seeks; a stream that refuses is read block by block up to the fragment, never whole).
Channels are averaged, then `soxr` resamples the mono fragment to 16 kHz.

Bad audio raises `AudioError` with a short reason code (`REASONS`) and a message; the
batch job (`artistsim.audio.featurize`) lists it in tracks.tsv and goes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
WINDOW = 24_000  # 1.5 s
HOP = 11_700  # 0.73125 s: 81 windows cover 60 s exactly
MAX_WINDOWS = 81
FRAGMENT = HOP * (MAX_WINDOWS - 1) + WINDOW  # 960,000 samples = 60 s
FRAGMENT_SECONDS = FRAGMENT / SAMPLE_RATE
SILENCE_RMS = 1e-4  # -80 dBFS: below this over the whole fragment the track is silence
_BLOCK = 1 << 20  # frames per read when a stream cannot seek

# Reason codes of skipped tracks (tracks.tsv column `reason` starts with one of these).
REASONS = ("unreadable", "unsupported_format", "empty", "too_short", "silent", "nan", "duplicate", "error",
           "short_read", "implausible", "corrupt")

# What a header may claim. Below 4 kHz nothing of the 16 kHz descriptor is left; above
# 384 kHz no audio interface records. A day-long track is a header lying about its length
# (a 1 Hz WAV of 64,000 samples claims 17.8 hours), not music.
MIN_RATE, MAX_RATE = 4_000, 384_000
MAX_DURATION = 24 * 3600.0
# A decoder may deliver slightly fewer frames than the header's estimate (MP3 padding,
# VBR without a seek table): shortfalls up to this share of the fragment, or SHORT_READ_FRAMES,
# pass; more means the stream broke off (a corrupt or truncated file) and the track is bad.
SHORT_READ_SHARE = 0.01
SHORT_READ_FRAMES = 4096

# Extensions looked for in a folder. libsndfile reads the first group; the second is
# audio that it cannot read: listed as `unsupported_format` so the user sees it, not lost.
AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif",
                              ".aifc", ".au", ".snd", ".w64", ".rf64", ".caf"})
UNSUPPORTED_EXTENSIONS = frozenset({".m4a", ".aac", ".mp4", ".wma", ".ape", ".wv", ".mka", ".alac", ".mid",
                                    ".midi", ".mod", ".xm", ".it", ".s3m", ".amr", ".ra", ".mpc"})


class AudioError(ValueError):
    """A track that cannot be featurized; `reason` is one of REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Fragment:
    """Where the fragment lies in a track of `n` samples: [start, start + length)."""

    start: int
    length: int


def fragment_of(n: int, rate: int) -> Fragment:
    """The centred min(60 s, whole track) fragment of an n-sample track at `rate` Hz.

    The length is rounded up by a few samples so that resampling to 16 kHz still yields a
    full 60 s (soxr's output length is round(n * 16000 / rate)).
    """
    want = int(np.ceil(FRAGMENT * rate / SAMPLE_RATE))
    length = min(n, want)
    return Fragment(start=(n - length) // 2, length=length)


def window_count(n: int) -> int:
    """Windows T in a 16 kHz fragment of n samples: 0 below one window, at most 81."""
    if n < WINDOW:
        return 0
    return min(MAX_WINDOWS, 1 + (n - WINDOW) // HOP)


def window_starts(t: int) -> np.ndarray:
    """First sample of each of the T windows, relative to the fragment's start."""
    return np.arange(t, dtype=np.int64) * HOP


def to_mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Average the channels ((n,) or (n, channels)) and resample to 16 kHz, float32.

    Integer samples (int16 PCM from an upload, say) are scaled to [-1, 1) first.
    """
    import soxr

    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.integer):  # PCM integers -> [-1, 1) floats, as libsndfile gives
        x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise AudioError("error", f"expected samples of shape (n,) or (n, channels), got {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if rate <= 0:
        raise AudioError("error", f"sample rate must be positive, got {rate}")
    if rate != SAMPLE_RATE and len(x):
        x = soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return x


def check_signal(x: np.ndarray) -> int:
    """T for a mono 16 kHz fragment, or AudioError(nan / too_short / silent)."""
    if not np.isfinite(x).all():
        raise AudioError("nan", f"{int((~np.isfinite(x)).sum())} NaN/Inf sample(s) after decoding")
    t = window_count(len(x))
    if t == 0:
        raise AudioError("too_short", f"{len(x) / SAMPLE_RATE:.2f} s is shorter than one window (1.5 s)")
    used = x[: HOP * (t - 1) + WINDOW]
    rms = float(np.sqrt(np.mean(np.square(used, dtype=np.float64))))
    if rms < SILENCE_RMS:
        raise AudioError("silent", f"silence (RMS {rms:.1e} over the fragment)")
    return t


def check_header(rate: int, n: int) -> None:
    """AudioError("implausible") for a sample rate or duration no real recording has."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError("implausible", f"sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    if n / rate > MAX_DURATION:
        raise AudioError("implausible", f"the header claims {n / rate:,.0f} s, more than {MAX_DURATION:,.0f} s")


def check_complete(got: int, wanted: int, rate: int) -> None:
    """AudioError("short_read") when decoding stopped well before the frames the header promised."""
    if wanted - got > max(SHORT_READ_FRAMES, SHORT_READ_SHARE * wanted):
        raise AudioError("short_read", f"decoded {got / rate:.2f} s of the {wanted / rate:.2f} s the header "
                                       f"promises (corrupt or truncated stream)")


OGG_EXTENSIONS = frozenset({".ogg", ".oga", ".opus"})


def check_ogg_pages(path: Path) -> None:
    """AudioError("corrupt") when an Ogg file's pages do not follow one another.

    Why: the Vorbis decoder skips damaged pages without a word, and the length in the
    header comes from the last page, so a file whose middle is overwritten decodes as a
    shorter, intact-looking track (4 windows of 9). Walking the 27-byte page headers
    (each names its own length and sequence number) finds the break for one small read
    per page, without decoding anything.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        offset, sequence = 0, {}
        while offset < size:
            fh.seek(offset)
            head = fh.read(27)
            if len(head) < 27 or head[:4] != b"OggS":
                raise AudioError("corrupt", f"Ogg page structure broken at byte {offset} of {size} "
                                            f"(damaged or truncated stream)")
            serial = int.from_bytes(head[14:18], "little")
            number = int.from_bytes(head[18:22], "little")
            if serial in sequence and number != sequence[serial] + 1:
                raise AudioError("corrupt", f"Ogg page {sequence[serial] + 1} missing at byte {offset} "
                                            f"(damaged stream)")
            sequence[serial] = number
            table = fh.read(head[26])
            offset += 27 + head[26] + sum(table)


def centre_fragment(x: np.ndarray, rate: int) -> np.ndarray:
    """The fragment `fragment_of` picks, cut from samples already in memory."""
    frag = fragment_of(len(x), rate)
    return x[frag.start : frag.start + frag.length]


@dataclass(frozen=True)
class Decoded:
    """A decoded fragment: mono 16 kHz samples and the whole track's duration in seconds."""

    samples: np.ndarray
    duration: float


def decode_fragment(path: str | Path) -> Decoded:
    """Read only the fragment of `path` that the features use, as mono 16 kHz float32."""
    import soundfile as sf

    path = Path(path)
    if path.suffix.lower() in UNSUPPORTED_EXTENSIONS:
        raise AudioError("unsupported_format", f"{path.suffix} is not a format libsndfile reads")
    try:
        if path.stat().st_size == 0:
            raise AudioError("empty", "zero-byte file")
        if path.suffix.lower() in OGG_EXTENSIONS:
            check_ogg_pages(path)
        with sf.SoundFile(os.fsencode(path)) as fh:  # bytes: any file name, even one not valid UTF-8
            rate, n, channels = fh.samplerate, fh.frames, fh.channels
            if n <= 0 or channels <= 0:
                raise AudioError("empty", "no audio samples")
            check_header(rate, n)
            frag = fragment_of(n, rate)
            if fh.seekable():
                fh.seek(frag.start)
            else:  # read and drop whole blocks up to the fragment, never the whole file
                skip = frag.start
                while skip > 0:
                    got = len(fh.read(min(skip, _BLOCK), dtype="float32", always_2d=True))
                    if got == 0:
                        break  # the stream ended early: reported below as a short read
                    skip -= got
            data = fh.read(frag.length, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except sf.LibsndfileError as exc:
        text = str(exc)  # corrupt, truncated, or not the format its name says
        raise AudioError("unreadable", text.split(": ", 1)[-1] if ": " in text else text) from None
    except (RuntimeError, OSError, ValueError, EOFError) as exc:
        raise AudioError("unreadable", f"{type(exc).__name__}: {exc}") from None
    if len(data) == 0:
        raise AudioError("empty", "no audio samples could be read")
    check_complete(len(data), frag.length, rate)
    return Decoded(samples=to_mono_16k(data, rate), duration=n / rate)
