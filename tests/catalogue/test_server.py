"""`artistsim serve --workers N`: several processes on one port, started and stopped for real."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")

from catalogue_cases import (WRITER, Server, cli, features, gone, make_catalogue, wait_until,  # noqa: E402
                             workers_of, write_run)
from conftest import write_tiny_dataset  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("server")
    data = write_tiny_dataset(root / "data", n_train_artists=6, tracks=4)
    return make_catalogue(root / "cat", data, write_run(root / "run"), "hnsw")


pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")


def test_workers_answer_and_see_each_others_adds_at_once(built, tmp_path):
    cat = tmp_path / "cat"
    shutil.copytree(built, cat)
    with Server(cat, "--workers", "2") as s:
        assert wait_until(lambda: len(workers_of(s.proc.pid)) == 2)
        assert httpx.get(s.url + "/stats").json()["search"]["method"] == "hnsw"
        r = httpx.post(s.url + "/tracks", json={"trackid": 9001, "artist": 3, "features": features(4).tolist()}, headers=WRITER)
        assert r.status_code == 201
        # a fresh connection per request: the kernel spreads them over both workers, and the
        # one that did not add the track must still know it at once (not after its 1 s look)
        for _ in range(12):
            r = httpx.get(s.url + "/tracks/9001/similar", params={"k": 3})
            assert r.status_code == 200 and len(r.json()["neighbours"]) == 3
        assert httpx.get(s.url + "/tracks/424242/similar").status_code == 404
        r = httpx.post(s.url + "/tracks", json={"trackid": 9001, "features": features(4).tolist()}, headers=WRITER)
        assert r.status_code == 409  # the duplicate is refused whichever worker answers


def test_sigterm_stops_every_worker(built):
    with Server(built, "--workers", "2") as s:
        assert wait_until(lambda: len(workers_of(s.proc.pid)) == 2)
        kids = workers_of(s.proc.pid)
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=30) == 0
        assert wait_until(lambda: all(gone(k) for k in kids))


def test_a_worker_that_dies_is_replaced(built):
    from artistsim.catalogue.server import START_GRACE_SECONDS

    with Server(built, "--workers", "2") as s:
        started = time.monotonic()
        assert wait_until(lambda: len(workers_of(s.proc.pid)) == 2)
        time.sleep(max(0.0, START_GRACE_SECONDS + 0.5 - (time.monotonic() - started)))  # past its start
        victim = workers_of(s.proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: victim not in workers_of(s.proc.pid) and len(workers_of(s.proc.pid)) == 2)
        assert s.proc.poll() is None
        assert all(httpx.get(s.url + "/tracks/1003/similar").status_code == 200 for _ in range(6))


def test_a_killed_supervisor_leaves_no_worker_behind(built):
    with Server(built, "--workers", "2") as s:
        assert wait_until(lambda: len(workers_of(s.proc.pid)) == 2)
        kids = workers_of(s.proc.pid)
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait(timeout=10)
        assert wait_until(lambda: all(gone(k) for k in kids))  # the kernel's parent-death signal


def test_a_taken_port_and_bad_worker_counts_are_one_line_errors(built):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra in (["--workers", "2"], []):
            p = cli("serve", str(built), "--port", str(port), *extra)
            out, err = p.communicate(timeout=120)
            assert p.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in err, err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    p = cli("serve", str(built), "--workers", "0")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "--workers must be >= 1" in err and len(err.strip().splitlines()) == 1


def test_answers_do_not_depend_on_the_worker(built):
    """Both workers map the same index: a query's neighbours do not depend on who serves it."""
    with Server(built, "--workers", "2") as s:
        answers = {tuple(n["trackid"] for n in httpx.get(s.url + "/tracks/1003/similar", params={"k": 3})
                         .json()["neighbours"]) for _ in range(8)}
        assert len(answers) == 1 and len(next(iter(answers))) == 3
