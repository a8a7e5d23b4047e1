"""Learning-rate warm-up, margin warm-up and checkpoint averaging: alone and inside the trainer."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_tiny_dataset
from test_loop import tiny_config

import artistsim.training.loop as train_mod
from artistsim.embed import load_checkpoint
from artistsim.training.schedule import LinearWarmup, WeightAverage, margin_fraction


def test_linear_warmup_rises_to_each_groups_own_lr_then_holds() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([{"params": [a], "lr": 1e-3}, {"params": [b], "lr": 1e-2}])
    warm = LinearWarmup(opt, steps=4)
    seen = []
    for _ in range(6):
        warm.before_step()
        seen.append([g["lr"] for g in opt.param_groups])
    assert [lr for pair in seen for lr in pair] == pytest.approx(
        [2.5e-4, 2.5e-3, 5e-4, 5e-3, 7.5e-4, 7.5e-3, 1e-3, 1e-2, 1e-3, 1e-2, 1e-3, 1e-2])
    resumed = LinearWarmup(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0), steps=4, done=2)
    assert resumed.factor() == pytest.approx(0.75)  # a resumed stage continues where it was


def test_margin_fraction_grows_from_zero() -> None:
    assert [margin_fraction(e, 2) for e in range(4)] == [0.0, 0.5, 1.0, 1.0]
    assert margin_fraction(0, 0) == 1.0


def test_weight_average_of_the_window_ending_at_an_epoch() -> None:
    net = torch.nn.BatchNorm1d(2)
    avg = WeightAverage(window=2, keep=4)
    for epoch in range(1, 5):
        with torch.no_grad():
            net.weight.fill_(float(epoch))
        net.num_batches_tracked.fill_(epoch)
        avg.push(epoch, net)
    state, count = avg.average(end_epoch=3)
    assert count == 2 and torch.equal(state["weight"], torch.full((2,), 2.5))  # epochs 2 and 3
    assert int(state["num_batches_tracked"]) == 3  # integer buffers: the window's last epoch
    assert avg.average(end_epoch=1) is None  # one epoch only: nothing to average


@pytest.fixture
def data(tmp_path):
    return write_tiny_dataset(tmp_path / "data", n_train_artists=10, tracks=4)


def test_trainer_warms_up_lr_and_margin_and_tries_the_average(data, tmp_path, monkeypatch) -> None:
    cfg = tiny_config(stages=((3, 10, 1e-3, 3, False),), lr_warmup_epochs=1.0, swa_epochs=2,
                      model_extra={"embedding_norm": "batchnorm"})
    cfg.loss.kind, cfg.loss.margin_warmup_epochs = "arcface", 2.0
    lrs, margins = [], []
    real_step = torch.optim.AdamW.step

    def spy_step(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy_step)
    real_epoch = train_mod.train_epoch

    def spy_epoch(model, loss_fn, *a, **k):
        margins.append(loss_fn.fraction)
        return real_epoch(model, loss_fn, *a, **k)

    monkeypatch.setattr(train_mod, "train_epoch", spy_epoch)
    scores = iter([0.1, 0.2, 0.3, 0.9])  # three epochs, then the average of epochs 2-3
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: next(scores))
    logged = []
    run = tmp_path / "run"
    train_mod.train(data, cfg, run, progress=False, log=logged.append)
    steps = len(lrs) // 3
    assert lrs[:steps] == pytest.approx([1e-3 * (i + 1) / steps for i in range(steps)])
    assert lrs[steps:] == pytest.approx([1e-3] * (len(lrs) - steps))
    assert margins == [0.0, 0.5, 1.0]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1] == {"stage": 1, "swa_epochs": 2, "val_ndcg": 0.9}
    assert any("checkpoint average of 2 epochs" in m and "kept" in m for m in logged)
    assert load_checkpoint(run / "best.pt")["progress"]["best"] == pytest.approx(0.9)
