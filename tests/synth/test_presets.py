"""Tests of the generator's nuisance knobs (synth/nuisance.py) and the nuisance presets.

Each knob is checked where it acts: switching one on leaves every other draw as it was
(separate random streams), so the difference between the data with and without it is
exactly the nuisance, and its shape (a per-track gain, a shared low-rank offset, a copy)
can be measured directly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from artistsim.synth import generator as synth
from artistsim.synth import nuisance as nz
from artistsim.synth import PRESETS, SynthError, SynthPreset, sample_split, split_plan

TINY = SynthPreset(n_train_artists=8, n_test_artists=4)
NEW = ("albums", "genres", "mixed", "holdout", "holdout_wide")
KNOBS = ("album_fx_scale", "genre_timbre", "generic_block", "gain_scale", "eq_scale", "p_duplicate")


def _with(**knobs: object) -> SynthPreset:
    return dataclasses.replace(TINY, **knobs)


def _tiny(name: str) -> SynthPreset:
    return dataclasses.replace(PRESETS[name], n_train_artists=8, n_test_artists=4)


def _frames(p: SynthPreset, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    feats, labels, _ = sample_split(p, seed, "train")
    return feats, labels


def test_demo_is_unchanged() -> None:
    demo = PRESETS["demo"]
    assert not nz.nuisance_on(demo)
    assert synth._make_world(demo, 0).nuisance is None  # no nuisance draw at all
    assert (demo.albums_extra, demo.max_albums) == (0.8, 4)
    # a fingerprint of the demo bytes before the nuisance knobs existed (float sums: a
    # BLAS on another CPU may round the last bits differently, hence the tolerance)
    feats, aid, tids = next(iter(synth.iter_split("demo", 0, "train")))
    assert aid == 920585 and list(tids[:3]) == [4691639, 97350, 3878316]
    total = sum(float(f.astype(np.float64).sum()) for f in feats)
    assert total == pytest.approx(151679.8690165527, rel=1e-6)


@pytest.mark.parametrize("name", NEW)
def test_presets_have_the_demo_budget_and_their_nuisance(name: str) -> None:
    p = PRESETS[name]
    assert nz.nuisance_on(p)
    train, test = split_plan(name, 0, "train"), split_plan(name, 0, "test")
    assert 2500 < train.n_tracks < 3500 and 800 < test.n_tracks < 1400


@pytest.mark.parametrize("name", NEW)
def test_every_knob_of_a_preset_is_wired_and_deterministic(name: str) -> None:
    p = _tiny(name)
    feats, _ = _frames(p)
    again, _ = _frames(p)
    assert all(np.array_equal(a, b) for a, b in zip(feats, again))
    other, _ = _frames(p, seed=1)
    assert not np.array_equal(feats[0][:, : other[0].shape[1]], other[0][:, : feats[0].shape[1]])
    for knob in KNOBS:
        if getattr(p, knob) > 0:
            off, _ = _frames(dataclasses.replace(p, **{knob: 0.0}))
            assert any(not np.array_equal(a, b) for a, b in zip(feats, off)), knob


def test_holdout_differs_in_structure() -> None:
    demo, hold = split_plan("demo", 0, "train"), split_plan("holdout", 0, "train")
    assert hold.counts.mean() < demo.counts.mean() - 1.0  # fewer tracks per artist
    assert (hold.lengths < 81).mean() > (demo.lengths < 81).mean() + 0.08  # more short tracks
    assert PRESETS["holdout"].d_style != PRESETS["demo"].d_style


def test_holdout_wide_differs_in_structure_from_every_other_preset() -> None:
    """The second held-back preset: many artists with few tracks, its own latent sizes."""
    wide = split_plan("holdout_wide", 0, "train")
    for name in ("demo", "albums", "genres", "mixed", "holdout"):
        other = PRESETS[name]
        assert (PRESETS["holdout_wide"].d_style, PRESETS["holdout_wide"].d_mean) != (other.d_style, other.d_mean)
        assert wide.counts.mean() < split_plan(name, 0, "train").counts.mean() - 0.5, name
    assert len(wide.counts) > len(split_plan("holdout", 0, "train").counts)


def test_loudness_and_eq_are_per_track_channel_gains() -> None:
    base, _ = _frames(TINY)
    loud, _ = _frames(_with(gain_scale=0.5))
    eq, _ = _frames(_with(gain_scale=0.5, eq_scale=0.5))
    for b, lo, e in zip(base, loud, eq):
        ok = b > 1e-3
        r_loud, r_eq = np.where(ok, lo / np.where(ok, b, 1), np.nan), np.where(ok, e / np.where(ok, b, 1), np.nan)
        # one gain per track (loudness) ...
        assert np.nanmax(r_loud) / np.nanmin(r_loud) == pytest.approx(1.0, abs=1e-4)
        # ... one gain per track and channel (EQ): constant over frames, not over channels
        spread = np.nanmax(r_eq, axis=1) / np.nanmin(r_eq, axis=1)
        assert np.nanmax(spread) == pytest.approx(1.0, abs=1e-4)
        per_channel = np.nanmedian(r_eq, axis=1)
        assert np.nanstd(np.log(per_channel)) > 0.1


def _inverse_softplus(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.log(np.expm1(x.astype(np.float64) / scale[:, None]))


@pytest.mark.filterwarnings("ignore:All-NaN slice")
@pytest.mark.parametrize("studios", [0, 5])
def test_album_effect_is_a_shared_low_rank_offset(studios: int) -> None:
    plain = _with(albums_extra=2.0)  # the album count is a core draw: the same on both sides
    p = dataclasses.replace(plain, album_fx_scale=1.0, album_fx_rank=3, album_fx_studios=studios)
    base, labels = _frames(plain)
    fx, _ = _frames(p)
    scale = synth._make_world(TINY, 0).scale.astype(np.float64)
    offsets = []
    for b, f in zip(base, fx):
        ok = (b > 0.05) & (f > 0.05)
        d = np.where(ok, _inverse_softplus(f, scale) - _inverse_softplus(b, scale), np.nan)
        med = np.nanmedian(d, axis=1)
        assert np.nanmax(np.abs(d - med[:, None])) < 1e-3  # constant over the track's frames
        offsets.append(med)
    offsets = np.array(offsets)
    seen = ~np.isnan(offsets).any(0)  # channels measurable in every track
    o = offsets[:, seen]
    sv = np.linalg.svd(o, compute_uv=False)
    assert sv[3] < 1e-3 * sv[0]  # rank 3: the world's recording directions
    for a in np.unique(labels):  # an artist's tracks share at most max_albums offsets
        rows = np.round(o[labels == a], 2)
        assert len(np.unique(rows, axis=0)) <= p.max_albums
    corr = np.corrcoef(o)[labels[:, None] != labels[None, :]]
    if studios:  # albums of different artists recorded in the same studio sound alike
        assert corr.max() > 0.9
    else:
        assert corr.max() < 0.995


def test_duplicates_copy_an_earlier_track_shifted() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 81, 5))
    album = rng.integers(0, 3, size=40)
    p = _with(p_duplicate=0.4)
    out, out_album = nz.duplicates(np.random.default_rng(1), p, z, album)
    changed = [i for i in range(40) if not np.array_equal(out[i], z[i])]
    assert 0 not in changed and 6 <= len(changed) <= 28
    for i in changed:
        matches = [(j, s) for j in range(i) if j not in changed
                   for s in range(-8, 9) if np.array_equal(out[i], np.roll(z[j], -s, axis=0))]
        assert matches, i
        assert out_album[i] == album[matches[0][0]]


def test_long_generic_blocks_are_contiguous_and_inside_the_track() -> None:
    p = _with(generic_block=0.5, generic_block_len=(0.4, 0.6))
    lengths = np.array([81] * 150 + [20] * 50)
    block, proto = nz.long_generic_blocks(np.random.default_rng(0), p, p.n_generic, lengths)
    has = block.any(1)
    assert 0.35 < has.mean() < 0.65
    for i in np.flatnonzero(has):
        idx = np.flatnonzero(block[i])
        assert np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)) and idx[-1] < lengths[i]
        assert 0.35 <= len(idx) / lengths[i] <= 0.65
    assert proto.min() >= 0 and proto.max() < p.n_generic


def test_genre_timbre_lives_in_the_genre_subspace() -> None:
    p = _with(genre_timbre=2.0)
    nw = nz.make_nuisance_world(p, 0, 0, 512)
    g = nz.genre_style(np.random.default_rng(0), p, nw, 3, 10, 6)
    basis = nw.genre_space[3]
    resid = g - np.einsum("nsd,dk,ek->nse", g, basis, basis)
    assert np.abs(resid).max() < 1e-9
    assert np.linalg.norm(g, axis=2) == pytest.approx(np.full((10, 6), 2.0))


def test_bad_nuisance_knobs_are_clear_errors() -> None:
    for bad in ({"album_fx_scale": -1.0}, {"album_fx_rank": 0}, {"p_duplicate": 1.0},
                {"generic_block": 1.5}, {"generic_block_len": (0.0, 0.5)}, {"max_albums": 0}):
        with pytest.raises(SynthError):
            _with(**bad)
