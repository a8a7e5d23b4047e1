"""The service's front door: who may write, what bad input gets back, timeouts, /metrics.

Most cases call the app in-process (starlette's TestClient: fast, no port); the
timeouts and the CLI's startup checks need a real `artistsim serve`.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import time
from pathlib import Path

import httpx

import numpy as np
import pytest
from fastapi.testclient import TestClient

from artistsim.catalogue.auth import ApiKeys
from artistsim.catalogue.inputs import upload_suffix
from artistsim.catalogue.live import LiveCatalogue
from artistsim.catalogue.service import create_app
from catalogue_cases import (WRITER_KEY, Server, cli, features, free_port, gone, make_catalogue,  # noqa: E402
                             wait_until, workers_of, write_run)
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

def test_writes_need_a_valid_key(writable, caplog):
    caplog.set_level(logging.INFO, logger="artistsim.serve")
    with client(writable, ApiKeys({"alice": WRITER_KEY})) as c:
        r = add(c, 501)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "API key" in r.json()["detail"]
        r = add(c, 501, {"Authorization": "Bearer not-the-key"})
        assert r.status_code == 403 and "not-the-key" not in r.text
        r = add(c, 501, {"Authorization": "Basic " + WRITER_KEY})  # only the Bearer scheme carries a key
        assert r.status_code == 401
        assert c.get("/health").json()["tracks"] == 24  # nothing was written
        r = add(c, 501, {"Authorization": f"Bearer {WRITER_KEY}", "X-Request-ID": "add-501"})
        assert r.status_code == 201 and r.json()["added_by"] == "alice" and r.headers["x-request-id"] == "add-501"
        assert any(m.startswith("add-501 POST /tracks 201 ") and m.endswith(" by alice") for m in caplog.messages)
        assert not any(WRITER_KEY in m for m in caplog.messages)
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
    ("post", "/tracks", {"json": {"trackid": 5, "embedding": [HUGE] * 16}}, 422, "value(s) of magnitude above"),
    ("post", "/similar", {"content": DEEP, "headers": JSON}, 400, "not valid JSON"),
    ("post", "/identify", {"content": DEEP, "headers": JSON}, 400, "not valid JSON"),
    ("post", "/identify", {"content": b'{"features": [NaN, ' + DEEP + b"]}", "headers": JSON}, 400, "not valid JSON"),
    ("post", "/similar", {"content": b"", "headers": JSON}, 400, "empty body"),
    ("post", "/similar", {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}, 400, "boundary"),
    # the temporary file is made before anything else looks at the upload (here: the runs'
    # front end is not featurize's, so the audio is refused after it was written)
    ("post", "/similar", {"files": {"audio": ("a." + "x" * 300, b"RIFF0000WAVEjunk", "audio/wav")}}, 409, "audio"),
    ("post", "/similar", {"files": {"audio": ("../../" + "y" * 300 + ".wav", b"RIFF0000WAVEjunk", "audio/wav")}},
     409, "audio"),
    ("post", "/similar", {"json": {"embedding": [HUGE] * 16}}, 422, "value(s) of magnitude above"),
    ("post", "/identify", {"json": {"embedding": [1.0] * 15 + [HUGE]}}, 422, "value(s) of magnitude above"),
    ("post", "/similar", {"json": {"features": _features(HUGE)}}, 422, "value(s) of magnitude above"),
    ("post", "/identify", {"json": {"features": _features(1e7)}}, 422, "value(s) of magnitude above"),
    ("post", "/similar", {"json": {"features": _features(), "k": 10**30}}, 422, "k must be"),
    ("post", "/similar", {"json": {"features": _features(), "k": [1]}}, 422, "k must be an integer"),
    ("post", "/identify", {"json": {"features": _features(), "k": ""}}, 422, "k must be an integer"),
]


def test_an_upload_keeps_only_a_short_plain_extension_of_its_name():
    assert upload_suffix("song.WAV") == ".WAV" and upload_suffix("a.flac") == ".flac"
    for name in ("a." + "x" * 300, "../../etc/passwd", "a.wav/../../x", "a.w av", "a.wav\x00", "", None, "noext"):
        assert upload_suffix(name) == "", name


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


# --- serve's options, timeouts, request ids ---------------------------------------------------

# (arguments, words of the one-line error): the option is named (argparse's types or
# server.check_options, whichever refuses it first)
BAD_OPTIONS = [
    (["--port", "99999"], "--port"),
    (["--port", "-1"], "--port"),
    (["--threads", "0"], "--threads"),
    (["--workers", "0"], "--workers"),
    (["--idle-timeout", "0"], "--idle-timeout"),
    (["--host", "0.0.0.0", "--allow-writes"], "--allow-writes serves keyless writes on loopback only"),
]


def test_bad_serve_options_are_one_line_before_anything_starts(built, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"# writers\nalice {WRITER_KEY}\n{WRITER_KEY}\n")
    cases = [*BAD_OPTIONS, (["--api-key-file", str(keys)], f"{keys}: line 3")]
    port = str(free_port())  # overridden by a case's own --port (argparse keeps the last)
    procs = [cli("serve", str(built), "--port", port, *args) for args, _ in cases]  # together: each loads for seconds
    for p, (args, words) in zip(procs, cases):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2 and words in err and len(err.strip().splitlines()) == 1 and not out, (args, err)
        assert WRITER_KEY not in err and "Traceback" not in err


def test_serve_options_are_checked_by_the_library_too():
    from artistsim.catalogue.server import check_options

    good = {"port": 0, "threads": 1, "workers": 1, "search_threads": None, "max_body": 1, "header_timeout": 5.0,
            "idle_timeout": 5.0}
    check_options(**good)  # --port 0: a free port
    for field, value, words in [("port", 65536, "--port must be in 0..65535"), ("port", -1, "--port"),
                                ("threads", 0, "--threads must be >= 1"), ("workers", 0, "--workers"),
                                ("search_threads", 0, "--search-threads"), ("max_body", 0, "--max-body-mb"),
                                ("header_timeout", float("nan"), "--header-timeout"),
                                ("idle_timeout", 1e9, "--idle-timeout")]:
        with pytest.raises(ValueError, match=words):
            check_options(**{**good, field: value})


def _first_stderr_line(proc, seconds: float = 60.0) -> str:
    ready, _, _ = select.select([proc.stderr], [], [], seconds)
    return proc.stderr.readline() if ready else ""


def test_a_non_loopback_host_is_warned_about(built):
    p = cli("serve", str(built), "--host", "0.0.0.0", "--port", str(free_port()))
    try:
        line = _first_stderr_line(p)
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert "warning: --host 0.0.0.0 is not a loopback address" in line, line


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes `sock` (EOF or reset) before `seconds` pass."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_slow_and_silent_clients_are_dropped_within_seconds(built):
    with Server(built, "--header-timeout", "1", "--idle-timeout", "1", "--access-log") as s:
        def connect() -> socket.socket:
            return socket.create_connection(("127.0.0.1", s.port), timeout=5)

        silent = [connect() for _ in range(12)]  # connect, send nothing
        partial = connect()
        partial.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        stalled = connect()  # headers complete, the body stops half way
        stalled.sendall(b"POST /similar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 1000\r\n\r\n{\"features\": [")
        started = time.monotonic()
        dribbler = connect()  # one header byte at a time, each well within any idle gap
        for _ in range(6):
            try:
                dribbler.sendall(b"X")
            except OSError:
                break
            time.sleep(0.3)
        assert all(_closed_within(c, 5.0) for c in [*silent, partial, stalled, dribbler])
        assert time.monotonic() - started < 8.0
        big = connect()
        big.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n")
        big.settimeout(5)
        assert big.recv(100).startswith(b"HTTP/1.1 431")
        # the server still answers, and counted what it dropped
        r = httpx.get(s.url + "/health", headers={"X-Request-ID": "probe-42"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "probe-42"
        generated = httpx.get(s.url + "/stats").headers["x-request-id"]
        assert generated and generated != "probe-42"
        text = httpx.get(s.url + "/metrics").text
        assert 'artistsim_http_connections_dropped_total{reason="header_timeout"}' in text
        assert 'artistsim_http_connections_dropped_total{reason="idle_timeout"} 1.0' in text
        for c in [*silent, partial, stalled, dribbler, big]:
            c.close()
    log = s.proc.stderr.read()
    assert "probe-42 GET /health 200" in log and f"{generated} GET /stats 200" in log, log


# --- /metrics ---------------------------------------------------------------------------------

def _count(text: str, route: str, method: str = "GET", status: str = "2xx") -> float:
    """A request counter's value in a /metrics text (0 when absent)."""
    want = f'artistsim_http_requests_total{{method="{method}",route="{route}",status="{status}"}} '
    return sum(float(line[len(want):]) for line in text.splitlines() if line.startswith(want))


def test_metrics_count_by_route_template_never_the_raw_path(built):
    with client(built) as c:
        before = c.get("/metrics").text
        for tid in (1003, 1006, 1009):
            assert c.get(f"/tracks/{tid}/similar", params={"k": 2}).status_code == 200  # the hot path
        assert c.get("/tracks/1003/similar", params={"k": 2, "x": "1"}).status_code == 200  # not plain: the route
        assert c.get("/tracks/77777/similar").status_code == 404
        assert c.get("/no/such/path/12345").status_code == 404
        assert c.post("/similar", json={"nothing": 1}).status_code == 422
        after = c.get("/metrics")
    text = after.text
    assert after.headers["content-type"].startswith("text/plain")
    route = "/tracks/{trackid}/similar"
    assert _count(text, route) - _count(before, route) == 4
    assert _count(text, route, status="4xx") - _count(before, route, status="4xx") == 1
    assert _count(text, "unmatched", status="4xx") - _count(before, "unmatched", status="4xx") == 1
    assert _count(text, "/similar", "POST", "4xx") - _count(before, "/similar", "POST", "4xx") == 1
    assert "12345" not in text and "77777" not in text
    assert f'artistsim_http_request_duration_seconds_count{{method="GET",route="{route}"}}' in text
    assert "artistsim_catalogue_tracks 24.0" in text


def test_metrics_add_up_over_workers_and_a_killed_parent_leaves_quiet_workers(built):
    with Server(built, "--workers", "2") as s:
        for _ in range(10):  # a fresh connection each: the kernel spreads them over both workers
            assert httpx.get(s.url + "/tracks/1003/similar", params={"k": 2}).status_code == 200
        scrapes = {_count(httpx.get(s.url + "/metrics").text, "/tracks/{trackid}/similar") for _ in range(4)}
        assert scrapes == {10.0}  # whichever worker answers the scrape, it sums both
        kids = workers_of(s.proc.pid)
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait(timeout=10)
        assert wait_until(lambda: all(gone(k) for k in kids))
        err = s.proc.stderr.read()  # EOF once every worker has let go of the pipe
    assert "Traceback" not in err and "BrokenPipe" not in err, err
