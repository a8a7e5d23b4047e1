from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import write_tiny_dataset

import artistsim.training.loop as train_mod
from artistsim.config import load_train_config, train_config_from_dict
from artistsim.embed import load_checkpoint, load_run


def tiny_config(kind: str = "transformer", stages=((3, 10, 1e-3, 2, False), (3, 20, 1e-3, 2, True)),
                model_extra: dict | None = None, **extra):
    model = {"kind": kind, "num_heads": 2, "ffn_dim": 32, "num_layers": 1, "embedding_dim": 16,
             "projector_hidden": 32, "dropout": 0.0, **(model_extra or {})}
    if kind == "transformer":
        model["d_model"] = 32
    else:
        model["depthwise_kernel"] = 5
    return train_config_from_dict({
        "model": model,
        "stages": [dict(zip(("artists_per_batch", "crop", "lr", "max_epochs", "augment"), s)) for s in stages],
        "val_fraction": 0.3, "eval_batch_size": 16, **extra,
    })


@pytest.fixture
def data(tmp_path):
    return write_tiny_dataset(tmp_path / "data", n_train_artists=10, tracks=4)


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_curriculum_runs_stages_and_writes_checkpoints(data, tmp_path):
    run = tmp_path / "run"
    summary = train_mod.train(data, tiny_config(), run, progress=False, log=lambda *_: None)
    recs = _records(run)
    assert [r["stage"] for r in recs] == [1, 1, 2, 2]
    assert [r["crop"] for r in recs] == [10, 10, 20, 20]
    assert summary["best_ndcg"] == pytest.approx(max(r["val_ndcg"] for r in recs))
    for name in ("best.pt", "last.pt", "stage_best.pt"):
        ckpt = load_checkpoint(run / name)  # weights_only=True
        assert ckpt["kind"] == "transformer"
    model, cfg = load_run(run, torch.device("cpu"))
    assert cfg.stages[1].crop == 20 and not model.training


def test_early_stop_after_patience(data, tmp_path, monkeypatch):
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.6, 0.1, 0.1, 0.1])
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: next(scores))
    cfg = tiny_config(stages=((3, 10, 1e-3, 10, False), (3, 10, 1e-3, 10, False)), patience=2)
    run = tmp_path / "run"
    train_mod.train(data, cfg, run, progress=False, log=lambda *_: None)
    recs = _records(run)
    # stage 1: 0.5 then two epochs without gain -> stop; stage 2: 0.2, 0.6, 0.1, 0.1 -> stop
    assert [r["stage"] for r in recs] == [1, 1, 1, 2, 2, 2, 2]
    assert load_checkpoint(run / "best.pt")["progress"]["best"] == pytest.approx(0.6)


def test_stage_best_reloaded_before_next_stage(data, tmp_path, monkeypatch):
    seen = []
    scores = iter([0.9, 0.1, 0.5])

    def fake_validate(model, *a, **k):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    monkeypatch.setattr(train_mod, "validate", fake_validate)
    loaded = []
    real_load = train_mod.load_checkpoint
    monkeypatch.setattr(train_mod, "load_checkpoint", lambda *a, **k: loaded.append(real_load(*a, **k)) or loaded[-1])
    cfg = tiny_config(stages=((3, 10, 1e-2, 2, False), (3, 10, 1e-2, 1, False)))
    train_mod.train(data, cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    # the checkpoint reloaded at the end of stage 1 holds the weights of epoch 1 (score 0.9)
    first = loaded[0]["model"]
    assert all(torch.equal(first[k], seen[0][k]) for k in first)
    assert not all(torch.equal(first[k], seen[1][k]) for k in first)


@pytest.mark.parametrize("crash_at", [2, 3])  # mid-stage (optimizer state) and at a stage switch
def test_resume_reaches_same_weights(data, tmp_path, monkeypatch, crash_at):
    cfg = tiny_config(stages=((3, 10, 1e-3, 2, False), (3, 20, 1e-3, 2, True)))
    full = tmp_path / "full"
    train_mod.train(data, cfg, full, progress=False, log=lambda *_: None)

    real_validate = train_mod.validate
    calls = {"n": 0}

    def crash_on_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise KeyboardInterrupt
        return real_validate(*a, **k)

    part = tmp_path / "part"
    monkeypatch.setattr(train_mod, "validate", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(data, cfg, part, progress=False, log=lambda *_: None)
    monkeypatch.setattr(train_mod, "validate", real_validate)
    with pytest.raises(FileExistsError):
        train_mod.train(data, cfg, part, progress=False, log=lambda *_: None)
    train_mod.train(data, cfg, part, resume=True, progress=False, log=lambda *_: None)
    a, b = load_checkpoint(full / "last.pt")["model"], load_checkpoint(part / "last.pt")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert _records(full) == [{**r, "seconds": s["seconds"]} for r, s in zip(_records(part), _records(full))]


def test_conformer_trains(data, tmp_path):
    run = tmp_path / "run"
    summary = train_mod.train(data, tiny_config("conformer"), run, progress=False, log=lambda *_: None)
    recs = _records(run)
    assert [r["stage"] for r in recs] == [1, 1, 2, 2] and all(0 < r["val_ndcg"] <= 1 for r in recs)
    assert summary["best_ndcg"] == max(r["val_ndcg"] for r in recs)
    assert load_checkpoint(run / "best.pt")["kind"] == "conformer"


def test_seed_configs_load():
    t = load_train_config("configs/transformer_seed.toml")
    c = load_train_config("configs/conformer_seed.toml")
    assert [(s.artists_per_batch, s.crop, s.lr) for s in t.stages][:3] == [(1200, 10, 3e-4), (1200, 10, 1e-4),
                                                                           (1000, 20, 1e-4)]
    assert len(t.stages) == 9 and t.stages[-1].augment and not t.stages[-2].augment
    assert len(c.stages) == 8 and c.stages[-1].augment and c.stages[0].artists_per_batch == 1000
    assert (t.model.d_model, t.model.num_heads, t.model.num_layers, t.model.ffn_dim) == (512, 4, 3, 2048)
    assert (c.model.ffn_dim, c.model.num_layers, c.model.depthwise_kernel) == (128, 4, 31)


def _micro_setup(dropout: float):
    from artistsim.models import build_model
    from artistsim.training.losses import SeedLoss

    cfg = tiny_config()
    cfg.model.dropout = dropout
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    x, lengths = torch.randn(37, 12, 512), torch.randint(3, 13, (37,))
    return model, SeedLoss(), x, lengths, torch.arange(37) % 9


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


def test_micro_batches_give_the_full_batch_gradient():
    model, loss_fn, x, lengths, labels = _micro_setup(0.0)
    results = []
    for micro in (0, 8 * 12):
        model.zero_grad()
        torch.manual_seed(5)
        loss = train_mod.forward_backward(model, loss_fn, x, lengths, labels, torch.device("cpu"), micro)
        results.append((float(loss.detach()), _grads(model)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_micro_batches_replay_dropout_masks():
    """With dropout, the second pass must draw the first pass's masks: its gradient equals
    that of one graph over the same micro-batch forwards."""
    model, loss_fn, x, lengths, labels = _micro_setup(0.3)
    torch.manual_seed(5)
    emb = torch.cat([model(x[i : i + 8], lengths[i : i + 8]) for i in range(0, 37, 8)])
    loss_fn(emb, labels).backward()
    expected = _grads(model)
    model.zero_grad()
    torch.manual_seed(5)
    train_mod.forward_backward(model, loss_fn, x, lengths, labels, torch.device("cpu"), 8 * 12)
    for a, b in zip(expected, _grads(model)):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_arcface_trains_its_class_weights(data, tmp_path):
    cfg = tiny_config(stages=((3, 10, 1e-3, 1, False),))
    cfg.loss.kind = "subcenter_arcface"
    run = tmp_path / "run"
    train_mod.train(data, cfg, run, progress=False, log=lambda *_: None)
    ckpt = load_checkpoint(run / "last.pt")
    weights = next(iter(ckpt["loss"].values()))
    assert weights.shape[0] == 16 and weights.shape[1] == 3 * 10  # embedding x (classes x sub-centres)
    from artistsim.models import build_model
    from artistsim.training.losses import build_loss

    loss_fn = build_loss(cfg.loss, num_classes=10, embedding_dim=16)
    groups = train_mod.make_optimizer(build_model(cfg.model), loss_fn, cfg, cfg.stages[0]).param_groups
    assert [g["lr"] for g in groups] == [1e-3, cfg.loss.arcface_lr]
    assert groups[1]["params"] == list(loss_fn.parameters())


def test_make_optimizer_is_fused_adamw_with_the_reference_update():
    """The fused kernel (where the device has one) takes the same AdamW step as the reference loop."""
    cfg = tiny_config()
    stage = cfg.stages[0]
    torch.manual_seed(0)
    fused_model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 8))
    ref_model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 8))
    ref_model.load_state_dict(fused_model.state_dict())
    start = fused_model[0].weight.detach().clone()
    opt = train_mod.make_optimizer(fused_model, torch.nn.Module(), cfg, stage)
    assert opt.defaults["fused"]  # CPU has a fused AdamW in the torch this project pins
    ref = torch.optim.AdamW(ref_model.parameters(), lr=stage.lr, weight_decay=cfg.weight_decay, foreach=False)
    x = torch.randn(64, 16)
    for _ in range(5):
        for model, o in ((fused_model, opt), (ref_model, ref)):
            o.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            o.step()
    for a, b in zip(fused_model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert (fused_model[0].weight - start).abs().max() > 2 * stage.lr  # five Adam steps of ~lr each moved the weights


def test_lda_branch_starts_at_the_lda_baseline(data, tmp_path):
    """Before training, the residual model's embedding is the LDA baseline's projection
    (fitted on the same rows, centred on the training mean; zero-padded past LDA's rank)."""
    from artistsim.evaluation.baselines import LDA, centre_normalise, pooled_stats
    from artistsim.training.frontend import fit_lda_branch

    cfg = tiny_config(model_extra={"lda_branch": "residual"})
    prepared = train_mod.prepare_data(data, cfg, progress=False)
    split, fit_rows, rows = prepared.split, prepared.train_rows, prepared.val_rows
    model = train_mod.build_model(cfg.model).eval()
    rank = fit_lda_branch(model, split, fit_rows, prepared.labels[fit_rows], 1e-3).components_.shape[1]
    ours = train_mod.embed_full(model, split.source, rows, torch.device("cpu"), progress=False)
    fit_stats = np.concatenate(pooled_stats(split.source, fit_rows, progress=False), axis=1)
    lda = LDA(n_components=16).fit(fit_stats, split.artists[fit_rows])
    stats = np.concatenate(pooled_stats(split.source, rows, progress=False), axis=1)
    expected = centre_normalise(lda.transform(stats), centre=np.zeros(rank))
    assert rank == lda.components_.shape[1] and np.allclose(ours[:, :rank], expected, atol=1e-4)
    assert np.abs(ours[:, rank:]).max() < 1e-6


def test_lda_branch_and_classifier_train_and_log_the_starting_point(data, tmp_path, monkeypatch):
    cfg = tiny_config(model_extra={"lda_branch": "residual"}, loss={"classifier_weight": 0.5}, stage_fallback=True)
    run = tmp_path / "run"
    lines, scores = [], []
    real_validate = train_mod.validate
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: scores.append(real_validate(*a, **k)) or scores[-1])
    summary = train_mod.train(data, cfg, run, progress=False, log=lines.append)
    recs = _records(run)
    # the first validation is the LDA start, before any step, logged as stage 0; then one per epoch
    assert recs[0]["stage"] == 0 and recs[0]["val_ndcg"] == scores[0] and 0 < scores[0] <= 1
    assert [r["val_ndcg"] for r in recs] == scores
    assert summary["best_ndcg"] >= recs[0]["val_ndcg"]  # the LDA start is a candidate: never below it
    assert any("LDA branch (residual)" in line for line in lines)
    ckpt = load_checkpoint(run / "best.pt")
    assert any(k.startswith("classifier.") for k in ckpt["loss"])
    model, _ = load_run(run, torch.device("cpu"))
    assert hasattr(model, "lda")


def test_stage_fallback_starts_the_next_stage_from_the_best(data, tmp_path, monkeypatch):
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.45, 0.1])
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: next(scores))
    cfg = tiny_config(stages=((3, 10, 1e-3, 2, False), (3, 10, 1e-3, 2, False), (3, 10, 1e-3, 2, False)),
                      stage_fallback=True)
    lines = []
    train_mod.train(data, cfg, tmp_path / "run", progress=False, log=lines.append)
    dropped = [line for line in lines if "did not improve" in line]
    assert len(dropped) == 2 and dropped[0].startswith("stage 2") and dropped[1].startswith("stage 3")


def test_recommended_configs_load():
    from artistsim.config import packaged_config

    for kind in ("transformer", "conformer"):
        cfg = load_train_config(packaged_config(f"recommended/{kind}.toml"))
        demo = load_train_config(packaged_config(f"{kind}_demo.toml"))
        assert cfg.model == demo.model and cfg.stage_fallback
        # the demo curriculum (batches, crops, learning rates), with its own epoch budget
        shape = [(s.artists_per_batch, s.crop, s.lr, s.augment) for s in cfg.stages]
        assert shape == [(s.artists_per_batch, s.crop, s.lr, s.augment) for s in demo.stages]
    first = load_train_config(packaged_config("firstplace_demo.toml"))
    assert (first.model.pooling, first.model.embedding_dim, first.loss.kind) == ("attention", 512, "arcface")
    seed = load_train_config(packaged_config("transformer_seed.toml"))
    assert seed.model.lda_branch == "off" and seed.loss.classifier_weight == 0 and not seed.stage_fallback


def test_cross_batch_memory_and_frame_resampling_train(data, tmp_path, monkeypatch):
    from artistsim.config import ConfigError, packaged_config
    from artistsim.training.losses import SeedPlusMemory

    resets = []
    monkeypatch.setattr(SeedPlusMemory, "reset_memory", lambda self: resets.append(self.memory.queue_idx))
    cfg = tiny_config(loss={"xbm_size": 64}, augment={"resample_p": 0.5})
    summary = train_mod.train(data, cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    assert summary["best_ndcg"] == max(r["val_ndcg"] for r in _records(tmp_path / "run"))
    assert len(resets) == 2  # emptied at each of the 2 stages
    assert resets[1] > 0  # stage 1 had filled it
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["loss"]["memory.embedding_memory"].shape == (64, 16)
    for bad in ({"loss": {"xbm_size": 8, "kind": "arcface"}}, {"loss": {"xbm_size": -1}},
                {"augment": {"resample_p": 1.5}}):
        with pytest.raises(ConfigError):
            tiny_config(**bad)
    for name in ("transformer_seed.toml", "conformer_seed.toml"):  # the seed configs: both off
        seed = load_train_config(packaged_config(name))
        assert seed.loss.xbm_size == 0 and seed.augment.resample_p == 0.0
