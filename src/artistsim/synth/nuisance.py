"""Nuisance of real catalogues that the `demo` preset lacks, as opt-in knobs of `SynthPreset`.

Why: a recipe tuned on `demo` learned a world where the artist lives in *which directions
frames move along* and little else varies. Real catalogues add variation that is not the
artist, much of it shared by many tracks, and a linear model fitted on all training
artists at once (LDA) sees that scatter whole while a network sees 32 artists a batch.
Each knob below adds one such kind of nuisance; all default to 0 (off), and with every
knob off no random number is drawn here, so the `demo` bytes do not change.

- Album / recording effects (`album_fx_scale`, `album_fx_rank`): each album (session,
  studio, mastering chain) adds one constant offset to the pre-activation of every frame
  of its tracks. The offsets live in a world-wide subspace of `album_fx_rank` channel
  directions (low-rank), and at 0.5-1.0 they are stronger than the artist's own mean
  offset: a track's nearest mean-pooled neighbours become its album-mates, and tracks of
  two albums of one artist drift apart. With `album_fx_studios` > 0 the albums are
  recorded in a few studios shared by all artists, so the effect also pulls tracks of
  different artists together (a confuser, where a private album effect is a shortcut).
  `albums_extra` and `max_albums` set how many albums an artist has.
- Genre timbre (`genre_timbre`): every genre owns a 2-d subspace of the style block;
  each section of a track also moves along its genre's subspace with this strength. The
  second-moment signature that identifies an artist is then partly shared by every artist
  of the genre (a confuser for the per-frame nonlinear features, where `genre_scale` is
  one for the mean).
- Long generic sections (`generic_block`, `generic_block_len`): with this probability a
  track holds one long contiguous block (a share of its true frames drawn from
  `generic_block_len`) of a single generic prototype -- an intro, a breakdown, a long
  ambient pad -- on top of the short generic runs every preset has.
- Loudness and EQ (`gain_scale`, `eq_scale`): after the nonlinearity, each track's
  channels are multiplied by exp(gain + curve), a per-track global gain and a per-track
  channel gain curve from `_N_EQ` world-wide smooth basis curves (channels are ordered
  by nothing, so "smooth" means a low-rank curve, the way a mastering EQ acts on a few
  broad bands).
- Near-duplicates (`p_duplicate`): this share of an artist's tracks (never its first)
  re-release another of its tracks: the same latent frames shifted by up to 8 frames (a
  different excerpt of the same recording), the source's album effect, fresh channel
  noise and, when EQ is on, its own gain curve (a remaster).

Every draw comes from streams of its own, `SeedSequence(seed, spawn_key=(..., _CODE))`,
so switching one knob on does not change what the others produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from artistsim.synth.plan import MAX_FRAMES, SynthPreset

_NUISANCE_CODE = 7  # spawn-key suffix of the nuisance streams (world and per artist)
_N_EQ = 6  # world-wide basis curves of a track's channel gain
_DUP_SHIFT = 8  # a near-duplicate's excerpt starts up to this many frames away
_STUDIO_JITTER = 0.3  # an album's own deviation from its studio's sound
_GENRE_K = 2  # dimension of a genre's timbre subspace in the style block


def nuisance_on(p: SynthPreset) -> bool:
    """True when any nuisance knob of the preset is switched on."""
    return any(getattr(p, name) > 0 for name in (
        "album_fx_scale", "genre_timbre", "generic_block", "gain_scale", "eq_scale", "p_duplicate"))


@dataclass(frozen=True)
class NuisanceWorld:
    """What the nuisance of one seed shares across all tracks (None where its knob is off)."""

    fx_basis: np.ndarray | None  # (album_fx_rank, 512), rows of unit per-channel variance
    studios: np.ndarray | None  # (album_fx_studios, album_fx_rank) coefficients of shared studios
    eq_basis: np.ndarray | None  # (_N_EQ, 512), smooth-ish log-gain curves
    genre_space: np.ndarray | None  # (n_genres, d_style, _GENRE_K) orthonormal


def make_nuisance_world(p: SynthPreset, seed: int, world_code: int, n_channels: int) -> NuisanceWorld:
    """The shared nuisance of a seed: recording-chain directions, EQ curves, genre subspaces."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(world_code, _NUISANCE_CODE))))
    fx = rng.standard_normal((p.album_fx_rank, n_channels)).astype(np.float32) if p.album_fx_scale > 0 else None
    eq = None
    if p.eq_scale > 0:
        # low-frequency curves over a random channel order: broad "bands" of channels
        t = np.linspace(0.0, 1.0, n_channels)
        freqs = np.arange(1, _N_EQ + 1)[:, None]
        curves = np.cos(np.pi * freqs * t[None, :] + rng.uniform(0, 2 * np.pi, (_N_EQ, 1)))
        curves = curves[:, rng.permutation(n_channels)] * np.sqrt(2.0)  # unit variance per channel
        eq = curves.astype(np.float32)
    genre = None
    if p.genre_timbre > 0:
        genre = np.linalg.qr(rng.standard_normal((p.n_genres, p.d_style, _GENRE_K)))[0]
    studios = None
    if p.album_fx_scale > 0 and p.album_fx_studios > 0:
        studios = rng.standard_normal((p.album_fx_studios, p.album_fx_rank))
    return NuisanceWorld(fx, studios, eq, genre)


def artist_rng(seed: int, split_code: int, index: int) -> np.random.Generator:
    """The nuisance stream of one artist, apart from the stream of its core structure."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(split_code, index, _NUISANCE_CODE))))


def genre_style(rng: np.random.Generator, p: SynthPreset, nw: NuisanceWorld, genre: int, n: int,
                n_sections: int) -> np.ndarray | None:
    """(n, n_sections, d_style): each section's move along its genre's shared timbre subspace."""
    if nw.genre_space is None:
        return None
    c = rng.standard_normal((n, n_sections, _GENRE_K))
    c /= np.linalg.norm(c, axis=2, keepdims=True)
    return p.genre_timbre * np.einsum("nsk,dk->nsd", c, nw.genre_space[genre])


def long_generic_blocks(rng: np.random.Generator, p: SynthPreset, n_generic: int,
                        lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """One long contiguous generic block in a share `generic_block` of tracks.

    Returns `(block, proto)`: a (n, 81) bool mask of the block's frames and (n,) the one
    generic prototype each block holds; None when the knob is off.
    """
    if p.generic_block <= 0:
        return None
    n = len(lengths)
    has = rng.random(n) < p.generic_block
    lo, hi = p.generic_block_len
    size = np.maximum(1, np.round(rng.uniform(lo, hi, n) * lengths)).astype(np.int64)
    start = np.floor(rng.random(n) * np.maximum(lengths - size + 1, 1)).astype(np.int64)
    proto = rng.integers(0, n_generic, size=n)
    t = np.arange(MAX_FRAMES)[None, :]
    block = has[:, None] & (t >= start[:, None]) & (t < (start + size)[:, None])
    return block, proto


def duplicates(rng: np.random.Generator, p: SynthPreset, z: np.ndarray,
               album: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Near-duplicate tracks: a share of tracks copy another track's latent frames, shifted.

    Returns `(z, album)` with the copies written in; the copies keep the source's album
    (so its recording effect too). Channel noise and gain are drawn later, per track,
    so a copy is never bit-identical to its source.
    """
    n = len(z)
    if p.p_duplicate <= 0 or n < 2:
        return z, album
    is_dup = rng.random(n) < p.p_duplicate
    is_dup[0] = False
    src = np.floor(rng.random(n) * np.arange(n)).astype(np.int64)  # an earlier track
    shift = rng.integers(-_DUP_SHIFT, _DUP_SHIFT + 1, size=n)
    rows = np.flatnonzero(is_dup)
    if not len(rows):
        return z, album
    src = src[rows]
    while True:  # a copy of a copy is a copy of the original
        nested = is_dup[src]
        if not nested.any():
            break
        src = np.where(nested, np.floor(rng.random(len(src)) * src).astype(np.int64), src)
    t = (np.arange(z.shape[1])[None, :] + shift[rows, None]) % z.shape[1]
    z = z.copy()
    z[rows] = z[src[:, None], t]
    album = album.copy()
    album[rows] = album[src]
    return z, album


def album_effects(rng: np.random.Generator, p: SynthPreset, nw: NuisanceWorld,
                  album: np.ndarray) -> np.ndarray | None:
    """(n, 512) float32 pre-activation offset of each track's album (None when off)."""
    if nw.fx_basis is None:
        return None
    n_albums = int(album.max()) + 1
    coef = rng.standard_normal((n_albums, p.album_fx_rank))
    if nw.studios is not None:  # a shared studio's sound, and a little of the album's own
        coef = nw.studios[rng.integers(0, len(nw.studios), size=n_albums)] + _STUDIO_JITTER * coef
    coef /= np.sqrt(p.album_fx_rank)
    return (p.album_fx_scale * coef.astype(np.float32) @ nw.fx_basis)[album]


def track_gains(rng: np.random.Generator, p: SynthPreset, nw: NuisanceWorld, n: int) -> np.ndarray | None:
    """(n, 512) float32 multiplicative channel gain of each track (None when off)."""
    if p.gain_scale <= 0 and nw.eq_basis is None:
        return None
    log_gain = np.zeros((n, nw.eq_basis.shape[1] if nw.eq_basis is not None else 1), dtype=np.float32)
    if p.gain_scale > 0:
        log_gain += (p.gain_scale * rng.standard_normal((n, 1))).astype(np.float32)
    if nw.eq_basis is not None:
        coef = rng.standard_normal((n, _N_EQ)).astype(np.float32) / np.float32(np.sqrt(_N_EQ))
        log_gain = log_gain + np.float32(p.eq_scale) * (coef @ nw.eq_basis)
    return np.exp(log_gain)
