"""Running the service: `serve` in one process, or `serve --workers N` in N on one port.

Why several processes: one process's event loop and search lanes share one interpreter lock;
measured on 2 cores at 1M tracks (BENCHMARKS.md, "Catalogue service under load"), about
a fifth of the CPU then sits idle waiting for it. Why not uvicorn's own `--workers`: its
workers share one listening socket, and a burst of new connections (a client pool
opening its keep-alive connections) is usually accepted whole by whichever worker wakes
first, leaving the others idle. Here every worker listens on its own socket bound with
SO_REUSEPORT, and the kernel spreads connections across them by their addresses.

The supervisor (the parent) holds the port with a bound, non-listening socket of the
same group (so `--port 0` picks one port for all, and nothing else takes it between
restarts), starts the workers (spawned: a fresh interpreter, no forked thread state),
restarts a worker that dies after it started well, and stops them all on SIGTERM or
SIGINT. A worker whose parent dies (even by SIGKILL) is sent SIGTERM by the kernel
(PR_SET_PDEATHSIG), so a killed server leaves no process behind. The catalogue's HNSW
and IVF-PQ indexes are memory-mapped (`store.read_index`): the workers share one copy.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from artistsim.catalogue.auth import ApiKeys, is_loopback
from artistsim.catalogue.connections import HEADER_TIMEOUT, IDLE_TIMEOUT, guarded_protocol
from artistsim.catalogue.inputs import MAX_BODY_BYTES
from artistsim.catalogue.observe import MULTIPROC_ENV, configure_logging
from artistsim.search._faiss import available_cpus

POLL_SECONDS = 0.2
# A worker that exits sooner than this after its start failed to start (a broken
# catalogue, a taken port): restarting it would only loop, so the server stops.
START_GRACE_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 15.0


class WorkerError(RuntimeError):
    """A worker could not start; the server stopped."""


def check_options(port: int, threads: int, workers: int, search_threads: int | None, max_body: int,
                  header_timeout: float, idle_timeout: float) -> None:
    """Every `serve` option in range, or a ValueError naming it (exit 2) before anything starts."""
    checks = [(0 <= port <= 65535, f"--port must be in 0..65535, got {port}"),
              (threads >= 1, f"--threads must be >= 1, got {threads}"),
              (workers >= 1, f"--workers must be >= 1, got {workers}"),
              (search_threads is None or search_threads >= 1, f"--search-threads must be >= 1, got {search_threads}"),
              (max_body >= 1, "--max-body-mb must be >= 1"),
              (0 < header_timeout <= 3600, f"--header-timeout must be in (0, 3600] seconds, got {header_timeout}"),
              (0 < idle_timeout <= 3600, f"--idle-timeout must be in (0, 3600] seconds, got {idle_timeout}")]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8000, device: str | None = None,
          threads: int = 1, max_body: int = MAX_BODY_BYTES, search_threads: int | None = None,
          workers: int = 1, auth: ApiKeys | None = None, header_timeout: float = HEADER_TIMEOUT,
          idle_timeout: float = IDLE_TIMEOUT, access_log: bool = False) -> None:
    """Open the catalogue and serve it until interrupted.

    `threads` caps torch's and FAISS's own threads per request of the thread-pool routes:
    concurrency comes from the server's thread pool, and nested thread pools on few cores
    only contend. The hot path searches on `search_threads` lanes of one thread each
    (default: the usable cores, shared out among the workers; `SimilarBatcher`).

    `workers` > 1 runs that many server processes on one port, sharing the memory-mapped
    index (`run_workers`). The catalogue is opened here first, so a bad
    one fails at once with one line rather than in every worker. Each worker takes in the
    others' adds within a second (`LiveCatalogue.maybe_refresh`), and at once for a
    trackid it does not know yet (`similar_track`).

    `auth`: who may write (`catalogue.auth`); `header_timeout`, `idle_timeout`: the
    connections' deadlines (`catalogue.connections`); `access_log`: a line per request.
    """
    check_options(port, threads, workers, search_threads, max_body, header_timeout, idle_timeout)
    if not is_loopback(host):
        print(f"artistsim serve: warning: --host {host} is not a loopback address: anyone who reaches this "
              f"machine can read the catalogue{'' if auth is None or not auth.configured else ' (writes need a key)'}",
              file=sys.stderr, flush=True)
    lanes = search_threads or max(1, available_cpus() // workers)
    settings = {"root": str(Path(root).resolve()), "device": device, "threads": threads, "max_body": max_body,
                "search_threads": lanes, "auth": auth, "header_timeout": header_timeout,
                "idle_timeout": idle_timeout, "access_log": access_log}
    # imported here, not at the top: a bad option above fails without loading torch (seconds)
    from artistsim.catalogue.live import LiveCatalogue
    from artistsim.catalogue.service import app_from_settings

    if workers == 1:
        app = app_from_settings(settings)
        sock = bound_socket(host, port)
        sock.listen(2048)
        _announce(root, host, int(sock.getsockname()[1]), workers)
        uvicorn.Server(uvicorn_config(app, settings)).run(sockets=[sock])
        return
    LiveCatalogue(settings["root"], device)
    run_workers(settings, host, port, workers, lambda p: _announce(root, host, p, workers))


def uvicorn_config(app: Any, settings: dict[str, Any]) -> uvicorn.Config:
    """uvicorn's settings: uvloop, httptools guarded by `catalogue.connections`, no websockets.

    uvicorn's own access log stays off: `catalogue.observe` writes the lines, with request ids.
    """
    configure_logging(settings["access_log"])
    protocol = guarded_protocol(settings["header_timeout"], settings["idle_timeout"])
    return uvicorn.Config(app, log_level="warning", access_log=False, http=protocol, ws="none",
                          timeout_keep_alive=settings["idle_timeout"])


def _announce(root: str | Path, host: str, port: int, workers: int) -> None:
    where = f"[{host}]" if ":" in host else host
    print(f"serving {root} on http://{where}:{port} (docs: /docs; {workers} worker process"
          f"{'es' if workers > 1 else ''})", flush=True)


def bound_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to (host, port) (0: a free port), in the port's SO_REUSEPORT group if asked.

    A taken port is an OSError naming it, which the CLI reports in one line (exit 2).
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def free_port(host: str, port: int) -> int:
    """`port` (or a free one for 0), refused when anything listens there already.

    A plain bind, without SO_REUSEPORT: another server's reuse-port group on that port
    would otherwise be joined silently, and the two servers would share its traffic.
    """
    with bound_socket(host, port) as probe:
        return int(probe.getsockname()[1])


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux); exit if it is already gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's own stop still reaches us
        pass
    if os.getppid() != parent:
        sys.exit(0)


def _quiet_when_orphaned(parent: int) -> None:
    """Once the parent is gone, point this worker's stdout and stderr at /dev/null.

    Why: they are pipes shared with the parent's caller, which may be gone too (a killed
    `serve | tee`, a test harness): a log line, or the final flush at exit, would then end
    in BrokenPipeError tracebacks. The kernel's SIGTERM (PR_SET_PDEATHSIG) stops uvicorn
    gracefully meanwhile; this watcher only makes that stop quiet.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(devnull, fd)

    threading.Thread(target=watch, name="artistsim-orphan-watch", daemon=True).start()


def worker_main(settings: dict[str, Any], host: str, port: int, parent: int) -> None:
    """One worker: its own listening socket in the port's group, then uvicorn until stopped."""
    _die_with_parent(parent)
    _quiet_when_orphaned(parent)
    try:
        sock = bound_socket(host, port, reuse_port=True)
        sock.listen(2048)
        from artistsim.catalogue.service import app_from_settings

        app = app_from_settings(settings)  # opened before serving: no request waits for the index
    except Exception as exc:  # one line, as from the CLI; the supervisor stops the server
        print(f"artistsim serve: worker {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    config = uvicorn_config(app, settings)
    config.headers = [("x-worker", str(os.getpid()))]  # names the worker that answered (tests check both do)
    uvicorn.Server(config).run(sockets=[sock])


def run_workers(settings: dict[str, Any], host: str, port: int, workers: int,
                announce: Callable[[int], None] | None = None) -> None:
    """Start `workers` server processes on (host, port) and supervise them until stopped."""
    port = free_port(host, port)
    holder = bound_socket(host, port, reuse_port=True)  # not listening: receives no connections
    if announce is not None:
        announce(port)
    ctx = multiprocessing.get_context("spawn")
    stop: list[int] = []
    # the workers' metrics meet here (`catalogue.observe`): set before they start, read at their import
    metrics_dir = tempfile.mkdtemp(prefix="artistsim-metrics-")
    previous_dir = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = metrics_dir

    def on_signal(sig: int, _: Any) -> None:
        stop.append(sig)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def start() -> tuple[Any, float]:
        p = ctx.Process(target=worker_main, args=(settings, host, port, os.getpid()), name="artistsim-serve")
        p.start()
        return p, time.monotonic()

    procs = [start() for _ in range(workers)]
    try:
        while not stop:
            time.sleep(POLL_SECONDS)
            for i, (p, started) in enumerate(procs):
                if p.is_alive() or stop:
                    continue
                if time.monotonic() - started < START_GRACE_SECONDS:
                    raise WorkerError(f"a server worker exited with code {p.exitcode} while starting "
                                      "(its error is printed above)")
                print(f"artistsim serve: worker {p.pid} exited with code {p.exitcode}; restarting it",
                      file=sys.stderr, flush=True)
                procs[i] = start()
    finally:
        _stop_all([p for p, _ in procs])
        holder.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        if previous_dir is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous_dir
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop_all(procs: list[Any]) -> None:
    """SIGTERM (uvicorn's graceful shutdown), then SIGKILL for any still running after a timeout."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()
