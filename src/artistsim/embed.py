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
from artistsim.runs import BEST, common_frontend, file_sha256, load_checkpoint
from artistsim.scoring.lda import LDA, pooled_cat


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


def fuse(parts: list[np.ndarray], weights: list[float] | None = None, lda_part: np.ndarray | None = None,
         lda_weight: float = 0.0) -> np.ndarray:
    """The runs' ensemble (each part L2-normalised, weighted), with the LDA part at `lda_weight` beside it.

    Why the LDA part is centred on the *training* mean (what `LDA.transform` subtracts)
    rather than on the tracks at hand: a track's embedding must not depend on which other
    tracks are embedded with it, or a catalogue could not answer as `predict` does.
    """
    emb = ensemble(parts, weights=weights or None) if len(parts) > 1 else l2_normalise(parts[0])
    if lda_weight <= 0 or lda_part is None:
        return emb
    return l2_normalise(np.concatenate([emb, lda_weight * l2_normalise(lda_part)], axis=1))


class ArraySource:
    """A FeatureSource over (D, T) arrays held in memory (uploads, --features files)."""

    def __init__(self, tracks: list[np.ndarray]):
        self.lengths = np.array([t.shape[1] for t in tracks], dtype=np.int64)
        width = int(self.lengths.max()) if len(tracks) else 1
        dim = tracks[0].shape[0] if tracks else 1
        self.frames = np.zeros((len(tracks), width, dim), dtype=np.float32)
        for i, t in enumerate(tracks):  # one copy per track, at most a few per request
            self.frames[i, : t.shape[1]] = t.T

    def gather(self, rows: np.ndarray, frame_idx: np.ndarray) -> np.ndarray:
        return self.frames[np.asarray(rows)[:, None], frame_idx]


def run_record(run_dir: str | Path, cfg: TrainConfig) -> dict:
    """What a catalogue keeps of a run: where it is and the fingerprint of its checkpoint."""
    run_dir = Path(run_dir).resolve()
    return {"path": str(run_dir), "checkpoint": BEST, "sha256": file_sha256(run_dir / BEST),
            "model": cfg.model.kind, "embedding_dim": cfg.model.embedding_dim}


class Embedder:
    """Trained runs as one embedding: each run (full length or windows), weighted, LDA-fused.

    The embedding half of the ranking pipeline (`artistsim.search.pipeline`): `predict`,
    `evaluate` and every catalogue verb embed through it, so one track has one vector.
    """

    def __init__(self, models: list[torch.nn.Module], runs: list[dict], device: torch.device,
                 window: int | None = None, hop: int = 5, weights: list[float] | None = None,
                 lda: LDA | None = None, lda_weight: float = 0.0, frontend=None):
        self.models, self.runs, self.device = models, runs, device
        self.window, self.hop = window, hop
        self.weights = weights or None
        self.lda, self.lda_weight = (lda, float(lda_weight)) if lda is not None and lda_weight > 0 else (None, 0.0)
        self.frontend = frontend

    @classmethod
    def load(cls, runs: list[str | Path], device: str | torch.device | None = None, window: int | None = None,
             hop: int = 5, weights: list[float] | None = None, lda: LDA | None = None,
             lda_weight: float = 0.0) -> Embedder:
        """The runs' best checkpoints, loaded (they must share one front end)."""
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        frontend = common_frontend(list(runs))
        models, records = [], []
        for run in runs:
            model, cfg = load_run(run, dev)
            models.append(model)
            records.append(run_record(run, cfg))
        return cls(models, records, dev, window, hop, weights, lda, lda_weight, frontend)

    @property
    def settings(self) -> dict:
        """How this embedder embeds (recorded by catalogues)."""
        return {"window": self.window, "hop": self.hop, "ensemble": len(self.models) > 1,
                "weights": self.weights or [1.0] * len(self.models), "lda_weight": self.lda_weight}

    def parts(self, source: FeatureSource, rows: np.ndarray, progress: bool | None = False) -> list[np.ndarray]:
        """Each run's L2-normalised embedding of `rows` (before weighting and fusion)."""
        out = []
        for model in self.models:
            if self.window:
                out.append(embed_windows(model, source, rows, self.device, self.window, self.hop, progress=progress))
            else:
                out.append(embed_full(model, source, rows, self.device, progress=progress))
        return out

    def embed(self, source: FeatureSource, rows: np.ndarray, progress: bool | None = False) -> np.ndarray:
        """The pipeline's embedding of `rows` of a feature source (L2-normalised)."""
        rows = np.asarray(rows)
        lda_part = self.lda.transform(pooled_cat(source, rows, progress=progress)) if self.lda is not None else None
        return fuse(self.parts(source, rows, progress), self.weights, lda_part, self.lda_weight)

    def embed_arrays(self, tracks: list[np.ndarray]) -> np.ndarray:
        if not tracks:
            return np.empty((0, 0), dtype=np.float32)
        return self.embed(ArraySource(tracks), np.arange(len(tracks)))
