"""resume: a checkpoint continues only the run that wrote it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from artistsim.config import TrainConfig, train_config_from_dict
from artistsim.data.layout import DataError
from artistsim.training.resume import config_differences, resume_checkpoint


def _cfg(**extra) -> TrainConfig:
    return train_config_from_dict({"model": {"kind": "transformer", "d_model": 32, "num_heads": 2},
                                   "stages": [{"artists_per_batch": 3, "crop": 10, "lr": 1e-3}], **extra})


def test_config_differences_names_dotted_keys():
    saved = dataclasses.asdict(_cfg())
    assert config_differences(saved, _cfg()) == []
    assert config_differences(saved, _cfg(num_workers=3, eval_batch_size=7)) == []  # free to change
    other = train_config_from_dict({"model": {"kind": "transformer", "d_model": 48, "num_heads": 2},
                                    "stages": [{"artists_per_batch": 3, "crop": 20, "lr": 1e-3}]})
    assert config_differences(saved, other) == ["model.d_model", "stages"]


def test_resume_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        resume_checkpoint(tmp_path, _cfg(), torch.device("cpu"))
    torch.save({"config": dataclasses.asdict(_cfg()), "model": {}, "version": 1}, tmp_path / "last.pt")
    assert resume_checkpoint(tmp_path, _cfg(), torch.device("cpu"))["model"] == {}
    with pytest.raises(DataError, match=r"last.pt: --resume with a different config \(differs in seed\)"):
        resume_checkpoint(tmp_path, _cfg(seed=5), torch.device("cpu"))
