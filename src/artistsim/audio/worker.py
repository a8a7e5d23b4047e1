"""One track's work in a featurize worker process: decode, hash, describe, write.

Kept apart from `artistsim.audio.featurize` (which plans with pandas) so that a spawned
worker imports only numpy, libsndfile, soxr and torch: start-up is part of every
worker's cost. A musicnn front end's weights are loaded once per worker (cached).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from artistsim.atomic import atomic_path
from artistsim.audio.decode import AudioError, Decoded, decode_fragment
from artistsim.audio.frontends import describe


def content_hash(decoded: Decoded) -> str:
    """SHA-1 of the track's length and its decoded 16 kHz fragment: what its features are made of.

    Two files with this hash give the same features (a copy, or the same audio in another
    container), so only one is kept. Hashing the decoded fragment, not the file, costs no
    extra read of a file that is otherwise only read where the fragment lies.
    """
    h = hashlib.sha1(f"{decoded.duration:.6f}".encode())
    h.update(np.ascontiguousarray(decoded.samples).tobytes())
    return h.hexdigest()


def _clean(text: str) -> str:
    return " ".join(str(text).split())[:300]


def process_track(job: tuple[int, str, str, str]) -> tuple:
    """Featurize one file into `out` (atomically) with front end `job[3]`; a journal row."""
    trackid, src, out, name = job
    path, out_path = Path(src), Path(out)
    try:
        decoded = decode_fragment(path)
        sha = content_hash(decoded)
        feats = describe(decoded.samples, name)
    except AudioError as exc:
        out_path.unlink(missing_ok=True)
        return trackid, "skipped", _clean(f"{exc.reason}: {exc}"), 0.0, 0, ""
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the batch
        out_path.unlink(missing_ok=True)
        return trackid, "skipped", _clean(f"error: {type(exc).__name__}: {exc}"), 0.0, 0, ""
    with atomic_path(out_path, suffix=".npy") as tmp:
        np.save(tmp, feats)
    return trackid, "ok", "", round(decoded.duration, 3), int(feats.shape[1]), sha


def init_worker() -> None:
    """One thread per worker process: the workers are the parallelism."""
    import torch

    torch.set_num_threads(1)
