"""Fitting a model's LDA parts on the training rows, once, before training.

- The LDA branch (models/frontend.py): on the training split's pooled statistics (the
  same `pooled_stats` and `LDA` as the LDA baseline, so an untrained "residual" model
  reproduces that baseline's ranking).
- An LDA-initialised input layer (`[model] input_init = "lda"`): the encoder's input
  projection starts as a frame-level LDA (artists as classes), so the first layer passes on
  the channel combinations that vary between artists more than within one, instead of
  random ones. The rest of the projection's rows (past the LDA's directions) stay random.

- Global input normalisation (`[model] input_norm = "global"`): each frame channel's mean
  and standard deviation over training frames, loaded into the encoder's InputNorm.

Why here: all three read the training split, which is the trainer's business, not the model's.
"""

from __future__ import annotations

import numpy as np
import torch

from artistsim.data.splits import SplitData, full_batch
from artistsim.evaluation.baselines import LDA, pooled_stats
from artistsim.evaluation.inference import tune_lda


def lda_branch(model: torch.nn.Module):
    """The model's PooledLDA branch, or None (unwrapping DistributedDataParallel)."""
    base = model.module if hasattr(model, "module") else model
    return getattr(base, "lda", None)


def fit_lda_branch(model: torch.nn.Module, split: SplitData, rows: np.ndarray, labels: np.ndarray,
                   ridge: float, components: int = 0, progress: bool | None = None,
                   val_rows: np.ndarray | None = None) -> LDA:
    """Fit LDA on the pooled statistics of `rows` and load it into the model; returns it.

    `ridge` <= 0 chooses shrinkage and directions on the artists of `val_rows` (never
    trained on) from `evaluation.inference.LDA_GRID`, as `evaluate` does for fusion.
    """
    branch = lda_branch(model)
    if branch is None:
        raise ValueError("the model has no LDA branch (model.lda_branch is 'off')")
    stats = np.concatenate(pooled_stats(split.source, rows, progress=progress), axis=1)
    width = branch.proj.out_features
    if ridge <= 0:
        if val_rows is None:
            raise ValueError("choosing the LDA branch's shrinkage (lda_ridge <= 0) needs validation rows")
        val_stats = np.concatenate(pooled_stats(split.source, val_rows, progress=progress), axis=1)
        lda = tune_lda(stats, labels, val_stats, split.artists[val_rows], max_components=width)[0]
    else:
        lda = LDA(n_components=min(components or width, width), ridge=ridge).fit(stats, labels)
    branch.set_lda(lda.mean_, lda.components_)
    return lda


INPUT_LDA_FRAMES = 50_000  # frames (whole tracks drawn at random) for the input layer's LDA
_TRACKS_PER_READ = 256


def sample_frames(split: SplitData, rows: np.ndarray, labels: np.ndarray, max_frames: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames [n, F], each frame's label) of whole tracks of `rows` drawn at random up to `max_frames`."""
    order = np.random.default_rng(seed).permutation(len(rows))
    counts = np.cumsum(split.source.lengths[rows[order]])
    order = np.sort(order[: max(1, int(np.searchsorted(counts, max_frames, side="right")))])
    frames, frame_labels = [], []
    for start in range(0, len(order), _TRACKS_PER_READ):
        pick = order[start : start + _TRACKS_PER_READ]
        x, lengths = full_batch(split.source, rows[pick])
        valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
        frames.append(x[valid])
        frame_labels.append(np.repeat(labels[pick], lengths))
    return np.concatenate(frames), np.concatenate(frame_labels)


def init_input_from_lda(model: torch.nn.Module, split: SplitData, rows: np.ndarray, labels: np.ndarray,
                        seed: int = 0, max_frames: int = INPUT_LDA_FRAMES, ridge: float = 1e-3) -> int:
    """Set the encoder's input projection to frame-level LDA directions; returns how many.

    Each direction is scaled so that the projected training frames have unit variance
    along it, and the bias centres them, the scale a freshly initialised layer has.
    """
    proj = _encoder_part(model, "input_proj")
    if not isinstance(proj, torch.nn.Linear):
        raise ValueError("input_init = \"lda\" needs an input projection: set the model's d_model below input_dim")
    frames, frame_labels = sample_frames(split, rows, labels, max_frames, seed)
    norm = _encoder_part(model, "input_norm")
    if norm is not None:  # the projection sees normalised frames (fit_input_norm runs first)
        frames = norm(torch.from_numpy(frames)).numpy()
    lda = LDA(n_components=proj.out_features, ridge=ridge).fit(frames, frame_labels)
    projected = lda.transform(frames)
    comps = lda.components_ / np.maximum(projected.std(axis=0), 1e-12)
    k = comps.shape[1]
    with torch.no_grad():
        proj.weight[:k] = torch.from_numpy(comps.T.astype(np.float32))
        proj.bias[:k] = torch.from_numpy((-lda.mean_ @ comps).astype(np.float32))
    return k


def fit_input_norm(model: torch.nn.Module, split: SplitData, rows: np.ndarray, labels: np.ndarray,
                   seed: int = 0, max_frames: int = INPUT_LDA_FRAMES) -> None:
    """Load the training frames' per-channel mean and standard deviation into the encoder's InputNorm."""
    norm = _encoder_part(model, "input_norm")
    if norm is None:
        raise ValueError("the model has no input normalisation (model.input_norm is 'none')")
    frames = sample_frames(split, rows, labels, max_frames, seed)[0].astype(np.float64)
    norm.set_stats(torch.from_numpy(frames.mean(0)).float(), torch.from_numpy(frames.std(0)).float())


def _encoder_part(model: torch.nn.Module, name: str):
    """The encoder's module `name` (unwrapping DistributedDataParallel and an LDAFusedModel), or None."""
    base = model.module if hasattr(model, "module") else model
    return getattr(base, name, None) or getattr(getattr(base, "encoder", None), name, None)
