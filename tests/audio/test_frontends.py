"""Front ends by name (artistsim.audio.frontends): records, framing, and frames of any D."""

from __future__ import annotations

import numpy as np
import pytest

from artistsim.audio import frontends as fe
from artistsim.audio.decode import HOP, MAX_WINDOWS, WINDOW
from artistsim.audio.musicnn import MEL_HOP, PATCH, MusicnnError, checkpoint_prefix
from artistsim.data.provenance import COMPETITION
from audio_cases import artist_track, tone

try:
    checkpoint_prefix("MSD_musicnn")
    HAVE_WEIGHTS = True
except MusicnnError:
    HAVE_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="musicnn package not installed (make setup installs it)")


def test_each_front_end_has_its_own_record():
    dsp, msd, mtt = (fe.record(n) for n in ("dsp", "musicnn-msd", "musicnn-mtt"))
    assert (dsp.name, dsp.dim) == ("dsp", 512)
    assert (msd.name, msd.dim, msd.params["layer"], msd.params["model"]) == ("musicnn-msd", 753, "mean_pool",
                                                                             "MSD_musicnn")
    assert msd.params["window"] == PATCH * MEL_HOP and msd.params["hop"] == HOP and msd.params["sample_rate"] == 16_000
    assert not msd.same_as(mtt) and not msd.same_as(dsp)
    assert [fe.name_of(r) for r in (dsp, msd, mtt)] == ["dsp", "musicnn-msd", "musicnn-mtt"]


def test_a_record_featurize_cannot_reproduce_is_named():
    with pytest.raises(fe.FrontendError, match="competition-cnn v1 \\(512-d\\) is not one featurize can apply"):
        fe.name_of(COMPETITION)
    with pytest.raises(fe.FrontendError, match="unknown front end 'openl3'"):
        fe.record("openl3")


def test_musicnn_windows_are_centred_on_the_competition_windows():
    frames = 1 + (HOP * (MAX_WINDOWS - 1) + WINDOW) // MEL_HOP  # a full 60 s fragment
    starts = fe.musicnn_starts(MAX_WINDOWS, frames)
    centres = (starts + PATCH // 2) * MEL_HOP
    inner = slice(3, -3)  # the first and last few are shifted inward to stay inside the fragment
    assert np.abs(centres[inner] - fe.window_centres(MAX_WINDOWS)[inner]).max() <= MEL_HOP
    assert starts.min() == 0 and starts.max() + PATCH == frames


@needs_weights
def test_musicnn_frames_have_the_dsp_window_count_and_753_rows():
    x = artist_track(3, 0, seconds=5.0)
    dsp = fe.featurize_array(x, 16_000, "dsp")
    msd = fe.featurize_array(x, 16_000, "musicnn-msd")
    assert msd.shape == (753, dsp.shape[1]) and msd.dtype == np.float32
    mtt = fe.featurize_array(x, 16_000, "musicnn-mtt")
    assert np.abs(msd - mtt).mean() > 0.1  # two trainings, two descriptions


@needs_weights
def test_a_fragment_shorter_than_three_seconds_is_padded_with_silence():
    out = fe.featurize_array(tone(440, 2.0), 16_000, "musicnn-msd")
    assert out.shape == (753, 1)
    # the tone and a louder tone describe differently: the frames follow the audio
    loud = fe.featurize_array(tone(440, 2.0, amp=0.9), 16_000, "musicnn-msd")
    assert np.abs(out - loud).max() > 1e-3
