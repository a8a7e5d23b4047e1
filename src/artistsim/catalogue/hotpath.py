"""The service's hot path: `GET /tracks/{id}/similar` without FastAPI's per-request machinery.

Why: measured on the 1M-track HNSW catalogue (BENCHMARKS.md, "Catalogue service under
load"), FAISS answers one query in ~0.6 ms of CPU, but the request through FastAPI cost
~1.7 ms of server CPU: routing, parameter validation, the thread-pool hop of a sync
endpoint and `json.dumps` of 100 neighbours. Two pieces remove most of it:

- `SimilarBatcher` runs the searches on `lanes` dedicated threads (by default the
  usable cores shared out among `serve --workers` processes), each searching with one
  OpenMP thread. A request starts a search at once when a lane is free (no timer: a
  lone request is never held back); requests that arrive while every lane is busy wait
  and then go together, one `Snapshot.search` call per distinct k, each free lane
  taking its share of them. The event loop keeps parsing HTTP while the lanes are inside
  FAISS or numpy, which release the GIL, and the per-call overhead of the search is
  shared by the batch. Why lanes of one OpenMP thread rather than one batch over an
  OpenMP team: measured on the 2 shared cores, a team's barriers spin or sleep while
  the other core runs someone else's work, and a batch of 8 was no faster than one
  thread (up to 3x slower with spinning waits); threads the OS schedules freely are not
  held back by each other.
- `HotPath`, a pure ASGI middleware, answers a plain `GET /tracks/{id}/similar[?k=N]`
  for a catalogued trackid from the batcher, with the body serialised by orjson. Any
  other request, and any it cannot answer plainly (another parameter, a k out of range,
  a trackid that is not an integer or not catalogued, an unexpected error), goes on to
  the FastAPI route, which answers it as before (same 4xx messages, same OpenAPI docs).
  Its answers are counted in /metrics like the route's: it names the route's template in
  the request's scope, one dictionary write, and `observe.Observe` around it counts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson

from artistsim.catalogue.live import LiveCatalogue, Neighbours
from artistsim.catalogue.observe import ROUTE_KEY
from artistsim.catalogue.snapshot import MAX_K
from artistsim.search._faiss import available_cpus, faiss_module

DEFAULT_K = 100
_PREFIX, _SUFFIX = "/tracks/", "/similar"
ROUTE = "/tracks/{trackid}/similar"  # the FastAPI route it stands in for, as /metrics names it


def neighbours_list(n: Neighbours, i: int = 0) -> list[dict[str, Any]]:
    """Query i's neighbours as JSON-ready dicts (empty slots, trackid -1, left out)."""
    return [{"trackid": t, "score": s, "artist": None if a < 0 else a}
            for t, s, a in zip(n.trackids[i].tolist(), n.scores[i].tolist(), n.artists[i].tolist()) if t >= 0]


class SimilarBatcher:
    """Similar-track searches of concurrent requests, gathered into shared search calls.

    Lives on the event loop's thread (no locks: `_pending` and `_running` are only
    touched there); the searches run on `lanes` worker threads of its own.
    """

    def __init__(self, cat: LiveCatalogue, lanes: int | None = None):
        self.cat = cat
        self.lanes = lanes or available_cpus()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[tuple[int, int, asyncio.Future[bytes | None]]] = []
        self._running = 0  # lanes searching now

    async def similar(self, trackid: int, k: int) -> bytes | None:
        """The JSON body answering (trackid, k), or None when the trackid is not catalogued."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes | None] = loop.create_future()
        self._pending.append((trackid, k, fut))
        self._wake(loop)
        return await fut

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start idle lanes while work is pending (each takes its share when it runs)."""
        while self._pending and self._running < self.lanes:
            self._running += 1
            loop.create_task(self._drain())

    async def _drain(self) -> None:
        """One lane: search what is pending, then what arrived meanwhile, until nothing is left."""
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.lanes, thread_name_prefix="artistsim-search",
                                                               initializer=_one_omp_thread)
        try:
            while self._pending:
                # A share, not everything: one lane holding all that waits would search it
                # serially while the other lanes sit idle.
                share = -(-len(self._pending) // self.lanes)
                batch, self._pending = self._pending[:share], self._pending[share:]
                self._wake(loop)
                try:
                    bodies = await loop.run_in_executor(self._pool, self.answer, [(t, k) for t, k, _ in batch])
                except Exception as exc:  # every waiter hears of it; HotPath falls back to the FastAPI route
                    for *_, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (*_, fut), body in zip(batch, bodies):
                    if not fut.done():  # a client that went away cancelled its wait
                        fut.set_result(body)
        finally:
            self._running -= 1

    def answer(self, queries: list[tuple[int, int]]) -> list[bytes | None]:
        """JSON bodies for (trackid, k) queries, searched together on one snapshot."""
        cat = self.cat
        cat.maybe_refresh()  # take in other writers' adds, as every FastAPI route does
        snap = cat.snapshot
        tids = np.array([t for t, _ in queries], dtype=np.int64)
        ks = np.array([k for _, k in queries], dtype=np.int64)
        rows = snap.rows_of(tids)
        out: list[bytes | None] = [None] * len(queries)
        for k in np.unique(ks[rows >= 0]).tolist():  # one search per distinct k (HNSW's ef depends on k)
            sel = np.flatnonzero((ks == k) & (rows >= 0))
            nb = cat.similar(snap.vectors(rows[sel]), k, rows[sel], snapshot=snap)
            for j, q in enumerate(sel.tolist()):
                out[q] = orjson.dumps({"trackid": queries[q][0], "k": k, "neighbours": neighbours_list(nb, j)})
        return out


def _one_omp_thread() -> None:
    """A lane's FAISS searches use one OpenMP thread (the setting is the calling thread's own)."""
    faiss = faiss_module()
    if faiss is not None:
        faiss.omp_set_num_threads(1)


def parse_plain(path: str, query: bytes) -> tuple[int, int] | None:
    """(trackid, k) of a plain `/tracks/{id}/similar[?k=N]` request, None for anything else."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    tid = path[len(_PREFIX) : -len(_SUFFIX)]
    if not (tid.isdigit() and tid.isascii() and len(tid) <= 18):  # fits an int64
        return None
    if not query:
        k = DEFAULT_K
    elif query.startswith(b"k=") and query[2:].isdigit() and len(query) <= 12:
        k = int(query[2:])
    else:
        return None
    return (int(tid), k) if 1 <= k <= MAX_K else None


class HotPath:
    """ASGI middleware answering plain similar-track GETs through a `SimilarBatcher`."""

    def __init__(self, app: Callable[..., Awaitable[None]], batcher: SimilarBatcher):
        self.app = app
        self.batcher = batcher

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        plain = None
        if scope["type"] == "http" and scope["method"] == "GET":
            plain = parse_plain(scope["path"], scope.get("query_string", b""))
        if plain is not None:
            try:
                body = await self.batcher.similar(*plain)
            except Exception:  # the FastAPI route below meets the same error and answers it properly
                body = None
            if body is not None:
                scope[ROUTE_KEY] = ROUTE  # counted by `observe.Observe` (outside) under its route template
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
