"""Fitting a random-feature LDA run (models/random_features.py) in closed form.

Why a run like any other: written as `best.pt` (config + weights) with a metrics.jsonl
line, it embeds, evaluates, ensembles, predicts and builds catalogues through the same
code as the trained encoders. The fit, on the training rows only (the validation
artists stay unseen, as for every run):

1. principal directions of the frames (a sample of whole tracks, up to `fit_frames`
   frames) and their variances;
2. one fixed draw of random unit directions (seeded by the run's seed);
3. for each number k of whitened principal directions in `components`: the pooled
   random features of every training and validation track, and the LDA
   (`evaluation.inference.tune_lda`: shrinkage and directions) best on validation;
4. the k with the best validation nDCG@100 wins; the model is measured on validation
   once more through its own forward pass, the figure the run reports.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from artistsim.atomic import atomic_write_text
from artistsim.config import RandomFeatureConfig, TrainConfig
from artistsim.data.layout import FeatureSource, progress_disabled
from artistsim.data.splits import full_batch
from artistsim.embed import resolve_device
from artistsim.evaluation.baselines import LDA
from artistsim.evaluation.inference import tune_lda
from artistsim.models.random_features import RandomFeatureLDA
from artistsim.training.loop import Progress, prepare_data, save_checkpoint, validate

BATCH_TRACKS = 256


def frame_moments(source: FeatureSource, rows: np.ndarray, max_frames: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, principal variances descending, principal directions as columns) of the frames of `rows`.

    Whole tracks are drawn at random until `max_frames` frames are in: the covariance of
    512 channels needs a few hundred thousand frames at most, not every frame of a large split.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(rows)
    take = order[: max(1, int(np.searchsorted(np.cumsum(source.lengths[order]), max_frames, side="right")))]
    sums, outer, n = 0.0, 0.0, 0  # running first and second moments (arrays after the first batch)
    for start in range(0, len(take), BATCH_TRACKS):  # batches of tracks, vectorised inside
        x, lengths = full_batch(source, np.sort(take[start : start + BATCH_TRACKS]))
        valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
        frames = x[valid].astype(np.float64)
        sums = sums + frames.sum(0)
        outer = outer + frames.T @ frames
        n += len(frames)
    centre = sums / n
    cov = outer / n - np.outer(centre, centre)
    var, vecs = np.linalg.eigh(cov)
    return centre, np.maximum(var[::-1], 0.0), vecs[:, ::-1]


def folded_directions(var: np.ndarray, vecs: np.ndarray, random: np.ndarray, k: int) -> np.ndarray:
    """(F, R) map: frame -> its top-k whitened principal coordinates -> R random unit directions of them."""
    floor = max(float(var[0]), 1e-12) * 1e-9
    whiten = vecs[:, :k] / np.sqrt(np.maximum(var[:k], floor))
    r = random[:k]
    return whiten @ (r / np.linalg.norm(r, axis=0, keepdims=True))


def pooled_features(model: RandomFeatureLDA, source: FeatureSource, rows: np.ndarray, device: torch.device,
                    progress: bool | None = None) -> np.ndarray:
    """(n, num_features) pooled random features of `rows` under the model's current map."""
    out = []
    with torch.no_grad():
        for start in tqdm(range(0, len(rows), BATCH_TRACKS), desc="Random features", leave=False,
                          disable=progress_disabled(progress)):
            x, lengths = full_batch(source, rows[start : start + BATCH_TRACKS])
            out.append(model.pooled(torch.from_numpy(x).to(device), torch.from_numpy(lengths).to(device)).cpu())
    return torch.cat(out).numpy().astype(np.float64)


def fit_random_features(data_dir: str | Path, cfg: TrainConfig, out_dir: str | Path, *, device: str | None = None,
                        resume: bool = False, progress: bool | None = None, folds: int = 0, fold: int = 0,
                        max_steps: int | None = None, log=print) -> tuple[RandomFeatureLDA, dict]:
    """Fit and write the run; returns the model and a summary like the trainer's (best_ndcg, epochs, seconds).

    `resume` refits (the fit is closed-form and deterministic); without it an existing run is refused.
    `max_steps` (the trainer's cap on batches per epoch) has no meaning here: there are no batches.
    """
    mcfg = cfg.model
    assert isinstance(mcfg, RandomFeatureConfig)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume and (out_dir / "best.pt").exists():
        raise FileExistsError(f"{out_dir} already holds a run; pass --resume to refit it or pick another --out")
    started = time.time()
    dev = resolve_device(device)
    data = prepare_data(data_dir, cfg, folds, fold, progress)
    source, fit_rows, val_rows = data.split.source, data.train_rows, data.val_rows
    labels, val_labels = data.labels[fit_rows], data.labels[val_rows]
    centre, var, vecs = frame_moments(source, fit_rows, mcfg.fit_frames, cfg.seed)
    random = np.random.default_rng(cfg.seed).standard_normal((mcfg.input_dim, mcfg.num_features))
    model = RandomFeatureLDA(mcfg).to(dev)
    best: tuple[float, int, LDA] | None = None
    tried = {}
    for k in sorted(set(mcfg.components)):
        model.set_directions(centre, folded_directions(var, vecs, random, k))
        lda, score = tune_lda(pooled_features(model, source, fit_rows, dev, progress), labels,
                              pooled_features(model, source, val_rows, dev, progress), val_labels,
                              max_components=mcfg.embedding_dim)
        tried[k] = round(float(score), 4)
        if best is None or score > best[0]:
            best = (score, k, lda)
    assert best is not None
    _, k, lda = best
    model.set_directions(centre, folded_directions(var, vecs, random, k))
    model.set_lda(lda.mean_, lda.components_)
    score = validate(model, data.split, val_rows, dev, cfg.eval_batch_size)
    record = {"stage": 1, "epoch": 1, "val_ndcg": score, "loss": float("nan"), "components": k,
              "lda_ridge": lda.ridge, "lda_directions": int(lda.components_.shape[1]), "tried": tried,
              "seconds": round(time.time() - started, 2)}
    prog = Progress(stage=1, epoch=1, stage_best=score, best=score, history=[record])
    for name in ("best.pt", "last.pt"):
        save_checkpoint(out_dir / name, model, torch.nn.Module(), None, cfg, prog, data.label_ids)
    atomic_write_text(out_dir / "metrics.jsonl", json.dumps(record) + "\n")
    log(f"random-feature LDA: {k} principal directions (validation nDCG@100 by k: {tried}), LDA shrinkage "
        f"{lda.ridge:g}, {lda.components_.shape[1]} directions; validation nDCG@100 {score:.4f}; {out_dir}/best.pt")
    return model, {"best_ndcg": score, "epochs": 1, "seconds": round(time.time() - started, 1)}
