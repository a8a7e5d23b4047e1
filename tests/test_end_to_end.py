"""The pipeline through the CLI, on a small synthetic dataset: synth -> validate -> pack ->
baseline -> train -> evaluate -> predict -> score. The trained model must beat the
untrained mean-pool baseline on the test split, or something in the chain is broken."""

from __future__ import annotations

import re

import pytest

from artistsim.cli import main
from artistsim.synth import SynthPreset, generate
from fault_cases import transformer_toml

CONFIG = transformer_toml(64, 4, 128, 128, 64, [dict(artists_per_batch=8, crop=10, lr=2e-3, max_epochs=20),
                                                 dict(artists_per_batch=8, crop=40, lr=1e-3, max_epochs=3, augment=True)],
                          val_fraction=0.15, eval_batch_size=128, dropout=0.1, patience=5)


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e") / "data"
    generate(root, preset=SynthPreset(n_train_artists=100, n_test_artists=40), seed=1, progress=False)
    return root


def _score(text: str, label: str) -> float:
    return float(re.search(rf"{label} nDCG@100 ([0-9.]+)", text).group(1))


@pytest.mark.slow
def test_train_evaluate_predict_beats_meanpool(synth_data, tmp_path, capsys):
    data = str(synth_data)
    assert main(["-q", "validate", data]) == 0
    assert main(["-q", "pack", data]) == 0
    assert main(["-q", "baseline", data, "--method", "meanpool"]) == 0
    meanpool_test = _score(capsys.readouterr().out, "meanpool: test")
    cfg = tmp_path / "e2e.toml"
    cfg.write_text(CONFIG)
    run = tmp_path / "run"
    assert main(["-q", "train", data, "--model", "transformer", "--config", str(cfg), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["-q", "evaluate", data, "--run", str(run)]) == 0
    assert not (run / "settings").exists()  # evaluate reports; saving settings is an explicit step
    capsys.readouterr()
    assert main(["-q", "evaluate", data, "--run", str(run), "--save-settings"]) == 0
    table = capsys.readouterr().out
    assert "baseline: meanpool" in table and "test rerank" in table
    assert (run / "evaluation" / "report.md").exists() and (run / "evaluation" / "curves_run.png").exists()
    assert len(list((run / "settings").glob("*.json"))) == 1  # settings chosen on validation, for predict
    chosen_test = float(re.search(r"\| \+ rerank [^|]*\| [0-9.]+ \| ([0-9.]+) \|", table).group(1))
    sub = tmp_path / "submission.tsv"
    assert main(["-q", "predict", data, "--run", str(run), "--out", str(sub)]) == 0
    lines = sub.read_text().splitlines()
    assert len(lines) == sum(1 for _ in open(synth_data / "test_meta.tsv")) - 1
    assert len(lines[0].split("\t")[1].split()) == 100
    capsys.readouterr()
    assert main(["score", str(sub), str(synth_data / "test_gt.tsv")]) == 0
    trained = float(capsys.readouterr().out.split()[-1])
    assert trained == pytest.approx(chosen_test, abs=1e-4)  # predict applied what evaluate chose
    print(f"end-to-end: trained {trained:.4f}, mean-pool {meanpool_test:.4f}")
    assert trained > meanpool_test + 0.08, (trained, meanpool_test)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nowhere")]) == 1
    assert "data directory not found" in capsys.readouterr().out
    assert main(["train", str(tmp_path), "--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "missing.toml: config file not found" in err and "Traceback" not in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nkind = "transformer"\nd_modle = 3\n[[stages]]\nartists_per_batch = 2\ncrop = 10\nlr = 1e-3\n')
    assert main(["train", str(tmp_path), "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "[model] d_modle: unknown key (did you mean 'd_model'?)" in capsys.readouterr().err
