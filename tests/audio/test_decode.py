"""Framing (artistsim.audio.decode): fragment position, window count and positions, decoding."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from artistsim.audio.decode import (
    FRAGMENT,
    HOP,
    MAX_WINDOWS,
    SAMPLE_RATE,
    WINDOW,
    AudioError,
    check_complete,
    check_header,
    decode_fragment,
    fragment_of,
    window_count,
    window_starts,
)
from artistsim.audio.descriptor import GROUPS, featurize_array, featurize_file
from audio_cases import tone


def test_constants_match_the_competition():
    assert WINDOW / 16_000 == 1.5 and abs(HOP / 16_000 - 0.74) < 0.01
    assert FRAGMENT == 60 * 16_000 and window_count(FRAGMENT) == MAX_WINDOWS == 81


@pytest.mark.parametrize("n, t", [(0, 0), (WINDOW - 1, 0), (WINDOW, 1), (WINDOW + HOP - 1, 1),
                                  (WINDOW + HOP, 2), (10 * 16_000, 12), (FRAGMENT - 1, 80), (FRAGMENT, 81),
                                  (10 * FRAGMENT, 81)])
def test_window_count(n, t):
    assert window_count(n) == t


def test_fragment_is_centred_and_inside_the_middle_70_percent_for_long_tracks():
    n = 300 * 44_100
    frag = fragment_of(n, 44_100)
    assert frag.length >= 60 * 44_100 and frag.length - 60 * 44_100 < 3
    assert abs((frag.start + frag.length / 2) - n / 2) <= 1
    assert frag.start >= 0.15 * n and frag.start + frag.length <= 0.85 * n


def test_short_track_is_used_whole():
    assert fragment_of(30 * 22_050, 22_050) == type(fragment_of(1, 1))(start=0, length=30 * 22_050)


@pytest.mark.parametrize("seconds, t", [(200.0, 81), (61.0, 81), (10.0, 12), (1.5, 1)])
def test_featurize_array_gives_t_windows(seconds, t):
    x = tone(440, seconds, 22_050)
    feats = featurize_array(x, 22_050)
    assert feats.shape == (512, t) and feats.dtype == np.float32 and np.isfinite(feats).all()


def test_window_positions_follow_the_hop():
    """A 0.2 s burst at 10 s lights exactly the windows whose 1.5 s span holds it."""
    rate = 16_000
    rng = np.random.default_rng(0)
    x = 1e-3 * rng.standard_normal(30 * rate).astype(np.float32)
    x[160_000:163_200] += tone(1000, 0.2, rate)
    feats = featurize_array(x, rate)
    assert feats.shape[1] == window_count(len(x)) == 39
    level = feats[GROUPS["logmel_mean"]].max(0)
    loud = np.flatnonzero(level > np.median(level) + 0.2)
    starts = window_starts(feats.shape[1])
    expected = np.flatnonzero((starts < 163_200) & (starts + WINDOW > 160_000))
    assert loud.tolist() == expected.tolist() == [12, 13]


def test_decoding_reads_the_centre_of_the_file(tmp_path):
    """A 100 s file: 440 Hz in the middle 60 s, 1 kHz outside; only the 440 Hz part is read."""
    rate = 8_000
    x = tone(1000, 100, rate)
    x[20 * rate : 80 * rate] = tone(440, 60, rate)
    sf.write(tmp_path / "a.flac", x, rate)
    dec = decode_fragment(tmp_path / "a.flac")
    assert abs(dec.duration - 100) < 1e-6 and len(dec.samples) >= FRAGMENT
    spec = np.abs(np.fft.rfft(dec.samples[1000:FRAGMENT - 1000]))
    assert abs(np.argmax(spec) * 16_000 / (FRAGMENT - 2000) - 440) < 1


def test_channels_are_averaged_and_any_rate_works():
    mono = tone(440, 5, 16_000)
    stereo = np.stack([mono, mono], 1)
    np.testing.assert_allclose(featurize_array(stereo, 16_000), featurize_array(mono, 16_000), atol=1e-5)
    a = featurize_array(tone(440, 5, 48_000), 48_000)
    b = featurize_array(tone(440, 5, 11_025), 11_025)
    assert a.shape == b.shape
    assert np.argmax(a[GROUPS["chroma_mean"]].mean(1)) == np.argmax(b[GROUPS["chroma_mean"]].mean(1)) == 9


@pytest.mark.parametrize("x, reason", [(np.zeros(80_000, np.float32), "silent"),
                                       (tone(440, 1.0), "too_short"),
                                       (np.full(80_000, np.nan, np.float32), "nan")])
def test_bad_arrays_raise_with_a_reason(x, reason):
    with pytest.raises(AudioError) as info:
        featurize_array(x, 16_000)
    assert info.value.reason == reason


def test_integer_pcm_is_scaled_like_floats():
    x = tone(440, 3, 16_000)
    pcm = np.round(x * 32768).clip(-32768, 32767).astype(np.int16)
    a, b = featurize_array(pcm, 16_000), featurize_array(x, 16_000)
    loud = b[GROUPS["logmel_mean"]].mean(1) > -4  # quiet bands differ by the quantisation noise
    np.testing.assert_allclose(a[GROUPS["logmel_mean"]][loud], b[GROUPS["logmel_mean"]][loud], atol=1e-3)
    np.testing.assert_allclose(a[GROUPS["shape_mean"].start], b[GROUPS["shape_mean"].start], atol=1e-3)


def test_a_read_that_stops_short_of_the_header_is_bad_audio():
    check_complete(SAMPLE_RATE * 60 - 1000, SAMPLE_RATE * 60, SAMPLE_RATE)  # decoder rounding: fine
    with pytest.raises(AudioError) as info:
        check_complete(SAMPLE_RATE * 4, SAMPLE_RATE * 9, SAMPLE_RATE)
    assert info.value.reason == "short_read" and "4.00 s of the 9.00 s" in str(info.value)


@pytest.mark.parametrize("rate, n, needle", [(1, 64_000, "sample rate 1 Hz"), (768_000, 10**6, "sample rate"),
                                             (48_000, 48_000 * 90_000, "the header claims")])
def test_implausible_headers_are_bad_audio(rate, n, needle):
    with pytest.raises(AudioError) as info:
        check_header(rate, n)
    assert info.value.reason == "implausible" and needle in str(info.value)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "noise.ogg"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(AudioError, match=f"^{path}: bad audio"):
        featurize_file(path)
