"""The PyTorch musicnn (artistsim.audio.musicnn) against the original TensorFlow implementation.

musicnn_reference.json holds the original's outputs (TF 2.15, musicnn 0.1.0, its own log-mel
via librosa) on four synthesised signals, written once by musicnn_reference.py in a
scratch environment. Largest difference found: 1.3e-4 (a max_pool value of 24.6), i.e.
float32 rounding; the tolerance below is 1e-3 absolute + 1e-4 relative.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
m = pytest.importorskip("artistsim.audio.musicnn")

from musicnn_reference import FIXTURE, LAYERS, signals  # noqa: E402
from test_tf_bundle import write_bundle  # noqa: E402

try:
    m.checkpoint_prefix("MSD_musicnn")
    HAVE_WEIGHTS = True
except m.MusicnnError:
    HAVE_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="musicnn package not installed (make setup installs it)")
REF = json.loads(FIXTURE.read_text())


def test_the_reference_signals_are_the_ones_recorded():
    for name, x in signals().items():
        assert x.astype(np.float64).sum() == pytest.approx(REF["signals"][name]["sum"], abs=1e-6)


@pytest.mark.parametrize("name", sorted(REF["signals"]))
def test_log_mel_matches_the_packages_librosa_log_mel(name):
    mel = m.log_mel(signals()[name])
    rec = REF["signals"][name]
    assert mel.shape == (rec["frames"], 96)
    assert float(mel.double().sum()) == pytest.approx(rec["logmel_sum"], rel=1e-6)


@needs_weights
@pytest.mark.parametrize("path", ["window by window", "whole track"])
@pytest.mark.parametrize("model", sorted(REF["layers"]))
def test_layers_match_the_original_tensorflow_model(model, path):
    """Both ways through the network (`forward`, and `embed_track`: what featurize runs) against TF."""
    net = m.load_model(model, "cpu")
    worst = 0.0
    for name, x in signals().items():
        mel = m.log_mel(x)
        starts = torch.arange(REF["signals"][name]["windows"]) * m.PATCH
        with torch.inference_mode():
            out = net(mel[starts[:, None] + torch.arange(m.PATCH)]) if path == "window by window" else \
                net.embed_track(mel, starts)
        for layer in LAYERS:
            rec = REF["layers"][model][name][layer]
            got = out[layer].numpy()
            want = np.array(rec["values"])
            np.testing.assert_allclose(got[:, rec["picks"]], want, atol=1e-3, rtol=1e-4, err_msg=f"{name} {layer}")
            np.testing.assert_allclose(got.mean(1), rec["mean"], atol=1e-4, rtol=1e-4)
            np.testing.assert_allclose(got.std(1), rec["std"], atol=1e-4, rtol=1e-4)
            worst = max(worst, float(np.abs(got[:, rec["picks"]] - want).max()))
    assert worst < 1e-3  # 1.3e-4 when written


@needs_weights
def test_a_whole_track_at_once_equals_window_by_window():
    net = m.load_model("MSD_musicnn", "cpu")
    mel = torch.from_numpy(np.random.default_rng(0).uniform(0, 3, (420, 96)).astype(np.float32))
    starts = torch.tensor([0, 45, 91, 137, 183, 233])  # overlapping 187-frame windows, the last at the end
    with torch.inference_mode():
        whole = net.embed_track(mel, starts, batch=4)
        single = net(mel[starts[:, None] + torch.arange(m.PATCH)])
    for layer in ("mean_pool", "max_pool", "penultimate"):
        np.testing.assert_allclose(whole[layer].numpy(), single[layer].numpy(), atol=1e-4, rtol=1e-5)


def test_missing_weights_fail_loudly_not_with_random_ones(tmp_path):
    with pytest.raises(m.MusicnnError, match="cannot read"):
        m.load_weights(f"{tmp_path}/")


def test_a_checkpoint_of_another_network_is_refused(tmp_path):
    write_bundle(tmp_path / "ckpt", {"conv2d/kernel": np.zeros((3, 3, 1, 8), np.float32)})
    with pytest.raises(m.MusicnnError, match=r"'conv2d/kernel' has shape \(3, 3, 1, 8\), expected \(7, 38, 1, 204\)"):
        m.load_weights(tmp_path / "ckpt")
    write_bundle(tmp_path / "other", {"dense/kernel": np.zeros((2, 2), np.float32)})
    with pytest.raises(m.MusicnnError, match="no tensor 'conv2d/kernel'; not a musicnn model"):
        m.load_weights(tmp_path / "other")


def test_unknown_model_name():
    with pytest.raises(m.MusicnnError, match="unknown musicnn model 'MSD_vgg'"):
        m.load_model("MSD_vgg")
