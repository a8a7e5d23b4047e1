"""The run folder's owner: checkpoint versions, fingerprint-keyed settings, front-end records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artistsim.data.layout import DataError
from artistsim.data.provenance import COMPETITION, Frontend, write_frontend
from artistsim.runs import (CHECKPOINT_VERSION, common_frontend, load_checkpoint, load_settings, record_frontend,
                            save_settings, write_checkpoint)
from artistsim.scoring.lda import LDA
from artistsim.search.loader import saved_state, save_state
from artistsim.search.pipeline import InferenceSettings, PipelineState


def _run(path, seed: int = 0):
    path.mkdir(parents=True, exist_ok=True)
    write_checkpoint(path / "best.pt", {"config": {}, "model": {"w": torch.full((2,), float(seed))}})
    return path


def test_a_checkpoint_carries_this_format_version_and_loads(tmp_path):
    run = _run(tmp_path / "r")
    assert load_checkpoint(run / "best.pt")["version"] == CHECKPOINT_VERSION


@pytest.mark.parametrize("version,word", [(CHECKPOINT_VERSION + 1, "newer"), (CHECKPOINT_VERSION - 1, "older"),
                                          (None, "no format version")])
def test_a_checkpoint_of_another_version_is_refused_in_one_line(tmp_path, version, word):
    state = {"config": {}, "model": {}}
    if version is not None:
        state["version"] = version
    torch.save(state, tmp_path / "best.pt")
    with pytest.raises(DataError, match=word) as err:
        load_checkpoint(tmp_path / "best.pt")
    assert "\n" not in str(err.value) and "best.pt" in str(err.value)


def test_settings_round_trip_for_the_same_runs_only(tmp_path):
    a, b = _run(tmp_path / "a", 1), _run(tmp_path / "b", 2)
    lda = LDA(4, 0.3).fit(np.random.default_rng(0).normal(size=(40, 6)), np.repeat(np.arange(10), 4))
    cohort = np.eye(3, dtype=np.float32)
    settings = InferenceSettings(0.5, 20, 0.8, 3, runs=["a", "b"], validation={"plain": 0.5},
                                 member_weights=[1.0, 0.5])
    save_state([a, b], PipelineState(settings, lda, cohort))
    got = saved_state([a, b])
    assert got is not None and got.settings == settings and np.array_equal(got.cohort, cohort)
    assert np.allclose(got.lda.transform(np.ones((1, 6))), lda.transform(np.ones((1, 6))))
    assert saved_state([a]) is None and saved_state([b, a]) is None  # another set or order of runs


def test_settings_of_a_run_retrained_in_place_are_stale_and_not_applied(tmp_path):
    a, b = _run(tmp_path / "a", 1), _run(tmp_path / "b", 2)
    save_settings([a, b], InferenceSettings(runs=["a", "b"]).to_record(), {"cohort": np.zeros((0, 0))})
    _run(a, 7)  # the same folder, new weights
    heard: list[str] = []
    assert load_settings([a, b], heard.append) is None
    assert len(heard) == 1 and "stale" in heard[0]


@pytest.mark.parametrize("weights", [[1.0], [0.0, 0.0]])
def test_saved_ensemble_weights_that_do_not_fit_the_runs_name_the_file(tmp_path, weights):
    a, b = _run(tmp_path / "a", 1), _run(tmp_path / "b", 2)
    save_settings([a, b], InferenceSettings(member_weights=weights).to_record(), {"cohort": np.zeros((0, 0))})
    with pytest.raises(DataError, match=r"settings: member_weights .* do not fit its 2 runs"):
        saved_state([a, b])


def test_negative_saved_weights_are_refused(tmp_path):
    a, b = _run(tmp_path / "a", 1), _run(tmp_path / "b", 2)
    save_settings([a, b], InferenceSettings(member_weights=[1.0, -0.5]).to_record(), {"cohort": np.zeros((0, 0))})
    with pytest.raises(DataError, match=r"member_weights\[1\]: expected member_weights\[1\] >= 0"):
        saved_state([a, b])


def test_a_data_directorys_front_end_travels_into_the_run(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    assert record_frontend(run, data) == COMPETITION  # no record: the competition's features
    dsp = Frontend("dsp", "3", 512, {"hop": 11700})
    write_frontend(data, dsp)
    assert record_frontend(run, data) == dsp and common_frontend([run]) == dsp
    other = tmp_path / "other"
    record_frontend(other, tmp_path)  # competition
    with pytest.raises(DataError, match="different front ends"):
        common_frontend([run, other])


@pytest.mark.parametrize("record,words", [({"name": "dsp", "dim": "512"}, "dim: expected int, found str"),
                                          ({"name": "dsp", "dim": 0}, "dim: expected 1 <= dim <= 65536"),
                                          ({"name": "dsp", "params": [1]}, "params: expected a table"),
                                          ({"name": "dsp", "colour": 1}, "colour: unknown key"),
                                          ([], "expected a table")])
def test_a_damaged_front_end_record_is_one_line_naming_the_field(tmp_path, record, words):
    import json

    from artistsim.data.provenance import ProvenanceError, read_frontend

    (tmp_path / "frontend.json").write_text(json.dumps(record))
    with pytest.raises(ProvenanceError, match=words) as err:
        read_frontend(tmp_path)
    assert "\n" not in str(err.value) and "frontend.json" in str(err.value)


@pytest.mark.parametrize("verb", ["embed", "evaluate", "predict"])
def test_a_run_trained_on_one_front_end_refuses_features_of_another(tmp_path, capsys, verb):
    """Same D (512) both sides, so nothing but the record tells them apart: one line, exit 2, nothing written."""
    from conftest import write_tiny_dataset

    from artistsim.cli import main
    from artistsim.config import StageConfig, TrainConfig, TransformerConfig, to_dict
    from artistsim.models import build_model

    data = write_tiny_dataset(tmp_path / "data", n_train_artists=3, n_test_artists=2, tracks=3)
    cfg = TrainConfig(model=TransformerConfig(d_model=16, num_heads=2, num_layers=1, ffn_dim=32, projector_hidden=16,
                                              embedding_dim=8), stages=[StageConfig(8, 10, 1e-3)])
    run = tmp_path / "run"
    run.mkdir()
    write_checkpoint(run / "best.pt", {"config": to_dict(cfg), "model": build_model(cfg.model).state_dict()})
    write_frontend(run, Frontend("dsp", "3", 512, {"hop": 11700}))
    write_frontend(data, Frontend("other-cnn", "1", 512, {}))
    out = tmp_path / "out"
    args = {"embed": ["--split", "test", "--out", str(out)], "evaluate": ["--out", str(out)],
            "predict": ["--out", str(out)]}[verb]
    capsys.readouterr()
    assert main(["-q", verb, str(data), "--run", str(run), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other-cnn" in err[0] and "trained on dsp" in err[0]
    assert not out.exists()
    write_frontend(data, Frontend("dsp", "3", 512, {"hop": 11700}))  # the same front end: accepted
    assert main(["-q", verb, str(data), "--run", str(run), *args]) == 0
