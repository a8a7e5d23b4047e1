"""`train --resume`: the checkpoint to continue from, checked against the run's config.

Why a check: resuming with another config either fails deep in `load_state_dict` (another
model size) or, worse, silently continues a different curriculum. Settings that do not
change what is learnt (loader threads, evaluation batch size) may differ. A `--resume`
before the first checkpoint exists starts a fresh run (`training.loop.fit`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from artistsim.config import TrainConfig, to_dict
from artistsim.data.layout import DataError
from artistsim.embed import load_checkpoint

FREE_TO_CHANGE = frozenset({"num_workers", "eval_batch_size"})


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"model.d_model": 64, ...}: nested config dicts as dotted keys, lists as JSON text."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(data)}


def config_differences(saved: dict, cfg: TrainConfig) -> list[str]:
    """Dotted keys whose value differs between a checkpoint's config and `cfg`."""
    a, b = _flat(json.loads(json.dumps(saved))), _flat(json.loads(json.dumps(to_dict(cfg))))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in FREE_TO_CHANGE)


def resume_checkpoint(out_dir: Path, cfg: TrainConfig, device: torch.device) -> dict:
    """`out_dir/last.pt`, checked to have been written with `cfg` (a DataError otherwise)."""
    path = out_dir / "last.pt"
    ckpt = load_checkpoint(path, device)
    diff = config_differences(ckpt["config"], cfg)
    if diff:
        shown = ", ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")
        raise DataError(f"{path}: --resume with a different config (differs in {shown}); "
                        f"resume with the run's own config or pick another --out")
    return ckpt
