"""How a run learns is its model kind's business: a gradient curriculum or a closed-form fit.

`train` is what the CLI, the demo and the benchmarks call: the encoders (transformer,
conformer) go through `training.loop`, the random-feature LDA (`rflda`) through
`training.random_features`, both writing the same run directory (best.pt, last.pt,
metrics.jsonl).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from artistsim.config import RandomFeatureConfig, TrainConfig
from artistsim.data.layout import feature_dim
from artistsim.training import loop
from artistsim.training.random_features import fit_random_features


def train(data_dir: str | Path, cfg: TrainConfig, out_dir: str | Path, **kwargs) -> dict:
    """Train (or fit) the run `cfg` describes into `out_dir`; keyword arguments as `training.loop.fit`.

    The model's `input_dim` is the data's D (frontend.json's `dim`, 512 for the competition's
    features): a config is written once for any front end, and the run saves the D it used.
    """
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, input_dim=feature_dim(data_dir)))
    if isinstance(cfg.model, RandomFeatureConfig):
        return fit_random_features(data_dir, cfg, out_dir, **kwargs)[1]
    return loop.train(data_dir, cfg, out_dir, **kwargs)
