"""Training writes TensorBoard event files beside metrics.jsonl, holding the same scalars."""

from __future__ import annotations

import json

import pytest
from conftest import write_tiny_dataset
from test_loop import tiny_config

import artistsim.training.loop as train_mod
from artistsim.training import tblog

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def scalars(run) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the run folder's event files, read back as TensorBoard reads them."""
    acc = event_accumulator.EventAccumulator(str(run))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_training_writes_loss_ndcg_and_lr_per_stage_and_epoch(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n_train_artists=10, tracks=4)
    run = tmp_path / "run"
    cfg = tiny_config(stages=((3, 10, 1e-3, 2, False), (3, 20, 5e-4, 2, True)))
    train_mod.train(data, cfg, run, progress=False, log=lambda *_: None)
    assert list(run.glob("events.out.tfevents.*")), "no event file in the run folder"
    got = scalars(run)
    assert set(got) == {f"stage{s}/{m}" for s in (1, 2) for m in ("loss", "val_ndcg100", "lr")}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for s in (1, 2):  # the same values as metrics.jsonl, epoch by epoch
        mine = [r for r in records if r["stage"] == s]
        assert [step for step, _ in got[f"stage{s}/loss"]] == [r["epoch"] for r in mine]
        assert [v for _, v in got[f"stage{s}/loss"]] == pytest.approx([r["loss"] for r in mine], rel=1e-6)
        assert [v for _, v in got[f"stage{s}/val_ndcg100"]] == pytest.approx([r["val_ndcg"] for r in mine], rel=1e-6)
    assert [v for _, v in got["stage2/lr"]] == pytest.approx([5e-4, 5e-4])
    assert run not in tblog._writers  # closed when the run ended


def test_missing_and_nan_values_are_skipped(tmp_path):
    tblog.record(tmp_path, {"stage": 0, "epoch": 0, "val_ndcg": 0.25, "loss": float("nan")})
    tblog.close(tmp_path)
    assert scalars(tmp_path) == {"stage0/val_ndcg100": [(0, 0.25)]}


def test_a_checkpoint_average_record_gets_its_own_tags(tmp_path):
    """The average's record has no epoch: it is written under swa_ tags, stepped by the epochs averaged."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from artistsim.training import tblog

    tblog.record(tmp_path, {"stage": 1, "epoch": 3, "val_ndcg": 0.5, "loss": 1.0})
    tblog.record(tmp_path, {"stage": 1, "swa_epochs": 2, "val_ndcg": 0.9})
    tblog.close(tmp_path)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    swa = acc.Scalars("stage1/swa_val_ndcg100")
    assert [(e.step, round(e.value, 6)) for e in swa] == [(2, 0.9)]
    assert [e.step for e in acc.Scalars("stage1/val_ndcg100")] == [3]
