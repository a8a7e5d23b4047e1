"""The training loop: curriculum stages of artist-disjoint batches, metric losses, early stop.

Read top to bottom, one epoch is: batches of whole artists (sampling) -> random crops of
the stage's length, loaded in a background thread (data) -> augmentation on the batch
tensor (augment) -> encoder (models) -> summed metric losses (losses) -> backward ->
AdamW step; then validation nDCG@100 on held-out artists, checkpoints, early stopping.

Reproducibility: every epoch seeds its own random streams from (seed, stage, epoch), so
`--resume` after an interruption reaches the same weights as an uninterrupted run.
Distributed: under torchrun each rank takes its own artist batches (DistributedDataParallel
averages gradients); rank 0 alone validates, logs and writes, and broadcasts its decisions.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

import artistsim.training.tblog as tblog
from artistsim.config import StageConfig, TrainConfig, to_dict
from artistsim.data.splits import SplitData, load_split, run_holdout
from artistsim.embed import embed_full, load_checkpoint, restore
from artistsim.evaluation.metrics import ndcg_at_k
from artistsim.models import build_model, describe, output_dim
from artistsim.runs import write_checkpoint
from artistsim.search.exact import topk
from artistsim.training.augment import augment_batch, resample_frames
from artistsim.training.batches import CropLoader, forward_backward
from artistsim.training.distributed import Dist, broadcast_float, broadcast_module, init_distributed, sync_loss_grads
from artistsim.training.frontend import fit_input_norm, fit_lda_branch, init_input_from_lda
from artistsim.training.losses import build_loss
from artistsim.training.resume import resume_checkpoint
from artistsim.training.sampling import ArtistBatchSampler
from artistsim.training.schedule import LinearWarmup, WeightAverage, margin_fraction



# --------------------------------------------------------------------------- state


@dataclass
class Progress:
    """Where the curriculum stands; saved in every checkpoint so a run can resume."""

    stage: int = 0
    epoch: int = 0  # next epoch to run within the stage
    stage_best: float = -math.inf
    bad_epochs: int = 0
    best: float = -math.inf
    history: list[dict] = field(default_factory=list)


def epoch_seed(cfg: TrainConfig, stage: int, epoch: int) -> int:
    """One seed per (run seed, stage, epoch): the unit of reproducibility and resume."""
    return int(np.random.SeedSequence([cfg.seed, stage, epoch]).generate_state(1)[0])


def save_checkpoint(path: Path, model: torch.nn.Module, loss_fn: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None, cfg: TrainConfig, prog: Progress,
                    label_ids: np.ndarray) -> None:
    """Weights, config, model kind, curriculum position and optimizer state, atomically."""
    state = {
        "kind": cfg.model.kind,
        "config": to_dict(cfg),
        "model": model.state_dict(),
        "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "progress": {k: v for k, v in vars(prog).items()},
        "label_ids": torch.from_numpy(label_ids),
    }
    write_checkpoint(path, state)


def make_optimizer(model: torch.nn.Module, loss_fn: torch.nn.Module, cfg: TrainConfig,
                   stage: StageConfig) -> torch.optim.Optimizer:
    """AdamW at the stage's lr; trainable loss weights (ArcFace) in their own group.

    The fused implementation (one kernel over all parameters) where the device has one:
    on 2 CPU cores it steps the seed transformer's 9.8M parameters in 22 ms against
    81 ms for the default multi-tensor path. It is the same update up to float rounding.
    """
    groups = [{"params": list(model.parameters()), "lr": stage.lr}]
    loss_params = list(loss_fn.parameters())
    if loss_params:
        groups.append({"params": loss_params, "lr": cfg.loss.arcface_lr})
    try:
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


# --------------------------------------------------------------------------- steps


def train_epoch(model: torch.nn.Module, loss_fn: torch.nn.Module, optimizer: torch.optim.Optimizer,
                loader: CropLoader, cfg: TrainConfig, stage: StageConfig, device: torch.device,
                generator: torch.Generator, bar: tqdm | None, max_steps: int | None = None,
                warmup: LinearWarmup | None = None) -> float:
    """One pass over the epoch's batches; returns the mean loss."""
    model.train()
    total, steps = 0.0, 0
    for x, lengths, labels in loader:
        x, lengths, labels = x.to(device, non_blocking=True), lengths.to(device), labels.to(device)
        if cfg.augment.resample_p > 0:
            x = resample_frames(x, lengths, cfg.augment.resample_p, generator)
        if stage.augment:
            x = augment_batch(x, lengths, cfg.augment, generator)
        optimizer.zero_grad(set_to_none=True)
        loss = forward_backward(model, loss_fn, x, lengths, labels, device, cfg.micro_batch_frames)
        sync_loss_grads(loss_fn)
        if warmup is not None:
            warmup.before_step()
        optimizer.step()
        total += float(loss.detach())
        steps += 1
        if bar is not None:
            bar.update(1)
        if max_steps is not None and steps >= max_steps:
            break
    return total / max(steps, 1)


def validate(model: torch.nn.Module, val: SplitData, rows: np.ndarray, device: torch.device,
             batch_size: int) -> float:
    """nDCG@100 of full-length embeddings of the held-out artists against each other."""
    base = model.module if hasattr(model, "module") else model
    emb = embed_full(base, val.source, rows, device, batch_size=batch_size, progress=False)
    _, idx = topk(emb, k=100)
    return ndcg_at_k(idx, val.artists[rows])


# --------------------------------------------------------------------------- the run


@dataclass
class TrainData:
    """The training split cut into training and validation rows by artist."""

    split: SplitData
    train_rows: np.ndarray
    val_rows: np.ndarray
    labels: np.ndarray  # contiguous class index per row of the split (ArcFace needs them)
    label_ids: np.ndarray  # artist id of each class index


def prepare_data(data_dir: str | Path, cfg: TrainConfig, folds: int = 0, fold: int = 0,
                 progress: bool | None = None) -> TrainData:
    """Load train, hold out validation artists, map artists to contiguous class indices."""
    split = load_split(data_dir, "train", progress=progress)
    val_mask = run_holdout(split.artists, cfg, folds, fold)
    val_rows = np.flatnonzero(val_mask)
    if cfg.max_val_tracks and len(val_rows) > cfg.max_val_tracks:
        val_rows = np.sort(np.random.default_rng(cfg.seed).choice(val_rows, cfg.max_val_tracks, replace=False))
    label_ids, labels = np.unique(split.artists, return_inverse=True)
    return TrainData(split, np.flatnonzero(~val_mask), val_rows, labels.astype(np.int64), label_ids)


def _log(out_dir: Path, record: dict) -> None:
    with (out_dir / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    tblog.record(out_dir, record)  # the same scalars for TensorBoard, in the same folder


def train(data_dir: str | Path, cfg: TrainConfig, out_dir: str | Path, **kwargs) -> dict:
    """Run the whole curriculum; returns a summary (best validation nDCG, epochs, seconds).

    Keyword arguments are those of `fit`. Under torchrun, the process group that `fit`
    joins is destroyed before returning: left to interpreter exit, gloo's worker threads
    can be torn down while still joinable and abort the process ("terminate called
    without an active exception"), failing a run that had finished.
    """
    owns_group = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    try:
        return fit(data_dir, cfg, out_dir, **kwargs)[1]
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def fit(data_dir: str | Path, cfg: TrainConfig, out_dir: str | Path, *, device: str | None = None,
        resume: bool = False, progress: bool | None = None, folds: int = 0, fold: int = 0,
        max_steps: int | None = None, log=print) -> tuple[torch.nn.Module, dict]:
    """`train`, also returning this process's final model (the last stage's best weights).

    `max_steps` caps the batches per epoch (smoke tests and memory measurements).
    """
    d, dev = init_distributed(device)
    out_dir = Path(out_dir)
    if d.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not resume and (out_dir / "last.pt").exists():
            raise FileExistsError(f"{out_dir} already holds a run; pass --resume to continue it or pick another --out")
    if resume and not (out_dir / "last.pt").exists():  # killed before its first checkpoint
        resume = False
        if d.main:
            log(f"note: --resume: {out_dir / 'last.pt'} does not exist yet; starting a fresh run")
    ckpt = resume_checkpoint(out_dir, cfg, dev) if resume else None  # checked before any data is read
    torch.manual_seed(cfg.seed)
    data = prepare_data(data_dir, cfg, folds, fold, progress)
    model = build_model(cfg.model).to(dev)
    loss_fn = build_loss(cfg.loss, num_classes=len(data.label_ids), embedding_dim=output_dim(cfg.model)).to(dev)
    prog = Progress()
    if cfg.model.input_norm != "none" and ckpt is None:
        fit_input_norm(model, data.split, data.train_rows, data.labels[data.train_rows], cfg.seed)
    if cfg.model.input_init == "lda" and ckpt is None:
        k = init_input_from_lda(model, data.split, data.train_rows, data.labels[data.train_rows], cfg.seed)
        if d.main:
            log(f"input layer: {k} frame-level LDA directions of the training artists")
    if cfg.model.lda_branch != "off" and ckpt is None:
        lda = fit_lda_branch(model, data.split, data.train_rows, data.labels[data.train_rows],
                             cfg.model.lda_ridge, cfg.model.lda_components, progress, data.val_rows)
        if d.main:  # the starting point is a candidate too: training must beat it on validation
            prog.best = validate(model, data.split, data.val_rows, dev, cfg.eval_batch_size)
            save_checkpoint(out_dir / "best.pt", model, loss_fn, None, cfg, prog, data.label_ids)
            _log(out_dir, {"stage": 0, "epoch": 0, "val_ndcg": prog.best, "loss": float("nan")})
            log(f"LDA branch ({cfg.model.lda_branch}) fitted on the training rows (shrinkage {lda.ridge:g}, "
                f"{lda.components_.shape[1]} directions): "
                f"validation nDCG@100 {prog.best:.4f} before training")
    if ckpt is not None:
        restore(model, ckpt["model"], out_dir / "last.pt")
        restore(loss_fn, ckpt["loss"], out_dir / "last.pt")
        prog = Progress(**ckpt["progress"])
    if d.main:
        log(f"{describe(model)}; train {len(data.train_rows)} tracks, validation {len(data.val_rows)} tracks "
            f"of held-out artists; device {dev}" + (f"; {d.world_size} processes" if d.active else ""))
    net = torch.nn.parallel.DistributedDataParallel(model) if d.active else model
    started = time.time()
    while prog.stage < len(cfg.stages):
        stage = cfg.stages[prog.stage]
        optimizer = make_optimizer(model, loss_fn, cfg, stage)
        if ckpt is not None and ckpt["optimizer"] is not None and ckpt["progress"]["stage"] == prog.stage:
            optimizer.load_state_dict(ckpt["optimizer"])
        ckpt = None
        last = prog.stage == len(cfg.stages) - 1
        swa = WeightAverage(cfg.swa_epochs, cfg.swa_epochs + cfg.patience) if cfg.swa_epochs and last else None
        run_stage(net, model, loss_fn, optimizer, data, cfg, prog, out_dir, d, dev, progress, max_steps, log, swa)
        if d.main:  # the stage's best weights start the next stage (or the best so far, see stage_fallback)
            start = "stage_best.pt"
            if cfg.stage_fallback and prog.stage_best < prog.best:
                start = "best.pt"
                log(f"stage {prog.stage + 1} did not improve validation ({prog.stage_best:.4f} < {prog.best:.4f}): "
                    f"dropped, the next stage starts from the best weights so far")
            model.load_state_dict(load_checkpoint(out_dir / start, dev)["model"])
        broadcast_module(model, d)
        prog.stage, prog.epoch, prog.stage_best, prog.bad_epochs = prog.stage + 1, 0, -math.inf, 0
        if d.main:
            save_checkpoint(out_dir / "last.pt", model, loss_fn, None, cfg, prog, data.label_ids)
    summary = {"best_ndcg": prog.best, "epochs": len(prog.history), "seconds": round(time.time() - started, 1)}
    if d.main:
        tblog.close(out_dir)
        log(f"done: best validation nDCG@100 {prog.best:.4f} after {len(prog.history)} epochs; {out_dir}/best.pt")
    return model, summary


def run_stage(net: torch.nn.Module, model: torch.nn.Module, loss_fn: torch.nn.Module,
              optimizer: torch.optim.Optimizer, data: TrainData, cfg: TrainConfig, prog: Progress,
              out_dir: Path, d: Dist, dev: torch.device, progress: bool | None, max_steps: int | None,
              log, swa: WeightAverage | None = None) -> None:
    """Epochs of one curriculum stage until max_epochs or `patience` epochs without gain.

    With `swa`, each epoch's weights are kept and, at the end, the average of the window
    ending at the stage's best epoch is a further candidate (`average_candidate`).
    """
    stage = cfg.stages[prog.stage]
    sampler = ArtistBatchSampler(data.split.artists[data.train_rows], stage.artists_per_batch,
                                 seed=cfg.seed * 1000 + prog.stage, rank=d.rank, world_size=d.world_size)
    steps = min(len(sampler), max_steps) if max_steps else len(sampler)
    reset_memory = getattr(loss_fn, "reset_memory", None)
    if reset_memory is not None:  # cross-batch memory: embeddings of another stage's crops are stale
        reset_memory()
    if d.main and prog.epoch == 0 and hasattr(loss_fn, "uses_memory_efficient"):
        sizes = [len(b) for b in sampler.batches(0)]
        if loss_fn.uses_memory_efficient(max(sizes)):
            log(f"stage {prog.stage + 1}: batches of {min(sizes)}-{max(sizes)} tracks; the large ones take "
                f"the memory-efficient loss path")
    bar = tqdm(total=stage.max_epochs * steps, initial=prog.epoch * steps, disable=_disabled(progress, d),
               desc="Training", dynamic_ncols=True)
    warmup = LinearWarmup(optimizer, round(cfg.lr_warmup_epochs * steps), prog.epoch * steps) \
        if cfg.lr_warmup_epochs > 0 else None
    while prog.epoch < stage.max_epochs and prog.bad_epochs < cfg.patience:
        seed = epoch_seed(cfg, prog.stage, prog.epoch)
        torch.manual_seed(seed)
        generator = torch.Generator(device=dev).manual_seed(seed)
        batches = [data.train_rows[b] for b in sampler.batches(prog.epoch)]
        loader = CropLoader(data.split.source, batches, data.labels, stage.crop, cfg.pad_mode,
                            np.random.default_rng(seed), prefetch=max(1, cfg.num_workers) + 1)
        for module in loss_fn.modules():  # margin warm-up (margin softmax heads, alone or beside the seed)
            if hasattr(module, "set_margin_fraction"):
                module.set_margin_fraction(margin_fraction(len(prog.history), cfg.loss.margin_warmup_epochs))
        t0 = time.time()
        loss = train_epoch(net, loss_fn, optimizer, loader, cfg, stage, dev, generator, bar, max_steps, warmup)
        score = validate(model, data.split, data.val_rows, dev, cfg.eval_batch_size) if d.main else 0.0
        score = broadcast_float(score, d, dev)
        prog.epoch += 1
        record = {"stage": prog.stage + 1, "epoch": prog.epoch, "crop": stage.crop, "lr": stage.lr,
                  "loss": loss, "val_ndcg": score, "seconds": round(time.time() - t0, 2)}
        prog.history.append(record)
        improved = score > prog.stage_best
        prog.stage_best, prog.bad_epochs = (score, 0) if improved else (prog.stage_best, prog.bad_epochs + 1)
        if d.main:
            if improved:
                save_checkpoint(out_dir / "stage_best.pt", model, loss_fn, None, cfg, prog, data.label_ids)
            if score > prog.best:
                prog.best = score
                save_checkpoint(out_dir / "best.pt", model, loss_fn, None, cfg, prog, data.label_ids)
            save_checkpoint(out_dir / "last.pt", model, loss_fn, optimizer, cfg, prog, data.label_ids)
            _log(out_dir, record)
        if swa is not None:
            swa.push(prog.epoch, model)
        prog.best = max(prog.best, score)
        bar.set_description(f"Training: stage: {prog.stage + 1}/{len(cfg.stages)}, crop: {stage.crop}, "
                            f"epoch: {prog.epoch}/{stage.max_epochs}, loss: {loss:.4f}, "
                            f"max_ndcg: {prog.stage_best:.4f}")
    bar.close()
    if swa is not None and d.main:
        average_candidate(model, loss_fn, swa, data, cfg, prog, out_dir, dev, log)
    if d.main:
        log(f"stage {prog.stage + 1}/{len(cfg.stages)} (crop {stage.crop}, lr {stage.lr:g}): "
            f"best validation nDCG@100 {prog.stage_best:.4f} after {prog.epoch} epoch(s)")


def average_candidate(model: torch.nn.Module, loss_fn: torch.nn.Module, swa: WeightAverage, data: TrainData,
                      cfg: TrainConfig, prog: Progress, out_dir: Path, dev: torch.device, log) -> None:
    """Checkpoint averaging: the mean weights of the epochs ending at this stage's best one.

    Kept (written as best.pt and stage_best.pt, which the next step loads) only if it
    beats the best validation nDCG@100 so far; the log says which way it went.
    """
    scores = {r["epoch"]: r["val_ndcg"] for r in prog.history if r["stage"] == prog.stage + 1}
    if not scores:
        return
    averaged = swa.average(max(scores, key=scores.get))
    if averaged is None:
        return
    state, count = averaged
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    score = validate(model, data.split, data.val_rows, dev, cfg.eval_batch_size)
    _log(out_dir, {"stage": prog.stage + 1, "swa_epochs": count, "val_ndcg": score})
    if score > prog.best:
        log(f"checkpoint average of {count} epochs: validation nDCG@100 {score:.4f} > {prog.best:.4f}, kept")
        prog.best = prog.stage_best = score
        save_checkpoint(out_dir / "best.pt", model, loss_fn, None, cfg, prog, data.label_ids)
        save_checkpoint(out_dir / "stage_best.pt", model, loss_fn, None, cfg, prog, data.label_ids)
    else:
        log(f"checkpoint average of {count} epochs: validation nDCG@100 {score:.4f} <= {prog.best:.4f}, not kept")
    model.load_state_dict(current)


def _disabled(progress: bool | None, d: Dist) -> bool | None:
    """Only rank 0 draws a bar; elsewhere the tqdm default (hidden off a terminal)."""
    if not d.main:
        return True
    return None if progress is None else not progress
