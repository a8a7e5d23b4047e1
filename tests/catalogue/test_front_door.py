"""The service's front door: who may write, what bad input gets back, timeouts, /metrics.

Most cases call the app in-process (starlette's TestClient: fast, no port); the
timeouts and the CLI's startup checks need a real `artistsim serve`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from artistsim.catalogue.auth import ApiKeys
from artistsim.catalogue.live import LiveCatalogue
from artistsim.catalogue.service import create_app
from catalogue_cases import WRITER_KEY, cli, features, make_catalogue, write_run  # noqa: E402
from conftest import write_tiny_dataset  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("front_door")
    data = write_tiny_dataset(root / "data", n_train_artists=6, tracks=4)
    return make_catalogue(root / "cat", data, write_run(root / "run"))


def client(catalogue: Path, auth: ApiKeys | None = None, **kw) -> TestClient:
    return TestClient(create_app(LiveCatalogue(catalogue), auth=auth, **kw), raise_server_exceptions=False)


@pytest.fixture
def writable(built, tmp_path) -> Path:
    cat = tmp_path / "cat"
    shutil.copytree(built, cat)
    return cat


def add(c: TestClient, tid: int, headers: dict[str, str] | None = None):
    return c.post("/tracks", json={"trackid": tid, "features": features(tid).tolist()}, headers=headers or {})


# --- who may write --------------------------------------------------------------------------

def test_writes_need_a_valid_key(writable):
    with client(writable, ApiKeys({"alice": WRITER_KEY})) as c:
        r = add(c, 501)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "API key" in r.json()["detail"]
        r = add(c, 501, {"Authorization": "Bearer not-the-key"})
        assert r.status_code == 403 and "not-the-key" not in r.text
        r = add(c, 501, {"Authorization": "Basic " + WRITER_KEY})  # only the Bearer scheme carries a key
        assert r.status_code == 401
        assert c.get("/health").json()["tracks"] == 24  # nothing was written
        r = add(c, 501, {"Authorization": f"Bearer {WRITER_KEY}"})
        assert r.status_code == 201 and r.json()["added_by"] == "alice"
        r = add(c, 502, {"X-API-Key": WRITER_KEY})
        assert r.status_code == 201 and r.json()["added_by"] == "alice"
        # reads stay open
        assert c.get("/tracks/501/similar", params={"k": 2}).status_code == 200
        assert c.post("/similar", json={"features": features(1).tolist(), "k": 2}).status_code == 200


def test_writes_are_off_by_default(writable):
    with client(writable) as c:
        r = add(c, 501, {"Authorization": f"Bearer {WRITER_KEY}"})
        assert r.status_code == 403 and "writes are disabled" in r.json()["detail"]
        assert c.get("/health").json()["tracks"] == 24


def test_allow_writes_on_loopback_writes_as_anonymous(writable):
    with client(writable, ApiKeys(allow_anonymous=True)) as c:
        r = add(c, 501)
        assert r.status_code == 201 and r.json()["added_by"] == "anonymous"


def test_allow_writes_on_a_public_host_and_a_bad_key_file_stop_serve(built, tmp_path):
    p = cli("serve", str(built), "--host", "0.0.0.0", "--port", "0", "--allow-writes")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "--allow-writes" in err and len(err.strip().splitlines()) == 1, err
    keys = tmp_path / "keys"
    keys.write_text(f"# writers\nalice {WRITER_KEY}\n{WRITER_KEY}\n")
    p = cli("serve", str(built), "--port", "0", "--api-key-file", str(keys))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and f"{keys}: line 3" in err and WRITER_KEY not in err, err
    assert len(err.strip().splitlines()) == 1


# --- every former 500 is a 4xx naming the field (issue 20) ------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000
JSON = {"content-type": "application/json"}
HUGE = 3e38  # finite in float32, but its square overflows


def _features(value: float | None = None) -> list:
    return (features(1) if value is None else np.full((512, 30), value, dtype=np.float32)).tolist()


# (method, path, request keywords, expected status, words of the one-line detail)
FORMER_500S = [
    ("get", "/tracks/1003/similar?k=", {}, 422, "k must be an integer"),
    ("get", "/tracks/99999999999999999999/similar", {}, 422, "trackid is beyond the 64-bit"),
    ("get", "/tracks/-3/similar", {}, 422, "trackid must be a non-negative"),
    ("get", "/tracks/1003/similar?rerank=maybe", {}, 422, "rerank"),
    ("post", "/tracks", {"json": {"trackid": 10**30, "features": _features()}}, 422, "trackid is beyond"),
    ("post", "/tracks", {"json": {"trackid": 2**63, "features": _features()}}, 422, "trackid is beyond"),
    ("post", "/tracks", {"json": {"trackid": -1, "features": _features()}}, 422, "trackid must be a non-negative"),
    ("post", "/tracks", {"json": {"trackid": 1e3, "features": _features()}}, 422, "trackid must be a plain integer"),
    ("post", "/tracks", {"json": {"trackid": True, "features": _features()}}, 422, "trackid must be a plain integer"),
    ("post", "/tracks", {"json": {"trackid": 5, "artist": 10**30, "features": _features()}}, 422, "artist is beyond"),
    ("post", "/tracks", {"json": {"trackid": 5, "artist": -7, "features": _features()}}, 422, "artist must be"),
    ("post", "/tracks", {"data": {"trackid": str(10**30)}, "files": {"audio": ("a.wav", b"RIFF", "audio/wav")}},
     422, "trackid is beyond"),
    ("post", "/tracks", {"data": {"trackid": "5", "artist": "-1"}, "files": {"audio": ("a.wav", b"RIFF", "audio/wav")}},
     422, "artist must be a non-negative"),
    ("post", "/tracks", {"json": {"trackid": 5, "embedding": [HUGE] * 16}}, 422, "embedding holds values beyond"),
    ("post", "/similar", {"content": DEEP, "headers": JSON}, 400, "not valid JSON"),
    ("post", "/identify", {"content": DEEP, "headers": JSON}, 400, "not valid JSON"),
    ("post", "/identify", {"content": b'{"features": [NaN, ' + DEEP + b"]}", "headers": JSON}, 400, "not valid JSON"),
    ("post", "/similar", {"content": b"", "headers": JSON}, 400, "empty body"),
    ("post", "/similar", {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}, 400, "boundary"),
    ("post", "/similar", {"files": {"audio": ("a." + "x" * 300, b"RIFF0000WAVEjunk", "audio/wav")}}, 422, "audio: "),
    ("post", "/similar", {"files": {"audio": ("../../" + "y" * 300 + ".wav", b"RIFF0000WAVEjunk", "audio/wav")}},
     422, "audio: "),
    ("post", "/similar", {"json": {"embedding": [HUGE] * 16}}, 422, "embedding holds values beyond"),
    ("post", "/identify", {"json": {"embedding": [1.0] * 15 + [HUGE]}}, 422, "embedding holds values beyond"),
    ("post", "/similar", {"json": {"features": _features(HUGE)}}, 422, "features holds values beyond"),
    ("post", "/identify", {"json": {"features": _features(1e7)}}, 422, "features holds values beyond"),
    ("post", "/similar", {"json": {"features": _features(), "k": 10**30}}, 422, "k must be"),
    ("post", "/similar", {"json": {"features": _features(), "k": [1]}}, 422, "k must be an integer"),
    ("post", "/identify", {"json": {"features": _features(), "k": ""}}, 422, "k must be an integer"),
]


@pytest.fixture(scope="module")
def anonymous_client(built, tmp_path_factory):
    cat = tmp_path_factory.mktemp("former500") / "cat"
    shutil.copytree(built, cat)
    with client(cat, ApiKeys(allow_anonymous=True)) as c:
        yield c


@pytest.mark.parametrize("method,path,kw,status,words", FORMER_500S,
                         ids=[f"{m} {p[:30]} {i}" for i, (m, p, *_) in enumerate(FORMER_500S)])
def test_former_500s_are_4xx_with_a_one_line_detail(anonymous_client, method, path, kw, status, words):
    c = anonymous_client
    size = c.get("/health").json()["tracks"]
    r = getattr(c, method)(path, **kw)
    detail = r.json()["detail"]
    assert r.status_code == status and words in detail, r.text[:300]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300
    assert "/tmp" not in detail and "xxxxxxxx" not in detail  # no server path, no client file name
    assert c.get("/health").json()["tracks"] == size  # nothing was written
