"""The 512-d descriptor (artistsim.audio.descriptor): known signals give known values."""

from __future__ import annotations

import numpy as np
import pytest

from artistsim.audio.descriptor import DIM, GROUPS, N_LAGS, featurize_array, mel_edges
from audio_cases import tone

RATE = 16_000


def test_groups_tile_the_512_numbers():
    covered = np.concatenate([np.arange(DIM)[s] for s in GROUPS.values()])
    assert covered.tolist() == list(range(DIM))


@pytest.mark.parametrize("freq, pitch_class", [(440.0, 9), (261.63, 0), (392.0, 7), (1244.5, 3)])
def test_pure_tone_lands_in_its_chroma_bin(freq, pitch_class):
    chroma = featurize_array(tone(freq, 5), RATE)[GROUPS["chroma_mean"]].mean(1)
    assert np.argmax(chroma) == pitch_class
    assert abs(chroma.sum() - 1) < 1e-3


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_pure_tone_lands_in_its_mel_band(freq):
    logmel = featurize_array(tone(freq, 5), RATE)[GROUPS["logmel_mean"]].mean(1)
    edges = mel_edges()
    centres = edges[1:-1]
    assert np.argmax(logmel) in np.argsort(np.abs(centres - freq))[:2]
    assert -1.5 < logmel.max() < 0.5  # a 0.5-amplitude sine: about 0.25 power -> about -0.6 bels
    assert logmel.min() < -6  # bands far from the tone are nearly empty


def test_flatness_separates_noise_from_tone():
    flat = GROUPS["shape_mean"].start + 4
    noise = np.random.default_rng(0).standard_normal(5 * RATE).astype(np.float32) * 0.1
    assert featurize_array(noise, RATE)[flat].mean() > 0.5
    assert featurize_array(tone(440, 5), RATE)[flat].mean() < 0.05


def test_click_train_gives_its_period_in_the_rhythm_block():
    """Clicks every 0.5 s = 26.7 STFT frames: the onset autocorrelation peaks there."""
    x = np.zeros(10 * RATE, np.float32)
    rng = np.random.default_rng(1)
    for start in range(0, len(x) - 400, RATE // 2):
        x[start : start + 400] = rng.standard_normal(400) * np.exp(-np.arange(400) / 80)
    x += 1e-4 * rng.standard_normal(len(x)).astype(np.float32)
    ac = featurize_array(x, RATE)[GROUPS["onset_autocorr"]].mean(1)
    assert len(ac) == N_LAGS
    assert np.argmax(ac[10:]) + 11 in (26, 27, 28)


def test_amplitude_modulation_shows_in_the_modulation_block():
    """Noise modulated at 6 x 0.693 Hz peaks at modulation bin k = 6 in every band."""
    t = np.arange(10 * RATE) / RATE
    rate = 6 * 16_000 / 300 / 77
    x = np.random.default_rng(2).standard_normal(len(t)) * (1.2 + np.sin(2 * np.pi * rate * t)) * 0.1
    mod = featurize_array(x.astype(np.float32), RATE)[GROUPS["modulation"]].mean(1).reshape(16, 10)
    assert (np.argmax(mod, axis=1) + 1 == 6).mean() >= 0.9


def test_loudness_is_in_the_log_power_curve():
    level = GROUPS["shape_mean"].start
    quiet = featurize_array(tone(440, 5, amp=0.05), RATE)[level].mean()
    loud = featurize_array(tone(440, 5, amp=0.5), RATE)[level].mean()
    assert abs((loud - quiet) - 2.0) < 0.05  # 10x amplitude = 100x power = 2 bels
