"""The 512-d window descriptor: what `artistsim featurize` puts in each column of (512, T).

One short-time Fourier transform per track (torch, n_fft 1024 = 64 ms, hop 300 samples =
18.75 ms, Hann, at 16 kHz) gives F = 39 (T - 1) + 77 frames; window t (1.5 s) is frames
[39 t, 39 t + 77). Frame-level curves are computed once for the whole fragment, then cut
into windows with `Tensor.unfold` (a view), and every statistic below is one reduction
over the window axis: no Python loop over windows.

Frame-level curves (units chosen so that each group spans roughly -10..1 or 0..1):
- log-mel: 64 triangular mel bands (HTK mel scale, 30 Hz - 8 kHz) of the power spectrum,
  log10 (bels). The STFT is scaled so a full-scale sine has peak magnitude 1: a loud
  band is near 0, digital silence is -10.
- MFCC: the orthonormal DCT-II of the 64 log-mel values, coefficients 0..31.
- chroma: the power of STFT bins 65 Hz - 4.2 kHz folded onto 12 pitch classes (C = 0,
  C# = 1, ..., A = 9, B = 11; Gaussian weight 0.5 semitone wide), each frame divided by
  its sum (a distribution over the 12 classes).
- shape (8 curves): log10 frame power, spectral centroid / 8 kHz, bandwidth / 8 kHz,
  85% roll-off (centre frequency of the mel band where the cumulative mel energy passes
  85%) / 8 kHz, spectral flatness of the mel energies (geometric / arithmetic mean,
  0..1), onset strength (mean positive rise of the log-mel bands from the previous
  frame), share of power above 4 kHz, share below 250 Hz.

The 512 numbers of one window, in order (`GROUPS` names the slices):
-   0- 63  log-mel mean of band 0..63 over the window
-  64-127  log-mel standard deviation of band 0..63
- 128-191  mean |frame-to-frame change| of log-mel band 0..63 (how much each band moves)
- 192-223  MFCC 0..31 mean
- 224-255  MFCC 0..31 standard deviation
- 256-267  chroma mean, pitch class C..B
- 268-279  chroma standard deviation, pitch class C..B
- 280-287  shape curves' means, in the order listed above
- 288-295  shape curves' standard deviations
- 296-303  spectral contrast: mean over frames of (max - min) log-mel within each of 8
           groups of 8 adjacent bands (peaks against valleys: tonal vs noisy)
- 304-311  spectral valley: mean over frames of the min log-mel in each group of 8 bands
- 312-351  rhythm: autocorrelation of the onset-strength curve at lags 1..40 frames
           (18.75 ms .. 750 ms), divided by its lag-0 value (-1..1): beat periodicity
- 352-511  modulation spectrum: 16 coarse bands (means of 4 adjacent log-mel bands) x 10
           modulation frequencies k * 0.693 Hz, k = 1..10 (0.69 - 6.9 Hz): log10(0.01 +
           the magnitude, in bels, of each band's Hann-windowed envelope at that rate);
           band-major (352 + 10 * band + (k - 1)). The log scale was chosen on the real
           set (benchmarks/bench_featurize.py): LDA nDCG 0.632 against 0.627 linear.

`featurize_array` and `featurize_file` are the stable entry points (the catalogue's
`--audio` paths call them): audio in, (512, T) float32 out, AudioError for bad audio.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from artistsim.audio.decode import (
    HOP,
    SAMPLE_RATE,
    WINDOW,
    AudioError,
    centre_fragment,
    check_header,
    check_signal,
    decode_fragment,
    to_mono_16k,
)
from artistsim.data.provenance import Frontend

N_FFT = 1024
STFT_HOP = 300
FRAMES_PER_WINDOW = 1 + (WINDOW - N_FFT) // STFT_HOP  # 77
FRAMES_PER_HOP = HOP // STFT_HOP  # 39
N_MELS = 64
N_MFCC = 32
MEL_FMIN, MEL_FMAX = 30.0, 8000.0
CHROMA_FMIN, CHROMA_FMAX = 65.0, 4200.0
N_LAGS = 40
N_MOD_BANDS, N_MOD_FREQS = 16, 10
FLOOR = 1e-10  # power floor: log10 gives -10 for digital silence
MOD_FLOOR = 1e-2  # modulation floor (bels): envelopes flatter than this all read -2

GROUPS: dict[str, slice] = {
    "logmel_mean": slice(0, 64),
    "logmel_std": slice(64, 128),
    "logmel_delta": slice(128, 192),
    "mfcc_mean": slice(192, 224),
    "mfcc_std": slice(224, 256),
    "chroma_mean": slice(256, 268),
    "chroma_std": slice(268, 280),
    "shape_mean": slice(280, 288),
    "shape_std": slice(288, 296),
    "contrast": slice(296, 304),
    "valley": slice(304, 312),
    "onset_autocorr": slice(312, 352),
    "modulation": slice(352, 512),
}
DIM = 512
# Bumped whenever any number of the descriptor changes: a folder featurized by another
# version is refused rather than silently mixed (artistsim.audio.featurize).
VERSION = 3
assert FRAMES_PER_HOP * STFT_HOP == HOP and GROUPS["modulation"].stop == DIM


def frontend() -> Frontend:
    """This descriptor's provenance record (`artistsim.data.provenance`), written by featurize."""
    return Frontend("dsp", str(VERSION), DIM, {"sample_rate": SAMPLE_RATE, "window": WINDOW, "hop": HOP})


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def bin_frequencies() -> np.ndarray:
    """Centre frequency (Hz) of each of the N_FFT // 2 + 1 STFT bins."""
    return np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT


def mel_edges() -> np.ndarray:
    """N_MELS + 2 band edges (Hz): band b rises from edge b, peaks at b + 1, falls to b + 2."""
    return _mel_to_hz(np.linspace(_hz_to_mel(np.array(MEL_FMIN)), _hz_to_mel(np.array(MEL_FMAX)), N_MELS + 2))


@functools.lru_cache(maxsize=1)
def _matrices() -> dict[str, np.ndarray]:
    """The fixed linear maps (mel, DCT, chroma), built once per process."""
    freqs = bin_frequencies()
    edges = mel_edges()
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    mel = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    n = np.arange(N_MELS)
    dct = np.sqrt(2.0 / N_MELS) * np.cos(np.pi * np.arange(N_MFCC)[:, None] * (n + 0.5) / N_MELS)
    dct[0] /= np.sqrt(2.0)
    chroma = np.zeros((12, len(freqs)))
    keep = (freqs >= CHROMA_FMIN) & (freqs <= CHROMA_FMAX)
    pitch = 69.0 + 12.0 * np.log2(freqs[keep] / 440.0)  # MIDI number; 60 = middle C
    dist = (pitch[None, :] - np.arange(12)[:, None]) % 12.0
    dist = np.minimum(dist, 12.0 - dist)
    chroma[:, keep] = np.exp(-0.5 * (dist / 0.5) ** 2)
    moments = np.stack([np.ones_like(freqs), freqs, freqs**2, freqs > 4000, freqs < 250]).astype(np.float64)
    return {"mel": mel, "dct": dct, "chroma": chroma, "moments": moments, "mel_centres": edges[1:-1]}


@functools.lru_cache(maxsize=1)
def _torch_matrices() -> dict:
    import torch

    return {k: torch.from_numpy(v).float() for k, v in _matrices().items()}


def _windows(curves, size: int = FRAMES_PER_WINDOW):
    """(..., F) frame curves -> (T, ..., size) windows (a view over the frames)."""
    w = curves.unfold(-1, size, FRAMES_PER_HOP)  # (..., T, size)
    return w.movedim(-2, 0)


def _mean_std(curves) -> tuple:
    w = _windows(curves)
    return w.mean(-1), w.std(-1, unbiased=False)


def window_descriptors(x: np.ndarray) -> np.ndarray:
    """Descriptors of a checked mono 16 kHz fragment holding exactly T windows: (512, T)."""
    import torch

    m = _torch_matrices()
    sig = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    win = torch.hann_window(N_FFT, periodic=True)
    spec = torch.stft(sig, N_FFT, STFT_HOP, window=win, center=False, return_complex=True)
    power = spec.real.square().add_(spec.imag.square()).mul_(1.0 / float(win.sum() / 2) ** 2)  # (513, F)
    mel_power = m["mel"] @ power
    logmel = torch.log10(mel_power + FLOOR)  # (64, F)
    t = 1 + (power.shape[1] - FRAMES_PER_WINDOW) // FRAMES_PER_HOP

    rise = torch.diff(logmel, dim=1)  # (64, F - 1)
    onset = torch.cat([torch.zeros(1), rise.clamp(min=0).mean(0)])  # (F,)
    mfcc = m["dct"] @ logmel
    chroma = m["chroma"] @ power
    chroma = chroma / (chroma.sum(0, keepdim=True) + FLOOR)
    shape = _shape_curves(power, mel_power, logmel, m, onset)

    parts = []
    parts += _mean_std(logmel)
    parts.append(_windows(rise.abs(), FRAMES_PER_WINDOW - 1).mean(-1))
    parts += _mean_std(mfcc)
    parts += _mean_std(chroma)
    parts += _mean_std(shape)
    groups = _windows(logmel.reshape(8, N_MELS // 8, -1))  # (T, 8, 8, 77)
    valley = groups.amin(2)
    parts.append((groups.amax(2) - valley).mean(-1))
    parts.append(valley.mean(-1))
    parts.append(_onset_autocorrelation(_windows(onset)))
    parts.append(_modulation(_windows(logmel.reshape(N_MOD_BANDS, N_MELS // N_MOD_BANDS, -1).mean(1))))
    out = torch.cat([p.reshape(t, -1) for p in parts], dim=1)  # (T, 512)
    return np.ascontiguousarray(out.T.numpy(), dtype=np.float32)


def _shape_curves(power, mel_power, logmel, m, onset):
    """The 8 shape curves of the module docstring, (8, F).

    The spectral moments and band shares are one (5, 513) @ (513, F) product; flatness
    and roll-off are taken over the 64 mel energies, which is ~8x cheaper than over the
    513 STFT bins and as informative at this resolution.
    """
    import torch

    total, first, second, high, low = (m["moments"] @ power).unbind(0)
    total = total + FLOOR
    centroid = first / total
    bandwidth = (second / total - centroid.square()).clamp(min=0).sqrt()
    mel_total = mel_power.sum(0) + FLOOR
    rolloff_band = (mel_power.cumsum(0) < 0.85 * mel_total).sum(0).clamp(max=N_MELS - 1)
    flatness = torch.exp(logmel.mean(0) * np.log(10.0)) / (mel_power.mean(0) + FLOOR)
    nyq = SAMPLE_RATE / 2
    return torch.stack([
        torch.log10(total),
        centroid / nyq,
        bandwidth / nyq,
        m["mel_centres"][rolloff_band] / nyq,
        flatness.clamp(max=1.0),
        onset,
        high / total,
        low / total,
    ])


def _onset_autocorrelation(w):
    """(T, 77) onset windows -> (T, N_LAGS) autocorrelation at lags 1..N_LAGS over lag 0."""
    import torch

    w = w - w.mean(-1, keepdim=True)
    spec = torch.fft.rfft(w, n=256)
    ac = torch.fft.irfft(spec.real.square() + spec.imag.square(), n=256)
    return ac[:, 1 : N_LAGS + 1] / (ac[:, :1] + 1e-3)


def _modulation(w):
    """(T, 16, 77) coarse-band windows -> (T, 16 * 10) envelope magnitudes at 0.69..6.9 Hz."""
    import torch

    taper = torch.hann_window(FRAMES_PER_WINDOW, periodic=False)
    w = (w - w.mean(-1, keepdim=True)) * taper
    mag = torch.fft.rfft(w).abs()[..., 1 : N_MOD_FREQS + 1] / (taper.sum() / 2)
    return torch.log10(mag + MOD_FLOOR).reshape(len(w), -1)


def featurize_array(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Audio in memory ((n,) or (n, channels), any rate) -> (512, T) float32 descriptors.

    The same path as files: the centred fragment is cut at the native rate (so only it is
    resampled), mixed down, resampled to 16 kHz and described. Raises AudioError (reason
    nan / too_short / silent) for audio that has no usable window.
    """
    x = np.asarray(samples)
    check_header(int(sample_rate), len(x))
    x = to_mono_16k(centre_fragment(x, int(sample_rate)), int(sample_rate))
    return describe_samples(x)


def featurize_file(path: str | Path) -> np.ndarray:
    """An audio file -> (512, T) float32; decodes only the fragment used.

    AudioError if bad, its message naming the file (a CLI user may give several; the
    batch job journals the reason next to the path instead).
    """
    try:
        return describe_samples(decode_fragment(path).samples)
    except AudioError as exc:
        raise AudioError(exc.reason, f"{path}: bad audio ({exc.reason}): {exc}") from None


def describe_samples(x: np.ndarray) -> np.ndarray:
    """A mono 16 kHz fragment (already cut) -> (512, T); AudioError if it has no usable window."""
    t = check_signal(x)
    return window_descriptors(x[: HOP * (t - 1) + WINDOW])
