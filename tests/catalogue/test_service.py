"""The HTTP service, started for real (`artistsim serve` on a free loopback port), called with httpx."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")

from catalogue_cases import WRITER, Server, features, make_catalogue, write_run  # noqa: E402
from conftest import write_tiny_dataset  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("service")
    data = write_tiny_dataset(root / "data", n_train_artists=8, tracks=5)
    run = write_run(root / "run")
    return make_catalogue(root / "cat", data, run), data


@pytest.fixture(scope="module")
def server(built):
    with Server(built[0], "--max-body-mb", "1") as s:
        yield s


def trackids(data: Path) -> list[int]:
    return [int(line.split("\t")[0]) for line in (data / "train_meta.tsv").read_text().splitlines()[1:]]


def test_health_and_stats(server, built):
    h = httpx.get(server.url + "/health").json()
    assert h["status"] == "ok" and h["tracks"] == 40
    s = httpx.get(server.url + "/stats").json()
    assert s["tracks"] == 40 and s["artists"] == 8 and s["index"]["kind"] == "flat" and s["dim"] == 16
    assert httpx.get(server.url + "/docs").status_code == 200
    assert "/tracks/{trackid}/similar" in httpx.get(server.url + "/openapi.json").json()["paths"]


def test_similar_of_a_catalogued_track(server, built):
    tid = trackids(built[1])[0]
    r = httpx.get(server.url + f"/tracks/{tid}/similar", params={"k": 5})
    assert r.status_code == 200
    nb = r.json()["neighbours"]
    assert len(nb) == 5 and tid not in [n["trackid"] for n in nb]
    scores = [n["score"] for n in nb]
    assert scores == sorted(scores, reverse=True)
    assert httpx.get(server.url + f"/tracks/{tid}/similar", params={"k": 5, "rerank": "true"}).status_code == 200


@pytest.mark.parametrize("path,status,words", [
    ("/tracks/123456789/similar", 404, "123456789"),
    ("/tracks/abc/similar", 422, "trackid"),
    ("/tracks/{tid}/similar?k=0", 422, "k must be"),
    ("/tracks/{tid}/similar?k=5000", 422, "k must be"),
    ("/tracks/{tid}/similar?k=x", 422, "k must be an integer"),
])
def test_bad_get_requests(server, built, path, status, words):
    r = httpx.get(server.url + path.format(tid=trackids(built[1])[0]))
    assert r.status_code == status and words in r.json()["detail"]


def test_similar_and_identify_from_features(server):
    x = features(1).tolist()
    r = httpx.post(server.url + "/similar", json={"features": x, "k": 3})
    assert r.status_code == 200 and len(r.json()["neighbours"]) == 3
    r = _post(server, "/similar", files={"audio": ("broken.wav", b"RIFF0000WAVEjunk", "audio/wav")})
    assert 400 <= r.status_code < 500 and r.json()["detail"]
    assert httpx.get(server.url + "/health").status_code == 200  # still serving
    r = httpx.post(server.url + "/identify", json={"features": x, "k": 3})
    body = r.json()
    assert r.status_code == 200 and len(body["candidates"]) == 3 and isinstance(body["known"], bool)
    assert body["calibrated"] is True and body["threshold"] is not None


def test_similar_from_an_embedding(server, built):
    tid = trackids(built[1])[3]
    own = httpx.get(server.url + f"/tracks/{tid}/similar", params={"k": 3}).json()["neighbours"]
    # the catalogued track's own neighbours, found again from its vector, list the track first
    emb = np.zeros(16, dtype=np.float32)
    emb[0] = 1.0
    r = httpx.post(server.url + "/similar", json={"embedding": emb.tolist(), "k": 3})
    assert r.status_code == 200 and len(r.json()["neighbours"]) == 3 and len(own) == 3


def _post(server, path, **kw):
    return httpx.post(server.url + path, **kw)


@pytest.mark.parametrize("body,status,words", [
    ({"features": np.zeros((100, 30)).tolist()}, 422, "512"),
    ({"features": np.zeros((30, 512)).tolist()}, 422, "transposed"),
    ({"features": np.zeros((512, 90)).tolist()}, 422, "T = 90"),
    ({"features": [[1, 2], [3]]}, 422, "numeric array"),
    ({"features": features(2).tolist(), "k": 0}, 422, "k must be"),
    ({"features": features(2).tolist(), "k": 2.5}, 422, "k must be an integer"),
    ({"embedding": [0.1] * 7}, 422, "shape (16,)"),
    ({"embedding": [0.0] * 16}, 422, "zero vector"),
    ({"nothing": 1}, 422, "features"),
    ([1, 2, 3], 422, "JSON object"),
])
def test_bad_post_bodies(server, body, status, words):
    for path in ("/similar", "/identify"):
        r = _post(server, path, json=body)
        assert r.status_code == status and words in r.json()["detail"], (path, r.text)


def test_nan_invalid_json_and_oversized_uploads(server):
    x = features(3)
    x[5, 7] = np.nan
    r = _post(server, "/similar", content=json.dumps({"features": x.tolist()}),
              headers={"content-type": "application/json"})
    assert r.status_code == 422 and "NaN" in r.json()["detail"]
    r = _post(server, "/similar", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    big = np.zeros((512, 81)).tolist()  # ~1.5 MB of JSON against the 1 MB limit
    r = _post(server, "/similar", json={"features": big, "pad": "x" * 2**20})
    assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]
    r = _post(server, "/similar", files={"audio": ("a.wav", b"\0" * (2**20 + 10), "audio/wav")})
    assert r.status_code == 413
    assert httpx.get(server.url + "/health").status_code == 200  # still serving


def test_audio_is_refused_by_a_catalogue_of_competition_feature_runs(server):
    """The runs were trained on the competition's CNN features: featurize's descriptor would be nonsense to them."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(0).normal(scale=0.1, size=22050 * 10), 22050, format="WAV")
    r = _post(server, "/similar", files={"audio": ("a.wav", buf.getvalue(), "audio/wav")}, data={"k": "3"})
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "competition-cnn" in detail and "dsp" in detail and "\n" not in detail
    page = _post(server, "/ui/identify", files={"upload": ("a.wav", buf.getvalue())})  # the page: the same refusal
    assert page.status_code == 409 and "competition-cnn" in page.text


def test_add_then_find_then_refuse_duplicate(built, tmp_path):
    import shutil

    cat = tmp_path / "cat"
    shutil.copytree(built[0], cat)
    with Server(cat) as s:
        r = httpx.post(s.url + "/tracks", json={"trackid": 77, "artist": 5, "features": features(9).tolist()}, headers=WRITER)
        assert r.status_code == 201 and r.json()["tracks"] == 41
        assert httpx.get(s.url + "/tracks/77/similar", params={"k": 2}).status_code == 200
        r = httpx.post(s.url + "/tracks", json={"trackid": 77, "features": features(9).tolist()}, headers=WRITER)
        assert r.status_code == 409 and "77" in r.json()["detail"]
        r = httpx.post(s.url + "/tracks", json={"features": features(9).tolist()}, headers=WRITER)
        assert r.status_code == 422 and "trackid" in r.json()["detail"]
    with Server(cat) as s:  # the add was persisted
        assert httpx.get(s.url + "/health").json()["tracks"] == 41


def test_concurrent_adds_and_queries_see_whole_tracks(built, tmp_path):
    import shutil

    cat = tmp_path / "cat"
    shutil.copytree(built[0], cat)
    known = set(trackids(built[1]))
    added: list[int] = []
    errors: list[str] = []
    with Server(cat) as s:
        def adder() -> None:
            with httpx.Client(base_url=s.url) as c:
                for i in range(15):
                    tid = 5000 + i
                    r = c.post("/tracks", json={"trackid": tid, "features": features(100 + i).tolist()}, headers=WRITER)
                    if r.status_code != 201:
                        errors.append(r.text)
                    added.append(tid)

        def querier(seed: int) -> None:
            last = 0
            with httpx.Client(base_url=s.url) as c:
                for j in range(25):
                    size = c.get("/health").json()["tracks"]
                    if size < last:
                        errors.append(f"catalogue shrank from {last} to {size}")
                    last = size
                    r = c.post("/similar", json={"features": features(seed * 100 + j).tolist(), "k": 60})
                    if r.status_code != 200:
                        errors.append(r.text)
                        continue
                    for n in r.json()["neighbours"]:
                        tid = n["trackid"]
                        if tid not in known:  # a new track: it must be complete (its own query works)
                            rr = c.get(f"/tracks/{tid}/similar", params={"k": 3})
                            if rr.status_code != 200 or len(rr.json()["neighbours"]) != 3:
                                errors.append(f"half-added track {tid}: {rr.text}")

        threads = [threading.Thread(target=adder)] + [threading.Thread(target=querier, args=(q,)) for q in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:5]
        assert httpx.get(s.url + "/stats").json()["tracks"] == 40 + 15


def test_tracks_added_by_another_writer_are_taken_in(built, tmp_path):
    import shutil
    import time

    from artistsim.catalogue.store import Part, append

    cat = tmp_path / "cat"
    shutil.copytree(built[0], cat)
    with Server(cat) as s:
        x = np.random.default_rng(5).normal(size=(3, 16)).astype(np.float32)
        append(cat, Part(x, np.array([8001, 8002, 8003]), np.full(3, -1)))
        seen = 0
        for _ in range(100):  # the server looks at the manifest at most once a second
            seen = httpx.get(s.url + "/health").json()["tracks"]
            if seen == 43:
                break
            time.sleep(0.1)
        assert seen == 43
        assert httpx.get(s.url + "/tracks/8002/similar", params={"k": 2}).status_code == 200
