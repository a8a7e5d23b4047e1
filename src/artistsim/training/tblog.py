"""TensorBoard event files in the run folder, beside metrics.jsonl: `tensorboard --logdir runs/`.

Why both: metrics.jsonl is the record artistsim reads back (`evaluate`'s learning
curves); the event files are for the tools a PyTorch user already has open. Each epoch
record the loop appends to metrics.jsonl is also written here, as scalars tagged by
stage (`stage1/loss`, `stage1/val_ndcg100`, `stage1/lr`; the step is the epoch within
the stage), so TensorBoard draws one curve per stage and metric. A resumed run appends a
new event file to the same folder, which TensorBoard reads as one run.

One writer per run folder stays open for the run (SummaryWriter keeps a background
thread and a file), flushed after every record so a kill loses nothing written;
`close` ends it when the run is done.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# metrics.jsonl key -> scalar name under the stage's tag
SCALARS = {"loss": "loss", "val_ndcg": "val_ndcg100", "lr": "lr"}

_writers: dict[Path, Any] = {}


def record(out_dir: Path, rec: dict) -> None:
    """Write one epoch record's loss, validation nDCG@100 and learning rate (missing or NaN skipped)."""
    writer = _writers.get(out_dir)
    if writer is None:
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when training

        writer = _writers[out_dir] = SummaryWriter(log_dir=str(out_dir))
    # An epoch's record is stepped by its epoch; the checkpoint average's (no epoch) gets its
    # own tags, stepped by how many epochs it averaged.
    prefix, step = ("", rec["epoch"]) if "epoch" in rec else ("swa_", rec.get("swa_epochs", 0))
    for key, name in SCALARS.items():
        value = rec.get(key)
        if value is not None and math.isfinite(value):
            writer.add_scalar(f"stage{rec['stage']}/{prefix}{name}", value, global_step=step)
    writer.flush()


def close(out_dir: Path) -> None:
    """Flush and close the run folder's writer, if one was opened."""
    writer = _writers.pop(out_dir, None)
    if writer is not None:
        writer.close()
