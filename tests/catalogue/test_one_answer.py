"""One answer everywhere: the catalogue (CLI and HTTP) ranks every track exactly as `predict` does.

Every step of the pipeline is on (ensemble weights, LDA fusion, AS-norm, weighted query
expansion, rerank), with settings saved for the runs as `evaluate --save-settings` does,
under each back end (cosine; PLDA, whose catalogue searches its track keys).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from catalogue_cases import write_run
from conftest import write_tiny_dataset
from fastapi.testclient import TestClient

from artistsim.catalogue.build import build_catalogue
from artistsim.catalogue.live import LiveCatalogue
from artistsim.catalogue.service import create_app
from artistsim.cli import main
from artistsim.data.splits import load_split
from artistsim.embed import Embedder
from artistsim.evaluation.report import predict
from artistsim.evaluation.submission import read_submission
from artistsim.scoring.lda import LDA, WCCN, pooled_cat
from artistsim.scoring.plda import PairLLR
from artistsim.search.loader import save_state
from artistsim.search.pipeline import InferenceSettings, PipelineState, rank_all
from artistsim.scoring.asnorm import artist_centroids

SETTINGS = InferenceSettings(lda_weight=0.5, as_norm_top_k=3, rerank_threshold=0.9, expansion_depth=2,
                             member_weights=[1.0, 0.5])


@pytest.fixture(scope="module", params=["cosine", "plda", "cosine+wccn"])
def world(tmp_path_factory, request):
    """A dataset, two runs with every pipeline step saved for them (under the back end, with the LDA
    or the WCCN as the fused linear partner), and `predict`'s lists."""
    backend, _, partner = request.param.partition("+")
    root = tmp_path_factory.mktemp("one_answer")
    data = write_tiny_dataset(root / "data", n_train_artists=8, n_test_artists=9, tracks=5, seed=3)
    runs = [write_run(root / "runs" / "a", seed=0), write_run(root / "runs" / "b", seed=1)]
    train = load_split(data, "train")
    rows = np.arange(len(train.meta))
    lda = (WCCN(24, 0.5) if partner == "wccn" else LDA(16, 0.3)).fit(pooled_cat(train.source, rows), train.artists)
    fused = Embedder.load(runs, "cpu", weights=SETTINGS.member_weights, lda=lda,
                          lda_weight=SETTINGS.lda_weight).embed(train.source, rows)
    plda = PairLLR.fit(fused, train.artists, 0.3) if backend == "plda" else None
    state = PipelineState(replace(SETTINGS, backend=backend, partner=partner or "lda"), lda, artist_centroids(fused, train.artists)[1],
                          plda)
    save_state(runs, state)
    submission = root / "submission.tsv"
    predict(data, runs, torch.device("cpu"), submission)
    lists = {int(q): [int(t) for t in ts] for q, ts in read_submission(submission).items()}
    return data, runs, lists, state


def _query_all(cat, trackids) -> dict[int, list[int]]:
    args = ["query", str(cat), "--k", "100", "--json", "--trackid", *[str(t) for t in trackids]]
    return {int(r["query"]): [n["trackid"] for n in r["neighbours"]] for r in json.loads(_stdout(args))}


def _stdout(args) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(args) == 0
    return buf.getvalue()


def test_the_pipeline_changes_the_lists(world):
    """The settings are not a no-op here: without them the lists differ (so equality below means something)."""
    data, runs, lists, state = world
    test = load_split(data, "test", labels=False)
    emb = Embedder.load(runs, "cpu").embed(test.source, np.arange(len(test.meta)))
    plain = rank_all(emb, PipelineState(InferenceSettings(rerank_threshold=None)), k=len(emb) - 1)
    ids = test.trackids
    assert any(list(ids[plain[i]]) != lists[int(t)] for i, t in enumerate(ids))
    if state.plda is not None:  # and the back end is not a no-op either
        fused = Embedder.load(runs, "cpu", weights=SETTINGS.member_weights, lda=state.lda,
                              lda_weight=SETTINGS.lda_weight).embed(test.source, np.arange(len(test.meta)))
        cosine = rank_all(fused, replace(state, settings=SETTINGS, plda=None), k=len(fused) - 1)
        assert any(list(ids[cosine[i]]) != lists[int(t)] for i, t in enumerate(ids))


def test_an_hnsw_catalogue_indexes_the_back_ends_keys(world, tmp_path):
    """Under PLDA the FAISS index is a Euclidean one over the tracks' PLDA points; on a catalogue this small
    HNSW finds every candidate, so the lists are predict's; `index check` finds nothing wrong."""
    import faiss

    data, runs, lists, state = world
    cat = tmp_path / "cat"
    build_catalogue(cat, data, runs, ["test"], index="hnsw", progress=False)
    live = LiveCatalogue(cat)
    metric = faiss.METRIC_L2 if state.plda is not None else faiss.METRIC_INNER_PRODUCT
    assert live.snapshot.index.metric_type == metric
    assert _query_all(cat, list(lists)) == lists
    assert main(["-q", "index", "check", str(cat)]) == 0


def test_query_returns_exactly_predicts_list_for_every_test_track(world, tmp_path):
    data, runs, lists, _ = world
    cat = tmp_path / "cat"
    build_catalogue(cat, data, runs, ["test"], index="flat", progress=False)
    assert _query_all(cat, list(lists)) == lists
    one = next(iter(lists))  # a track asked alone (a batch of one) gets the same list
    assert _query_all(cat, [one]) == {one: lists[one]}


def test_http_answers_the_same_lists(world, tmp_path):
    data, runs, lists, _ = world
    cat = tmp_path / "cat"
    build_catalogue(cat, data, runs, ["test"], index="flat", progress=False)
    client = TestClient(create_app(LiveCatalogue(cat)))
    for tid in list(lists)[::4]:
        r = client.get(f"/tracks/{tid}/similar", params={"k": 100})
        assert r.status_code == 200
        assert [n["trackid"] for n in r.json()["neighbours"]] == lists[tid]


def test_the_same_lists_after_index_add(world, tmp_path):
    """A catalogue built from half the test tracks, the rest added: every list is still predict's."""
    data, runs, lists, _ = world
    half = tmp_path / "half"
    shutil.copytree(data, half)
    meta = pd.read_csv(data / "test_meta.tsv", sep="\t")
    first, rest = meta.iloc[: len(meta) // 2], meta.iloc[len(meta) // 2 :]
    first.to_csv(half / "test_meta.tsv", sep="\t", index=False)
    cat = tmp_path / "cat"
    build_catalogue(cat, half, runs, ["test"], index="flat", progress=False)
    files = [str(data / "test_features" / p) for p in rest["archive_features_path"]]
    args = ["-q", "index", "add", str(cat), "--features", *files, "--trackid", *[str(t) for t in rest["trackid"]]]
    assert main(args) == 0
    assert _query_all(cat, list(lists)) == lists


def test_the_catalogue_stores_its_pipeline(world, tmp_path):
    data, runs, _, state = world
    cat = tmp_path / "cat"
    manifest = build_catalogue(cat, data, runs, ["test"], index="flat", progress=False)
    live = LiveCatalogue(cat)
    assert live.state.settings == state.settings and np.array_equal(live.state.cohort, state.cohort)
    assert (live.state.plda is None) == (state.plda is None)
    np.testing.assert_array_equal(live.state.lda.components_, state.lda.components_)  # the fused partner, LDA or WCCN
    assert manifest.frontend["name"] == "competition-cnn"
    assert live.stats()["pipeline"]["as_norm_top_k"] == SETTINGS.as_norm_top_k


@pytest.mark.parametrize("name", ["dsp", "musicnn-msd"])
def test_audio_is_taken_when_the_runs_were_trained_on_featurizes_front_end(tmp_path, capsys, name):
    """The service and the identify page featurize audio by the catalogue's front end, at its D."""
    import io

    import soundfile as sf

    from artistsim.audio.frontends import record
    from artistsim.data.provenance import write_frontend

    if name != "dsp":
        pytest.importorskip("musicnn", reason="musicnn package not installed (make setup installs it)")
    front = record(name)
    data = write_tiny_dataset(tmp_path / "data", n_train_artists=3, n_test_artists=2, tracks=3, dim=front.dim)
    run = write_run(tmp_path / "run", dim=front.dim)
    write_frontend(data, front)
    write_frontend(run, front)
    build_catalogue(tmp_path / "cat", data, [run], ["train"], index="flat", progress=False)
    client = TestClient(create_app(LiveCatalogue(tmp_path / "cat")))
    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(0).normal(scale=0.1, size=16000 * 5), 16000, format="WAV")
    r = client.post("/similar", files={"audio": ("a.wav", buf.getvalue(), "audio/wav")}, data={"k": "3"})
    assert r.status_code == 200 and len(r.json()["neighbours"]) == 3
    page = client.post("/ui/identify", files={"upload": ("a.wav", buf.getvalue())})
    assert page.status_code == 200 and 'id="verdict"' in page.text
    npy = io.BytesIO()
    np.save(npy, np.zeros((front.dim, 5), np.float32))
    assert client.post("/ui/identify", files={"upload": ("q.npy", npy.getvalue())}).status_code == 200
    if name != "dsp":
        return
    other = write_tiny_dataset(tmp_path / "other", n_train_artists=3, n_test_artists=2, tracks=3)
    capsys.readouterr()  # data of another front end cannot be added: one line, exit 2
    assert main(["-q", "index", "add", str(tmp_path / "cat"), "--data", str(other), "--split", "test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "competition-cnn" in err[0] and "dsp" in err[0]
