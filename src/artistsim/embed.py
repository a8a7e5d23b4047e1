"""Embedding tracks with a trained encoder: full length or rolling windows, and ensembles.

Full-length embedding batches tracks sorted by length and pads each batch only to its
own longest track, with true lengths passed to the model, so padding costs little and
(with `mask_padding`) changes nothing. Rolling-window embedding (the seed: windows of 10
frames, hop 5, 15 windows over 81 frames) embeds every window as its own short track
and averages the window embeddings per track.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from artistsim.atomic import atomic_path
from artistsim.config import TrainConfig, train_config_from_dict
from artistsim.data.layout import DataError, FeatureSource, progress_disabled
from artistsim.data.splits import full_batch, take_batch
from artistsim.models import build_model


def resolve_device(name: str | None = None) -> torch.device:
    """CUDA when available, else CPU; an explicit name (`cpu`, `cuda:1`) wins."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (fast, no loss scaling needed); full precision on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@torch.inference_mode()
def _embed_batch(model: torch.nn.Module, x: np.ndarray, lengths: np.ndarray, device: torch.device) -> np.ndarray:
    xt = torch.from_numpy(x).to(device, non_blocking=True)
    lt = torch.from_numpy(np.asarray(lengths, dtype=np.int64)).to(device)
    with autocast(device):
        out = model(xt, lt)
    return out.float().cpu().numpy()


def embed_full(model: torch.nn.Module, source: FeatureSource, rows: np.ndarray, device: torch.device,
               batch_size: int = 256, progress: bool | None = None) -> np.ndarray:
    """L2-normalised embeddings of whole tracks, in the order of `rows`."""
    rows = np.asarray(rows)
    order = np.argsort(source.lengths[rows], kind="stable")
    out = np.empty((len(rows), 0), dtype=np.float32)
    chunks = []
    model.eval()
    for start in tqdm(range(0, len(rows), batch_size), desc="Embedding", disable=progress_disabled(progress),
                      leave=False):
        sel = rows[order[start : start + batch_size]]
        x, lengths = full_batch(source, sel)
        chunks.append(_embed_batch(model, x, lengths, device))
    if chunks:
        out = np.empty((len(rows), chunks[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(chunks)
    return l2_normalise(out)


def window_plan(lengths: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track position, start frame, true length) of every window, all tracks at once.

    A track of T frames gives floor((T - window) / hop) + 1 windows; a track shorter
    than `window` gives one window of its whole length.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    counts = np.where(lengths <= window, 1, (lengths - window) // hop + 1)
    owner = np.repeat(np.arange(len(lengths)), counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    starts = (np.arange(counts.sum()) - first[owner]) * hop
    return owner, starts, np.minimum(lengths[owner], window)


def embed_windows(model: torch.nn.Module, source: FeatureSource, rows: np.ndarray, device: torch.device,
                  window: int = 10, hop: int = 5, batch_size: int = 1024,
                  progress: bool | None = None) -> np.ndarray:
    """Mean of the L2-normalised window embeddings of each track, re-normalised."""
    rows = np.asarray(rows)
    owner, starts, win_len = window_plan(source.lengths[rows], window, hop)
    sums = None
    model.eval()
    for start in tqdm(range(0, len(owner), batch_size), desc="Embedding windows",
                      disable=progress_disabled(progress), leave=False):
        sl = slice(start, start + batch_size)
        idx = starts[sl, None] + np.minimum(np.arange(window)[None, :], win_len[sl, None] - 1)
        x = take_batch(source, rows[owner[sl]], idx, win_len[sl], "zero")
        emb = l2_normalise(_embed_batch(model, x, win_len[sl], device))
        if sums is None:
            sums = np.zeros((len(rows), emb.shape[1]), dtype=np.float64)
        np.add.at(sums, owner[sl], emb)
    return l2_normalise(sums)


def ensemble(embeddings: list[np.ndarray], normalise: bool = True, weights: list[float] | None = None) -> np.ndarray:
    """Concatenate models' embeddings for one cosine search.

    With `normalise` (default) each model's embedding is L2-normalised first, so each
    contributes equally to the cosine; `normalise=False` concatenates them as given (the
    seed concatenated raw outputs). `weights` (one per model, chosen on validation by
    `evaluation.inference.calibrate`) scale each part's share of the cosine; a model
    weighted 0 is left out.
    """
    weights = [1.0] * len(embeddings) if not weights else weights
    if len(weights) != len(embeddings) or min(weights) < 0 or max(weights) <= 0:
        raise ValueError(f"ensemble weights {weights} do not fit {len(embeddings)} models (>= 0, one above 0)")
    parts = [w * (l2_normalise(e) if normalise else e) for e, w in zip(embeddings, weights) if w > 0]
    return l2_normalise(np.concatenate(parts, axis=1))


CHECKPOINT_KEYS = ("config", "model")


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint safely (`weights_only=True`: tensors and plain data only).

    A truncated, garbage or foreign file is a DataError naming it, not torch's traceback.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch's reader fails on garbage in many ways (IndexError, EOFError ...)
        raise DataError(f"{path}: not a readable checkpoint (truncated, corrupt or not written by artistsim; "
                        f"{type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in CHECKPOINT_KEYS):
        raise DataError(f"{path}: not an artistsim checkpoint (no {'/'.join(CHECKPOINT_KEYS)} entries)")
    return ckpt


def restore(module: torch.nn.Module, state: dict, where: str | Path) -> None:
    """`load_state_dict`, with a mismatch (another model size or kind) named as a DataError."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip()[:160] if len(first) > 1 else type(exc).__name__
        raise DataError(f"{where}: weights do not fit the configured {type(module).__name__} ({detail})") from None


def load_run(run_dir: str | Path, device: torch.device, which: str = "best") -> tuple[torch.nn.Module, TrainConfig]:
    """The trained encoder of a run directory (its best checkpoint by default), in eval mode."""
    path = Path(run_dir) / f"{which}.pt"
    ckpt = load_checkpoint(path, device)
    cfg = train_config_from_dict(ckpt["config"], where=str(path))
    model = build_model(cfg.model).to(device)
    restore(model, ckpt["model"], path)
    model.eval()
    return model, cfg


def save_embeddings(out_dir: str | Path, embeddings: np.ndarray, trackids: np.ndarray) -> tuple[Path, Path]:
    """Write `embeddings.npy` and `trackids.npy` atomically; returns their paths."""
    out_dir = Path(out_dir)
    paths = (out_dir / "embeddings.npy", out_dir / "trackids.npy")
    for path, arr in zip(paths, (embeddings, trackids)):
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, arr)
    return paths
