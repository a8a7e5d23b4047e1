"""Synthetic data in the exact competition layout, so the whole pipeline runs without the real set.

Why a structured generator and not noise: a model can only be tested for what the data
let it learn. Frames here are built so that the easy summaries (the mean over frames,
mean + std with LDA) recover only a small part of who the artist is, while a per-frame
nonlinear function pooled over time (what a transformer's feed-forward layers and mean
pooling compute) recovers much more. A pipeline that trains correctly must therefore beat
the pooling baselines clearly; one that is broken (ids confused with positions, padding
fed as data, labels shuffled) falls back to or below them.

## The layout written (REFERENCE.md; by `synth.writer`)
`OUT/train_meta.tsv` (`trackid  artistid  archive_features_path`), `OUT/test_meta.tsv`
(`trackid  archive_features_path`), `OUT/test_gt.tsv` (`trackid  artistid`, the test
split's ground truth), and one float32 `.npy` of shape (512, T), 1 <= T <= 81, per track at
`OUT/{split}_features/{fold}/{trackid}.npy` with `fold = trackid % 10` -- or, with
`nested=True`, at `OUT/{split}_features/{split}_features/...` as the released archives
unpack. Track ids are unique over both splits and drawn from a range much larger than
their count; artist ids are random, non-contiguous, and test artists are disjoint from
train artists, so a reader that confuses ids with positions fails loudly. Meta rows are
sorted by track id, so tracks of one artist are not adjacent either.

## How a track is made: genre -> artist -> album -> track -> section -> frame
Every frame is a latent vector z in R^D, D = d_mean + d_style + d_generic, in three
blocks, turned into 512 "CNN outputs" by a fixed random map shared by all tracks:

    x = scale * softplus(W z + bias + loudness + noise)            (512 channels, >= 0)

`W` (512 x D) mixes the blocks into every channel, `bias` (mostly negative) makes most
channels sparse as after a ReLU, `scale` is a per-channel log-normal gain, `loudness` a
per-track shift of all channels, `noise` an independent per-channel, per-frame term.

- Genre: a centre in the mean block, shared by many artists (train and test alike). It
  makes tracks of *different* artists of one genre look alike to a mean-pooled vector:
  realistic confusers, not artist signal.
- Artist: (a) a weak offset from its genre centre in the mean block -- the only artist
  signal a plain average can see; (b) a *style subspace* U_a: k_a (1-3) random orthonormal
  directions in the style block. This is the main signal, and averaging destroys it (below).
- Album / session: 1-4 per artist; each adds an offset in the mean block (so a track's
  nearest mean-pooled neighbours are its album-mates before its other albums) and slightly
  rotates the artist's style subspace (a band's sound drifts between records).
- Track: a mean-block offset (larger than the artist's own, so the mean is a noisy clue)
  and a loudness shift; a length (about 15% of tracks
  are shorter than 81 frames, lengths 10-80; a rare few are 1-9 frames long, to exercise
  edge cases).
- Sections (2-6 per track, random lengths): each holds a latent state: a drift in the mean
  block plus `style_strength * U_album @ c` with c a random unit vector of R^k_a drawn per
  section (for k_a = 1, c = +-1: the artist's direction flips sign from section to
  section). c has mean zero, so over a track's sections the style terms cancel in the
  average and add up only in the second moment: the artist lives in *which directions the
  frames move along*, not in where they are on average. A network recovers it with a
  per-frame nonlinearity before pooling (e.g. mean |v . x| for v inside the style space);
  a mean over frames cannot. (The softplus makes a small part of it leak into the mean,
  as curvature: realistic and measured by the calibration below.)
- Frames: within a section, frames are the section state plus AR(1) noise (correlation
  `frame_rho` from one frame to the next), so neighbouring frames are alike and a section
  persists over several frames.
- Generic frames (30-60% of each track's frames, in runs of a few frames): drawn from a
  global pool of prototypes shared by all artists (think applause, silence, drum fills,
  a common synth pad). They carry no artist information, live mostly in the generic block
  (so a network can learn to ignore them) but, through `W`, move every channel -- which is
  what drowns the style signal in per-channel statistics such as the std.

## Nuisance presets (`synth_nuisance`)
`albums`, `genres`, `mixed`, `holdout`, `holdout_wide` keep about the demo's sizes and add the
nuisance of real catalogues (studio/album effects, genre timbre, long generic blocks, loudness,
EQ, near-duplicates), off in `demo`. On `albums` a linear LDA beats the demo recipe; `holdout`
and `holdout_wide` (other structures, knobs fixed before any model ran) are never tuned on.

## Calibration (demo preset, test split; figures measured with a scratch script)
nDCG@100 with competition semantics (cosine, self excluded, single-track queries skipped):

| seed | mean-pool | LDA on (mean, std), fitted on train | nonlinear probe |
|---|---|---|---|
| 0 | 0.236 | 0.347 | 0.602 |
| 1 | 0.240 | 0.362 | 0.679 |
| 0, `style_strength=0` | 0.225 | 0.275 | 0.238 |

The probe is LDA (fitted on the train artists) on the mean over frames of |r . y| for
1,024 random directions r of the PCA-whitened frame y: a per-frame nonlinearity before
pooling, which a network's feed-forward layers can learn. With the style switched off
(last row) it falls to the baselines' level while mean-pool barely moves: the headroom is
exactly the part of the artist that averaging destroys. The default knob values of
`SynthPreset` are these calibrated ones; change them only together with a new calibration
(`tests/synth/test_generator.py` holds a miniature of it).

## Determinism and memory
Everything follows from `seed`: the shared "world" (W, bias, scale, genre centres, generic
pool), each split's plan (artist ids, tracks per artist, track ids, lengths) and one random
stream per artist (`SeedSequence(seed, spawn_key=(split, artist_index))`), so the bytes do
not depend on chunking, and the `full` preset streams artist by artist in bounded memory:
only the plan (a few MB) is held, never the features. Same seed, same bytes on one
machine (a float32 BLAS product may round differently on another CPU). Speed: about
1,000 tracks/s written on one core (demo: ~4 s; full: ~4 min of compute, 32 GB of disk).

Public API: `SynthPreset`, `PRESETS`, `generate` (writes a dataset), `split_plan` (ids,
counts and lengths, no features), `iter_split` (streams `(features, artist_id, track_ids)`
one artist at a time) and `sample_split` (a whole split in memory, for tests/calibration).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import artistsim.synth.nuisance as nz
from artistsim.synth.plan import (
    _SPLIT_CODE,
    MAX_FRAMES,
    SynthPreset,
    resolve_preset,
    split_plan,
)

__all__ = ["FEATURE_DIM", "iter_split", "sample_split"]

FEATURE_DIM = 512
_WORLD_CODE = 0
_MAX_SECTIONS = 6


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class _World:
    """What all tracks of one seed share: the latent -> channel map and the global pools."""

    mix: np.ndarray  # (D, 512)
    bias: np.ndarray  # (512,)
    scale: np.ndarray  # (512,)
    genre_centres: np.ndarray  # (n_genres, d_mean)
    genre_p: np.ndarray  # (n_genres,) popularity
    generic_pool: np.ndarray  # (n_generic, D)
    nuisance: nz.NuisanceWorld | None  # None when every nuisance knob is off (demo)


def _make_world(p: SynthPreset, seed: int) -> _World:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_WORLD_CODE,))))
    d = p.d_latent
    mix = (rng.standard_normal((d, FEATURE_DIM)) / np.sqrt(d)).astype(np.float32)
    bias = (p.bias_mean + p.bias_std * rng.standard_normal(FEATURE_DIM)).astype(np.float32)
    scale = (0.5 * np.exp(0.4 * rng.standard_normal(FEATURE_DIM))).astype(np.float32)
    genre_centres = p.genre_scale * rng.standard_normal((p.n_genres, p.d_mean))
    genre_p = 1.0 / np.arange(1, p.n_genres + 1) ** 0.8  # a few big genres, many small
    genre_p = rng.permutation(genre_p / genre_p.sum())
    pool = np.zeros((p.n_generic, d))
    pool[:, : p.d_mean] = p.generic_mean_scale * rng.standard_normal((p.n_generic, p.d_mean))
    pool[:, p.d_mean + p.d_style :] = p.generic_scale * rng.standard_normal((p.n_generic, p.d_generic))
    nuisance = nz.make_nuisance_world(p, seed, _WORLD_CODE, FEATURE_DIM) if nz.nuisance_on(p) else None
    return _World(mix, bias, scale, genre_centres, genre_p, pool, nuisance)


# --------------------------------------------------------------------------- features


def _orthonormal(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), stable for large |x|; overwrites `x` to spare memory traffic.

    `log(1 + y)` instead of `log1p(y)`: 3x faster in numpy, and the precision it loses
    (for y < 1e-7, i.e. x < -16) only turns values below 1e-7 into exact zeros.
    """
    y = np.abs(x)
    np.negative(y, out=y)
    np.exp(y, out=y)
    y += 1.0
    np.log(y, out=y)
    np.maximum(x, 0.0, out=x)
    x += y
    return x


def _ar1(rng: np.random.Generator, shape: tuple[int, int, int], rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise along axis 1 (frames): neighbouring frames are alike."""
    eps = rng.standard_normal(shape)
    out = np.empty(shape)
    out[:, 0] = eps[:, 0]
    c = np.sqrt(1.0 - rho * rho)
    for t in range(1, shape[1]):
        out[:, t] = rho * out[:, t - 1] + c * eps[:, t]
    return out


def _generic_mask(rng: np.random.Generator, p: SynthPreset, n: int) -> np.ndarray:
    """(n, 81) bool: frames drawn from the generic pool, in runs (a two-state Markov chain)."""
    lo, hi = p.generic_fraction
    f = rng.uniform(lo, hi, size=n)
    leave_generic = 1.0 / p.generic_run
    leave_artist = leave_generic * f / (1.0 - f)  # stationary share of generic frames = f
    u = rng.random((n, MAX_FRAMES))
    mask = np.empty((n, MAX_FRAMES), dtype=bool)
    mask[:, 0] = u[:, 0] < f
    for t in range(1, MAX_FRAMES):
        prev = mask[:, t - 1]
        mask[:, t] = np.where(prev, u[:, t] >= leave_generic, u[:, t] < leave_artist)
    return mask


def _section_ids(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """(n, 81) section index per frame: 2-6 sections of random lengths over each track's frames."""
    n = len(lengths)
    n_sec = rng.integers(2, _MAX_SECTIONS + 1, size=n)
    cuts = np.sort(rng.random((n, _MAX_SECTIONS - 1)), axis=1) * lengths[:, None]
    cuts = np.where(np.arange(_MAX_SECTIONS - 1)[None, :] < (n_sec - 1)[:, None], np.ceil(cuts), np.inf)
    cuts = np.sort(cuts, axis=1)
    t = np.arange(MAX_FRAMES, dtype=float)
    return (cuts[:, None, :] <= t[None, :, None]).sum(axis=2)


def _artist_tracks(
    world: _World, p: SynthPreset, seed: int, split: str, index: int, lengths: np.ndarray
) -> list[np.ndarray]:
    """All tracks of one artist: a list of float32 (512, T) arrays (see module docstring)."""
    rng = np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_SPLIT_CODE[split], index)))
    )
    n = len(lengths)
    dm, ds = p.d_mean, p.d_style
    # artist
    genre = rng.choice(p.n_genres, p=world.genre_p)
    centre = world.genre_centres[genre] + p.artist_mean_scale * rng.standard_normal(dm)
    k = int(rng.integers(1, 4))
    style = _orthonormal(rng, ds, k)
    # albums
    n_albums = int(min(1 + rng.poisson(p.albums_extra), p.max_albums, n))
    album_off = p.album_scale * rng.standard_normal((n_albums, dm))
    drift = p.album_style_drift * rng.standard_normal((n_albums, ds, k))
    album_style = np.linalg.qr(style[None] + drift)[0]  # (n_albums, ds, k), batched QR
    album = rng.integers(0, n_albums, size=n)
    album[:n_albums] = np.arange(n_albums)  # every album has a track
    # tracks
    track_mean = centre + album_off[album] + p.track_scale * rng.standard_normal((n, dm))
    loudness = p.loudness_scale * rng.standard_normal(n)
    # sections
    sec = _section_ids(rng, lengths)  # (n, 81)
    sec_drift = p.section_scale * rng.standard_normal((n, _MAX_SECTIONS, dm))
    c = rng.standard_normal((n, _MAX_SECTIONS, k))
    c /= np.linalg.norm(c, axis=2, keepdims=True)
    sec_style = p.style_strength * np.einsum("nsk,ndk->nsd", c, album_style[album])  # (n, S, ds)
    rows = np.arange(n)[:, None]
    nw = world.nuisance
    nrng = nz.artist_rng(seed, _SPLIT_CODE[split], index) if nw is not None else None
    if nw is not None:  # timbre shared by the genre's artists
        g = nz.genre_style(nrng, p, nw, genre, n, _MAX_SECTIONS)
        sec_style = sec_style if g is None else sec_style + g
    z = np.zeros((n, MAX_FRAMES, p.d_latent))
    z[:, :, :dm] = track_mean[:, None, :] + sec_drift[rows, sec]
    z[:, :, dm : dm + ds] = sec_style[rows, sec]
    # generic frames replace the artist's latent state with a pool prototype
    gmask = _generic_mask(rng, p, n)
    run = np.cumsum(np.diff(gmask, axis=1, prepend=False), axis=1)  # run index per frame
    proto = rng.integers(0, p.n_generic, size=(n, MAX_FRAMES + 1))[rows, run]
    block = nz.long_generic_blocks(nrng, p, p.n_generic, lengths) if nw is not None else None
    if block is not None:  # one long block of a single prototype
        gmask = gmask | block[0]
        proto = np.where(block[0], block[1][:, None], proto)
    z = np.where(gmask[:, :, None], world.generic_pool[proto], z)
    z += p.frame_noise * _ar1(rng, z.shape, p.frame_rho)
    if nw is not None:  # re-releases copy another track's frames (and album)
        z, album = nz.duplicates(nrng, p, z, album)
    # the big arrays in float32, the map as one 2-D BLAS product (a 3-D matmul is ~10x slower)
    pre = (z.reshape(-1, p.d_latent).astype(np.float32) @ world.mix).reshape(n, MAX_FRAMES, -1)
    pre += world.bias + loudness.astype(np.float32)[:, None, None]
    fx = nz.album_effects(nrng, p, nw, album) if nw is not None else None
    if fx is not None:
        pre += fx[:, None, :]
    # independent per-channel noise; uniform with the same std as N(0, channel_noise^2),
    # because drawing 40k normals per track costs more than everything else here
    noise = rng.random(pre.shape, dtype=np.float32)
    noise -= 0.5
    noise *= np.float32(p.channel_noise * np.sqrt(12.0))
    pre += noise
    x = world.scale * _softplus(pre)  # (n, 81, 512) float32
    gain = nz.track_gains(nrng, p, nw, n) if nw is not None else None
    if gain is not None:  # loudness and EQ of each release
        x *= gain[:, None, :]
    return [np.ascontiguousarray(x[i, : lengths[i]].T) for i in range(n)]


def iter_split(
    preset: str | SynthPreset = "demo", seed: int = 0, split: str = "train"
) -> Iterator[tuple[list[np.ndarray], int, np.ndarray]]:
    """Stream a split one artist at a time: `(features, artist_id, track_ids)`.

    `features` is a list of float32 arrays of shape (512, T), one per track of the artist,
    in the order of `track_ids`. Memory stays bounded by the largest artist (60 tracks).
    """
    p = resolve_preset(preset)
    plan = split_plan(p, seed, split)
    world = _make_world(p, seed)
    for i, aid in enumerate(plan.artist_ids):
        lo, hi = plan.offsets[i], plan.offsets[i + 1]
        feats = _artist_tracks(world, p, seed, split, i, plan.lengths[lo:hi])
        yield feats, int(aid), plan.track_ids[lo:hi]


def sample_split(
    preset: str | SynthPreset = "demo", seed: int = 0, split: str = "train"
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """A whole split in memory: `(features, artist_labels, track_ids)`, grouped by artist.

    `features[i]` is float32 (512, T_i); `artist_labels[i]` its artist id and `track_ids[i]`
    its track id (int64 arrays). The bytes equal those `generate` writes for the same
    preset and seed. Meant for tests and calibration: never call it on the `full` preset.
    """
    feats: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for f, aid, tids in iter_split(preset, seed, split):
        feats.extend(f)
        labels.append(np.full(len(tids), aid, dtype=np.int64))
        ids.append(tids)
    return feats, np.concatenate(labels), np.concatenate(ids)
