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
from artistsim.data.layout import DataError
from artistsim.data.provenance import read_frontend
from artistsim.runs import record_frontend
from artistsim.training import loop
from artistsim.training.random_features import fit_random_features


def train(data_dir: str | Path, cfg: TrainConfig, out_dir: str | Path, **kwargs) -> dict:
    """Train (or fit) the run `cfg` describes into `out_dir`; keyword arguments as `training.loop.fit`.

    The data's front end (`artistsim.data.provenance`) is checked against the model's input
    width first and recorded in the finished run, so every later use of the run knows what
    features it eats. A config that leaves `input_dim` at its default takes the data's D
    (512 for the competition's features, 753 for musicnn's): one config serves every front
    end; one that names another width is refused.
    """
    frontend = read_frontend(data_dir)
    default = next(f.default for f in dataclasses.fields(cfg.model) if f.name == "input_dim")
    if cfg.model.input_dim == default:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, input_dim=frontend.dim))
    if frontend.dim != cfg.model.input_dim:
        raise DataError(f"{data_dir}: features are {frontend.dim}-d ({frontend.label()}) but [model] input_dim is "
                        f"{cfg.model.input_dim}")
    if isinstance(cfg.model, RandomFeatureConfig):
        summary = fit_random_features(data_dir, cfg, out_dir, **kwargs)[1]
    else:
        summary = loop.train(data_dir, cfg, out_dir, **kwargs)
    record_frontend(out_dir, data_dir)
    return summary
