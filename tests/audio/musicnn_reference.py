"""Reference numbers of the original musicnn (TensorFlow) on synthesised signals.

Why a script beside the fixture: `musicnn_reference.json` was written once by this file,
run in a scratch environment that can hold TensorFlow (it cannot share the project's:
TF 2.15 needs numpy < 2), and the PyTorch port (`artistsim.audio.musicnn`) is checked
against it by tests/audio/test_musicnn.py. Re-create it with:

    python3.11 -m venv /tmp/tfref/venv
    /tmp/tfref/venv/bin/pip install 'tensorflow-cpu==2.15.*' 'numpy<2' librosa soundfile
    /tmp/tfref/venv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/tfref/venv/bin/python tests/audio/musicnn_reference.py write   # the fixture
    /tmp/tfref/venv/bin/python tests/audio/musicnn_reference.py speed [PATCHES.npy]  # 1 thread

The graph is musicnn's own (`musicnn.models.define_model`) and its log-mel is musicnn's own
(`musicnn.extractor.batch_data`, librosa), but the checkpoint is restored without the
package's `try: ... except: pass` (which carries on with random weights), and all windows
of a signal run as one batch (the package's loop re-uses the first window's mid-end
features for the later ones).

This file needs only numpy when imported by the tests (`signals`, `window_starts`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

SR = 16_000
SECONDS = 6.5  # 407 mel frames: two non-overlapping 187-frame windows (0 and 187)
FIXTURE = Path(__file__).with_name("musicnn_reference.json")
LAYERS = ("mean_pool", "max_pool", "penultimate", "taggram")
N_VALUES = 6  # values recorded per layer and window (the first N, and the N at a fixed stride)


def signals() -> dict[str, np.ndarray]:
    """Deterministic test signals (float32, 16 kHz): a sine sweep, noise, clicks, a chord."""
    t = np.arange(int(SECONDS * SR)) / SR
    sweep = 0.5 * np.sin(2 * np.pi * (50 * t + (4000 - 50) / (2 * SECONDS) * t**2))
    noise = 0.1 * np.random.default_rng(7).standard_normal(len(t))
    clicks = np.zeros(len(t))
    clicks[:: SR // 4] = 0.9  # 4 clicks per second
    clicks[SR // 8 :: SR // 2] = -0.6
    chord = sum(0.15 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) for f in (220, 277.2, 329.6))
    return {k: v.astype(np.float32) for k, v in
            {"sweep": sweep, "noise": noise, "clicks": clicks, "chord": chord}.items()}


def picks(dim: int) -> np.ndarray:
    """Indices recorded per layer: the first N_VALUES and N_VALUES spread over the rest."""
    return np.unique(np.concatenate([np.arange(min(N_VALUES, dim)), np.linspace(0, dim - 1, N_VALUES).astype(int)]))


def _graph(model: str, n_frames: int):
    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, 96])
    is_training = tf.compat.v1.placeholder(tf.bool)
    out = models.define_model(x, is_training, model, 50)
    names = ("logits", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate")
    tensors = dict(zip(names, out))
    tensors["taggram"] = tf.nn.sigmoid(tensors["logits"])
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    sess = tf.compat.v1.Session(config=config)
    import musicnn

    tf.compat.v1.train.Saver().restore(sess, str(Path(musicnn.__file__).parent / model) + "/")  # raises if it fails
    return sess, x, is_training, tensors


def _round(a: np.ndarray) -> list:
    """Seven significant digits: float32's precision, a small fixture."""
    return json.loads(json.dumps(np.vectorize(lambda v: float(f"{v:.7g}"))(a.astype(np.float64)).tolist()))


def write(models: tuple[str, ...] = ("MSD_musicnn", "MTT_musicnn")) -> None:
    import soundfile as sf
    from musicnn.extractor import batch_data

    record: dict = {"sample_rate": SR, "seconds": SECONDS, "layers": {}, "signals": {}}
    sigs = signals()
    batches = {}
    for name, x in sigs.items():
        path = Path("/tmp") / f"musicnn_ref_{name}.wav"
        sf.write(path, x, SR, subtype="FLOAT")
        batch, spec = batch_data(str(path), 187, 187)
        batches[name] = batch
        record["signals"][name] = {"sum": float(x.astype(np.float64).sum()), "windows": len(batch),
                                   "logmel_sum": float(spec.astype(np.float64).sum()), "frames": len(spec)}
    for model in models:
        sess, x, is_training, tensors = _graph(model, 187)
        out = {}
        for name, batch in batches.items():
            got = sess.run([tensors[k] for k in LAYERS], feed_dict={x: batch, is_training: False})
            out[name] = {k: {"picks": picks(v.shape[1]).tolist(), "values": _round(v[:, picks(v.shape[1])]),
                             "mean": _round(v.mean(1)), "std": _round(v.std(1))}
                         for k, v in zip(LAYERS, got)}
        record["layers"][model] = out
        sess.close()
    FIXTURE.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


def speed(patches: str | None = None, model: str = "MSD_musicnn", batch: int = 16) -> float:
    """Seconds the TF graph takes (one thread, batches of `batch`) for the (N, 187, 96) windows in
    `patches` (.npy; default 48 random windows), graph building and a warm-up batch excluded."""
    data = (np.load(patches) if patches else np.random.default_rng(0).uniform(0, 3, (48, 187, 96))).astype(np.float32)
    sess, x, is_training, tensors = _graph(model, 187)
    sess.run(tensors["mean_pool"], feed_dict={x: data[:batch], is_training: False})
    start = time.perf_counter()
    for a in range(0, len(data), batch):
        sess.run([tensors["mean_pool"], tensors["max_pool"]], feed_dict={x: data[a : a + batch], is_training: False})
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "windows": len(data), "tf_windows_per_s": len(data) / seconds}))
    return seconds


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "speed":
        speed(sys.argv[2] if len(sys.argv) > 2 else None)
    else:
        write()
