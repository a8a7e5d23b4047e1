"""Typed configs: every field checked at load against its type hint and bound, one-line errors.

Each bad case writes a real TOML file (a small valid config with one value changed) and
asserts the ConfigError is one line that starts with the file and the key path.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import write_tiny_dataset
from fault_cases import assert_one_line_error, run_cli

from artistsim.config import ConfigError, TrainConfig, load_train_config, to_dict, train_config_from_dict
from artistsim.config_check import ranged

PACKAGED = sorted((Path(__file__).resolve().parents[1] / "src" / "artistsim" / "configs").rglob("*.toml"))

VALID: dict[str, Any] = {
    "val_fraction": 0.3, "patience": 2, "eval_batch_size": 16,
    "model": {"kind": "transformer", "d_model": 32, "num_heads": 2, "num_layers": 1, "ffn_dim": 32,
              "projector_hidden": 32, "embedding_dim": 16, "dropout": 0.0},
    "loss": {"kind": "seed", "weights": [1.0, 0.025, 1.0]},
    "augment": {"p": 0.3, "zero_bands": [0, 10]},
    "stages": [{"artists_per_batch": 3, "crop": 10, "lr": 1e-3, "max_epochs": 1}],
}


def value_text(v: Any) -> str:
    """A TOML value: JSON's scalars and arrays are TOML's, except infinity."""
    return {"Infinity": "inf", "-Infinity": "-inf", "NaN": "nan"}.get(json.dumps(v), json.dumps(v))


def toml_text(doc: dict[str, Any]) -> str:
    """A TOML document from plain values."""
    top = [f"{k} = {value_text(v)}" for k, v in doc.items()
           if not isinstance(v, dict) and not (isinstance(v, list) and v and all(isinstance(s, dict) for s in v))]
    tables = [f"\n[{k}]\n" + "\n".join(f"{kk} = {value_text(vv)}" for kk, vv in v.items())
              for k, v in doc.items() if isinstance(v, dict)]
    arrays = [f"\n[[{k}]]\n" + "\n".join(f"{kk} = {value_text(vv)}" for kk, vv in s.items())
              for k, v in doc.items() if isinstance(v, list) and v and all(isinstance(s, dict) for s in v) for s in v]
    return "\n".join(top + tables + arrays) + "\n"


def changed(section: str | None, key: str, value: Any) -> dict[str, Any]:
    """VALID with one value set (section None = top level, "stages" = the first stage)."""
    doc = json.loads(json.dumps(VALID))
    target = doc if section is None else doc["stages"][0] if section == "stages" else doc[section]
    target[key] = value
    return doc


# (document, key path, what the message says after "expected"/about the value)
BAD = {
    # wrong type
    "patience str": (changed(None, "patience", "five"), "patience", "expected int, found str"),
    "val_fraction str": (changed(None, "val_fraction", "0.1"), "val_fraction", "expected number, found str"),
    "bool is not int": (changed(None, "patience", True), "patience", "expected int, found bool"),
    "float is not int": (changed(None, "seed", 1.5), "seed", "expected int, found float"),
    "str is not bool": (changed("model", "mask_padding", "yes"), "[model] mask_padding", "expected bool, found str"),
    "list element": (changed("loss", "weights", [1, "a", 1]), "[loss] weights[1]", "expected number, found str"),
    "list length": (changed("loss", "weights", [1, 1]), "[loss] weights", "expected list of 3 numbers, found 2 items"),
    "scalar for list": (changed("augment", "zero_bands", 3), "[augment] zero_bands", "expected list of 2 ints, found int"),
    "stage value": (changed("stages", "lr", "fast"), "[[stages]] #1 lr", "expected number, found str"),
    # unknown choice
    "pooling": (changed("model", "pooling", "max"), "[model] pooling", "expected one of 'mean', 'attention', found 'max'"),
    "loss kind": (changed("loss", "kind", "arcfacee"), "[loss] kind", "found 'arcfacee'"),
    "memory_efficient": (changed("loss", "memory_efficient", "sometimes"), "[loss] memory_efficient", "found 'sometimes'"),
    "pad_mode": (changed(None, "pad_mode", "reflect"), "pad_mode", "expected one of 'wrap', 'zero'"),
    "model kind": (changed("model", "kind", "lstm"), "[model] kind", "expected one of 'transformer', 'conformer', 'rflda'"),
    "lda_branch": (changed("model", "lda_branch", 1), "[model] lda_branch", "found 1"),
    # out of range
    "val_fraction 1.5": (changed(None, "val_fraction", 1.5), "val_fraction", "expected 0 < val_fraction < 1, found 1.5"),
    "val_fraction 0": (changed(None, "val_fraction", 0), "val_fraction", "expected 0 < val_fraction < 1, found 0.0"),
    "dropout 1": (changed("model", "dropout", 1.0), "[model] dropout", "expected 0 <= dropout < 1"),
    "negative size": (changed("model", "ffn_dim", -4), "[model] ffn_dim", "expected ffn_dim >= 1, found -4"),
    "patience 0": (changed(None, "patience", 0), "patience", "expected patience >= 1"),
    "stage lr 0": (changed("stages", "lr", 0), "[[stages]] #1 lr", "expected lr > 0"),
    "stage crop": (changed("stages", "crop", 100), "[[stages]] #1 crop", "expected 1 <= crop <= 81"),
    "one artist": (changed("stages", "artists_per_batch", 1), "[[stages]] #1 artists_per_batch", "expected"),
    "augment p": (changed("augment", "p", 1.5), "[augment] p", "expected 0 <= p <= 1"),
    "list element range": (changed("augment", "zero_bands", [-1, 3]), "[augment] zero_bands[0]", "expected"),
    "not finite": (changed("stages", "lr", float("inf")), "[[stages]] #1 lr", "expected a finite number, found inf"),
    "eval batch": (changed(None, "eval_batch_size", 0), "eval_batch_size", "expected eval_batch_size >= 1"),
    # unknown key
    "unknown top": (changed(None, "patiance", 5), "patiance", "unknown key (did you mean 'patience'?)"),
    "unknown model": (changed("model", "dropuot", 0.1), "[model] dropuot", "unknown key"),
    "unknown stage": (changed("stages", "epochs", 3), "[[stages]] #1 epochs", "unknown key"),
    # a section of the wrong type
    "loss scalar": ({**VALID, "loss": 3}, "loss", "expected a [loss] table, found int"),
    "model str": ({**VALID, "model": "transformer"}, "model", "expected a [model] table, found str"),
    "stages scalar": ({**VALID, "stages": 3}, "stages", "expected [[stages]] tables, found int"),
    "stages of numbers": ({**VALID, "stages": [3]}, "[[stages]] #1", "expected a table, found int"),
    # between fields, or missing
    "missing stage key": ({**VALID, "stages": [{"crop": 10, "lr": 1e-3}]}, "[[stages]] #1 artists_per_batch",
                          "missing (required)"),
    "no stages": ({k: v for k, v in VALID.items() if k != "stages"}, "stages", "at least one"),
    "heads": (changed("model", "num_heads", 3), "[model] num_heads", "divisor of the model width (32)"),
    "inverted range": (changed("augment", "zero_bands", [5, 2]), "[augment] zero_bands", "low <= high"),
    "memory needs seed": ({**VALID, "loss": {"kind": "arcface", "xbm_size": 8}}, "[loss] xbm_size", "kind = \"seed\""),
    "rflda components": ({"model": {"kind": "rflda", "components": [8, 600]}}, "[model] components", "input_dim (512)"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_value_is_one_line_naming_file_and_key(name, tmp_path):
    doc, key, needle = BAD[name]
    path = tmp_path / "bad.toml"
    path.write_text(toml_text(doc))
    with pytest.raises(ConfigError) as info:
        load_train_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: "), message
    assert needle in message, message


def test_the_valid_base_loads(tmp_path):
    (tmp_path / "ok.toml").write_text(toml_text(VALID))
    cfg = load_train_config(tmp_path / "ok.toml")
    assert cfg.patience == 2 and cfg.augment.zero_bands == (0, 10) and cfg.loss.weights == (1.0, 0.025, 1.0)


def test_an_int_is_a_number_and_becomes_a_float():
    cfg = train_config_from_dict({**VALID, "weight_decay": 0, "stages": [{**VALID["stages"][0], "lr": 1}]})
    assert type(cfg.weight_decay) is float and type(cfg.stages[0].lr) is float


def test_a_string_value_is_named_by_type_not_quoted(tmp_path):
    with pytest.raises(ConfigError) as info:
        train_config_from_dict(changed(None, "patience", "my secret"), where="c.toml")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("path", PACKAGED, ids=lambda p: p.name)
def test_every_packaged_config_loads_and_survives_a_checkpoint(path):
    cfg = load_train_config(path)
    assert isinstance(cfg, TrainConfig)
    # a checkpoint stores to_dict(cfg) and embed.load_run reads it back through the same checks
    assert train_config_from_dict(to_dict(cfg), where="best.pt") == cfg


def test_a_checkpoint_config_is_checked_too():
    saved = to_dict(train_config_from_dict(VALID))
    saved["loss"]["kind"] = "arcfacee"
    with pytest.raises(ConfigError, match=r"^run/best.pt: \[loss\] kind: "):
        train_config_from_dict(saved, where="run/best.pt")


def test_a_malformed_range_rule_fails_when_the_class_is_defined():
    with pytest.raises(ValueError, match="range rule"):
        @dataclasses.dataclass
        class Bad:
            size: int = ranged(1, "size > 0")


@pytest.mark.parametrize("line", ['patience = "five"', 'val_fraction = "0.1"', 'memory_efficient = "sometimes"',
                                  'pooling = "max"', 'kind = "arcfacee"'])
def test_cli_train_with_a_bad_config_exits_2_and_writes_nothing(line, tmp_path, capsys):
    key, value = line.split(" = ")
    section = {"memory_efficient": "loss", "pooling": "model", "kind": "loss"}.get(key)
    path = tmp_path / "bad.toml"
    path.write_text(toml_text(changed(section, key, json.loads(value))))
    data = write_tiny_dataset(tmp_path / "data")
    code, out, err = run_cli(capsys, "train", data, "--config", path, "--out", tmp_path / "run")
    assert_one_line_error(code, err, "train", str(path), key)
    assert not (tmp_path / "run").exists() and out == ""


def test_cli_subprocess_bad_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(toml_text(changed(None, "val_fraction", "0.1")))
    data = write_tiny_dataset(tmp_path / "data")
    run = subprocess.run([sys.executable, "-m", "artistsim", "train", str(data), "--config", str(path),
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip() == f"artistsim train: error: {path}: val_fraction: expected number, found str"
    assert run.stdout == "" and not (tmp_path / "run").exists()
