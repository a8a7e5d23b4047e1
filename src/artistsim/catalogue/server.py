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
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from artistsim.catalogue.auth import ApiKeys
from artistsim.catalogue.live import LiveCatalogue
from artistsim.catalogue.service import MAX_BODY_BYTES, app_from_settings
from artistsim.search._faiss import available_cpus

POLL_SECONDS = 0.2
# A worker that exits sooner than this after its start failed to start (a broken
# catalogue, a taken port): restarting it would only loop, so the server stops.
START_GRACE_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 15.0


class WorkerError(RuntimeError):
    """A worker could not start; the server stopped."""


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8000, device: str | None = None,
          threads: int = 1, max_body: int = MAX_BODY_BYTES, search_threads: int | None = None,
          workers: int = 1, auth: ApiKeys | None = None) -> None:
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
    """
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    lanes = search_threads or max(1, available_cpus() // workers)
    settings = {"root": str(Path(root).resolve()), "device": device, "threads": threads, "max_body": max_body,
                "search_threads": lanes, "auth": auth}
    if workers == 1:
        app = app_from_settings(settings)
        sock = bound_socket(host, port)
        sock.listen(2048)
        _announce(root, host, int(sock.getsockname()[1]), workers)
        # uvicorn picks uvloop and httptools (dependencies) over asyncio and h11 when present
        uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
        return
    LiveCatalogue(settings["root"], device)
    run_workers(settings, host, port, workers, lambda p: _announce(root, host, p, workers))


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


def worker_main(settings: dict[str, Any], host: str, port: int, parent: int) -> None:
    """One worker: its own listening socket in the port's group, then uvicorn until stopped."""
    _die_with_parent(parent)
    try:
        sock = bound_socket(host, port, reuse_port=True)
        sock.listen(2048)
        app = app_from_settings(settings)  # opened before serving: no request waits for the index
    except Exception as exc:  # one line, as from the CLI; the supervisor stops the server
        print(f"artistsim serve: worker {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
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
