"""musicnn (Pons & Serra, 2019) in PyTorch, with the weights the `musicnn` package ships.

Why here: a tagger trained on a million songs describes music far better than a
hand-designed descriptor (issue 23: untrained mean-pool nDCG 0.613 against 0.518), and
its original code needs TensorFlow 2.15 with numpy < 2, which cannot share this
environment. The architecture is re-written from the paper and the package's model
description; the weights are read from its TF1 checkpoints by `artistsim.audio.tf_bundle`
(never copied into the repository, never cached).

The network, for one 3 s window (187 frames x 96 mel bands, time is the conv "height"):
- input batch norm (one channel);
- front end, musically motivated filters, each conv -> ReLU -> batch norm -> max over
  frequency: timbral (7 frames x 38 bands, 7 x 67 bands; 204 filters each, time padded
  3 + 3) and temporal (128, 64, 32 frames x 1 band; 51 filters each, TF "same" padding);
  concatenated: 561 channels per frame;
- mid end: three 1-D convs over time (7 frames, 64 filters, ReLU -> batch norm), the 2nd
  and 3rd with residual connections; the front end and all three outputs concatenated:
  753 channels per frame;
- back end: max and mean over the 187 frames (753 each), interleaved (max, mean) per
  channel, batch norm, dense 200 + ReLU + batch norm ("penultimate"), dense 50 -> sigmoid
  (the taggram).

The input is the package's log-mel: librosa's Slaney mel filterbank (96 bands, 0-8 kHz)
of the power STFT (n_fft 512, hop 256, Hann, centred frames) at 16 kHz, rounded to float16
(as the package does), then log10(1 + 10000 x).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

SR = 16_000
N_FFT = 512
MEL_HOP = 256
N_MELS = 96
PATCH = 187  # frames in 3 s: the window the models were trained on
BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default
MODELS = ("MSD_musicnn", "MTT_musicnn")
LAYERS = {"mean_pool": 753, "max_pool": 753, "pool": 1506, "penultimate": 200, "taggram": 50}


class MusicnnError(ValueError):
    """The musicnn weights are missing or do not fit the network (one line, naming the file)."""


def checkpoint_prefix(model: str) -> str:
    """Where the installed `musicnn` package keeps `model`'s checkpoint: `<dir>/` (files `.index`, `.data-*`)."""
    try:
        import musicnn  # the package's __init__ imports nothing heavy
    except ImportError:
        raise MusicnnError("the musicnn front end needs the `musicnn` package's weights: "
                           "pip install --no-deps musicnn==0.1.0 (make setup does)") from None
    return f"{Path(musicnn.__file__).resolve().parent / model}/"


# --------------------------------------------------------------------------- log-mel


def _slaney_mel(f):
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0), lin)


def _slaney_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), (200.0 / 3) * m)


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(96, 257) Slaney-scale, Slaney-normalised triangles, 0 Hz - 8 kHz (librosa's defaults)."""
    freqs = np.linspace(0.0, SR / 2, N_FFT // 2 + 1)
    edges = _slaney_hz(np.linspace(_slaney_mel(0.0), _slaney_mel(SR / 2), N_MELS + 2))
    ramps = edges[:, None] - freqs[None, :]
    widths = np.diff(edges)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


def log_mel(x, device=None):
    """A mono 16 kHz signal (numpy or tensor) -> (F, 96) log-mel, F = 1 + n // 256, on `device`."""
    import torch

    sig = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32) if isinstance(x, np.ndarray) else x,
                          device=device)
    win = torch.hann_window(N_FFT, periodic=True, device=sig.device)
    spec = torch.stft(sig, N_FFT, MEL_HOP, window=win, center=True, pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (257, F)
    mel = torch.as_tensor(mel_filterbank(), device=sig.device) @ power
    mel = mel.half().float()  # the package stores the mel spectrogram as float16 before the log
    return torch.log10(1.0 + 10000.0 * mel).T.contiguous()


# --------------------------------------------------------------------------- the network


@functools.lru_cache(maxsize=1)
def _module_class():
    """The nn.Module, defined lazily so importing this module does not import torch."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Musicnn(nn.Module):
        """musicnn with frozen weights: every parameter is a buffer (inference only)."""

        def __init__(self, w: dict[str, np.ndarray]):
            super().__init__()
            t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
            for i in range(11):  # batch norms folded to scale and shift
                name = "batch_normalization" + (f"_{i}" if i else "")
                scale = w[f"{name}/gamma"] / np.sqrt(w[f"{name}/moving_variance"] + BN_EPS)
                self.register_buffer(f"bn{i}_s", t(scale))
                self.register_buffer(f"bn{i}_b", t(w[f"{name}/beta"] - w[f"{name}/moving_mean"] * scale))
            for i in range(5):  # front end: TF (h, w, in, out) -> torch (out, in, h, w)
                self.register_buffer(f"conv{i}_w", t(w[f"conv2d{f'_{i}' if i else ''}/kernel"].transpose(3, 2, 0, 1)))
                self.register_buffer(f"conv{i}_b", t(w[f"conv2d{f'_{i}' if i else ''}/bias"]))
            for i in range(5, 8):  # mid end: (7, C, 1, 64) -> conv1d (64, C, 7)
                self.register_buffer(f"conv{i}_w", t(w[f"conv2d_{i}/kernel"][:, :, 0, :].transpose(2, 1, 0)))
                self.register_buffer(f"conv{i}_b", t(w[f"conv2d_{i}/bias"]))
            self.register_buffer("dense0_w", t(w["dense/kernel"].T))
            self.register_buffer("dense0_b", t(w["dense/bias"]))
            self.register_buffer("dense1_w", t(w["dense_1/kernel"].T))
            self.register_buffer("dense1_b", t(w["dense_1/bias"]))

        def _bn(self, x, i: int, dim: int = 1):
            shape = [1] * x.dim()
            shape[dim] = -1
            return x * getattr(self, f"bn{i}_s").view(shape) + getattr(self, f"bn{i}_b").view(shape)

        def _pooled(self, y, i: int):
            """conv -> +bias -> ReLU -> batch norm -> max over frequency, for conv output y (N, C, L, P).

            Bias, ReLU and a per-channel affine map are monotone in y (decreasing where the
            batch norm's scale is negative), so the max over frequency is taken first (the
            min where the scale is negative): the same numbers, without three passes over
            the largest tensor of the network (they took 40% of its time).
            """
            lo, hi = torch.aminmax(y, dim=3)
            scale = getattr(self, f"bn{i + 1}_s")
            y = torch.where((scale >= 0)[:, None], hi, lo) + getattr(self, f"conv{i}_b")[:, None]
            return self._bn(F.relu(y), i + 1)

        def _block(self, x, i: int):
            """Front-end block i (0, 1 timbral; 2..4 temporal) on (N, L, 96) normalised frames -> (N, C, L - k + 1).

            Valid in time (k: the filter's length in frames): the caller pads with zeros,
            (k - 1) // 2 before and k // 2 after, which is the original's padding for both
            kinds (timbral 3 + 3, temporal TF "same").
            """
            return self._pooled(F.conv2d(x[:, None], getattr(self, f"conv{i}_w")), i)

        def _pad(self, x, i: int, dim: int = 1):
            k = getattr(self, f"conv{i}_w").shape[2]
            pad = [0, 0] * (x.dim() - dim - 1) + [(k - 1) // 2, k // 2]
            return F.pad(x, pad)

        def forward(self, mel):
            """(N, 187, 96) log-mel patches -> dict of (N, D) layers (see LAYERS); the original's computation."""
            x = self._bn(mel, 0, dim=2)
            return self._back(torch.cat([self._block(self._pad(x, i), i) for i in range(5)], 1))

        def _shared(self, x, idx, i: int, chunk: int):
            """Block i's (T, C, 187) outputs for the windows x[idx], from one pass over the track.

            A filter of k frames sees in a window the same frames as in the track, except
            within (k - 1) // 2 frames of the window's start and k // 2 of its end, where
            the original pads zeros. So the block runs once over the track (in chunks of
            `chunk` frames: its output, 96 bands per filter, stays in cache) and only those
            edge frames are recomputed per window, from the window's own zero-padded edges.
            """
            k = getattr(self, f"conv{i}_w").shape[2]
            lo, hi = (k - 1) // 2, k // 2
            whole = self._pad(x, i, dim=0)[None]
            track = torch.cat([self._block(whole[:, a : a + chunk + k - 1], i) for a in range(0, len(x), chunk)], 2)[0]
            out = track[:, idx].transpose(0, 1).contiguous()  # (T, C, 187): right wherever no zero pad is reached
            left = F.pad(x[idx[:, : k - 1]], (0, 0, lo, 0))  # (T, lo + k - 1, 96) -> lo outputs
            right = F.pad(x[idx[:, PATCH - k + 1 :]], (0, 0, 0, hi))  # -> hi outputs
            step = max(1, 4 * 128 // k)  # windows per call: the edge outputs stay in cache too
            out[:, :, :lo] = torch.cat([self._block(left[a : a + step], i) for a in range(0, len(idx), step)])
            if hi:
                out[:, :, PATCH - hi :] = torch.cat([self._block(right[a : a + step], i)
                                                     for a in range(0, len(idx), step)])
            return out

        def _back(self, front):
            """(N, 561, 187) front-end features -> the layers of LAYERS."""
            c1 = self._bn(F.relu(F.conv1d(front, self.conv5_w, self.conv5_b, padding=3)), 6)
            r2 = self._bn(F.relu(F.conv1d(c1, self.conv6_w, self.conv6_b, padding=3)), 7) + c1
            r3 = self._bn(F.relu(F.conv1d(r2, self.conv7_w, self.conv7_b, padding=3)), 8) + r2
            mid = torch.cat([front, c1, r2, r3], 1)  # (N, 753, time)
            max_pool, mean_pool = mid.amax(2), mid.mean(2)
            flat = self._bn(torch.stack([max_pool, mean_pool], 2).flatten(1), 9)  # (max, mean) per channel
            penultimate = self._bn(F.relu(F.linear(flat, self.dense0_w, self.dense0_b)), 10)
            logits = F.linear(penultimate, self.dense1_w, self.dense1_b)
            return {"mean_pool": mean_pool, "max_pool": max_pool, "pool": torch.cat([mean_pool, max_pool], 1),
                    "penultimate": penultimate, "taggram": torch.sigmoid(logits)}

        def embed_track(self, mel, starts, batch: int = 8, chunk: int = 128):
            """Layers of the windows mel[s : s + 187] for s in `starts`, every front-end block shared.

            Why: the windows overlap ~4x, and each front-end filter sees the same frames in
            every window but near a window's edges (`_shared`). So every block runs once
            over the track and only those edge frames are recomputed per window: the same
            numbers as `forward`, several times faster per track (docs/featurize.md, "Speed").
            The mid and back ends then run on `batch` windows at a time (small batches keep
            their tensors in cache).
            mel: (F, 96) with every window inside; starts: (T,) int tensor.
            """
            x = self._bn(mel, 0, dim=1)  # (F, 96)
            idx = starts[:, None] + torch.arange(PATCH, device=mel.device)  # (T, 187)
            front = torch.cat([self._shared(x, idx, i, chunk) for i in range(5)], 1)  # (T, 561, 187)
            out = [self._back(front[a : a + batch]) for a in range(0, len(starts), batch)]
            return {k: torch.cat([o[k] for o in out]) for k in out[0]}

    return Musicnn


def load_weights(prefix: str | Path) -> dict[str, np.ndarray]:
    """The checkpoint's tensors, checked against the shapes the network needs (MusicnnError if not)."""
    from artistsim.audio.tf_bundle import BundleError, read_bundle

    try:
        w = read_bundle(prefix)
    except BundleError as exc:
        raise MusicnnError(str(exc)) from None
    need = {"conv2d/kernel": (7, 38, 1, 204), "conv2d_1/kernel": (7, 67, 1, 204), "conv2d_2/kernel": (128, 1, 1, 51),
            "conv2d_3/kernel": (64, 1, 1, 51), "conv2d_4/kernel": (32, 1, 1, 51), "conv2d_5/kernel": (7, 561, 1, 64),
            "conv2d_6/kernel": (7, 64, 1, 64), "conv2d_7/kernel": (7, 64, 1, 64), "dense/kernel": (1506, 200),
            "dense_1/kernel": (200, 50), "batch_normalization/gamma": (1,), "batch_normalization_9/gamma": (1506,),
            "batch_normalization_10/moving_variance": (200,)}
    for name, shape in need.items():
        if name not in w:
            raise MusicnnError(f"{prefix}: checkpoint has no tensor {name!r}; not a musicnn model")
        if w[name].shape != shape:
            raise MusicnnError(f"{prefix}: tensor {name!r} has shape {w[name].shape}, expected {shape}")
    return w


@functools.lru_cache(maxsize=4)
def load_model(model: str = "MSD_musicnn", device: str | None = None):
    """The network with `model`'s weights, in eval mode on `device` (CUDA if available else CPU)."""
    import torch

    if model not in MODELS:
        raise MusicnnError(f"unknown musicnn model {model!r}; choose from {', '.join(MODELS)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    net = _module_class()(load_weights(checkpoint_prefix(model)))
    return net.to(device).eval()
