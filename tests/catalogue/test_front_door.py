"""The service's front door: who may write, what bad input gets back, timeouts, /metrics.

Most cases call the app in-process (starlette's TestClient: fast, no port); the
timeouts and the CLI's startup checks need a real `artistsim serve`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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
