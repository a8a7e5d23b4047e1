"""`artistsim serve --workers N`: several processes on one port, started and stopped for real."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
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


def answering_workers(s: Server, path: str = "/health", least: int = 12, most: int = 100) -> set[int]:
    """The worker pids (the `x-worker` header) that answered `path`, asked on fresh connections.

    At least `least` requests, then on until every worker of the supervisor has answered
    (the kernel spreads new connections over the workers at random) or `most` were sent.
    Every answer must be a 200.
    """
    everyone = set(workers_of(s.proc.pid))
    seen: set[int] = set()
    for i in range(most):
        r = httpx.get(s.url + path, params={"k": 3} if "similar" in path else None)
        assert r.status_code == 200, r.text
        seen.add(int(r.headers["x-worker"]))
        if i + 1 >= least and seen >= everyone:
            break
    return seen


# `serve` with no start grace: a worker's death is a crash to restart at any time, so a
# test need not wait out the 10 s in which a death means "failed to start" (that case:
# test_a_taken_port_and_bad_worker_counts_are_one_line_errors).
NO_GRACE = [sys.executable, "-c", "import sys; import artistsim.catalogue.server as s; s.START_GRACE_SECONDS = 0.0; "
            "from artistsim.cli import main; sys.exit(main(sys.argv[1:]))"]

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
        assert answering_workers(s, "/tracks/9001/similar") == set(workers_of(s.proc.pid))
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
    with Server(built, "--workers", "2", launcher=NO_GRACE) as s:
        assert wait_until(lambda: len(workers_of(s.proc.pid)) == 2)
        first = answering_workers(s)  # the event: both workers have answered, so both are serving
        assert first == set(workers_of(s.proc.pid))
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: victim not in workers_of(s.proc.pid) and len(workers_of(s.proc.pid)) == 2)
        assert s.proc.poll() is None
        again = answering_workers(s, "/tracks/1003/similar")
        assert victim not in again and again == set(workers_of(s.proc.pid))  # the new worker answers too


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
        assert wait_until(lambda: len(workers_of(s.proc.pid)) == 2)
        by_worker: dict[int, set[tuple[int, ...]]] = {}
        for i in range(100):  # fresh connections until both workers have answered (8 at least)
            r = httpx.get(s.url + "/tracks/1003/similar", params={"k": 3})
            by_worker.setdefault(int(r.headers["x-worker"]), set()).add(
                tuple(n["trackid"] for n in r.json()["neighbours"]))
            if i >= 7 and len(by_worker) == 2:
                break
        answers = set().union(*by_worker.values())
        assert set(by_worker) == set(workers_of(s.proc.pid))
        assert len(answers) == 1 and len(next(iter(answers))) == 3
