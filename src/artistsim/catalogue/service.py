"""The catalogue as an HTTP JSON API (FastAPI on uvicorn; OpenAPI docs at /docs).

    GET  /health                      liveness, generation and size
    GET  /metrics                     Prometheus metrics (`artistsim.catalogue.observe`)
    GET  /stats                       the catalogue's figures and settings
    GET  /tracks/{trackid}/similar?k= the k tracks nearest to a catalogued track
    POST /similar                     same for new input: JSON {"features": [[...]] (512 x T)}
                                      or {"embedding": [...]}, or a multipart "audio" file
    POST /identify                    which artists made it (same inputs), "known" or not
    POST /tracks                      add a track: JSON {"trackid", "artist"?, "features"}
                                      (or "embedding"), or multipart "audio" + "trackid";
                                      needs a writer's API key (`artistsim.catalogue.auth`)

Bodies are read and checked by `artistsim.catalogue.inputs`: every input error is a 4xx
whose `detail` is one line naming the field and the problem; the server never answers a
bad input with a 500. docs/service.md states the whole promise (keys, limits, timeouts).

Concurrency: handlers run in a thread pool; searches read an immutable snapshot, adds
swap a new one in under a lock (`artistsim.catalogue.live`). The hot request, a plain
`GET /tracks/{id}/similar`, skips FastAPI's machinery and has its searches batched
(`artistsim.catalogue.hotpath`); every other case of it still reaches the route here. Tracks added by other
writers (`artistsim index add` while the server runs) are taken in within a second: a
request looks at the manifest's modification time at most once a second.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily

from artistsim.catalogue.auth import ApiKeys, require_writer
from artistsim.catalogue.build import check_features
from artistsim.catalogue.hotpath import HotPath, SimilarBatcher, neighbours_list
from artistsim.catalogue.inputs import (MAX_BODY_BYTES, BadInput, finite_bounded, id_field, int_field, read_input,
                                        validation_line)
from artistsim.catalogue.live import LiveCatalogue, NotFound, Unavailable, check_k, featurize_upload
from artistsim.catalogue.observe import Observe, metrics_text
from artistsim.catalogue.snapshot import MAX_K
from artistsim.catalogue.store import CatalogueError
from artistsim.catalogue.ui import mount_ui
from artistsim.data.layout import DataError
from artistsim.search._faiss import faiss_module

__all__ = ["MAX_BODY_BYTES", "BadInput", "app_from_settings", "create_app"]

_INPUT_DOC = {
    "requestBody": {"content": {
        "application/json": {"schema": {"type": "object", "properties": {
            "features": {"type": "array", "description": "(512, T) frames, 1 <= T <= 81"},
            "embedding": {"type": "array", "description": "a (d,) catalogue-space vector"},
            "trackid": {"type": "integer"}, "artist": {"type": "integer"},
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K}}}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "audio": {"type": "string", "format": "binary"}, "trackid": {"type": "integer"},
            "artist": {"type": "integer"}, "k": {"type": "integer"}}}}}}}


def _vector(cat: LiveCatalogue, kind: str, value: Any) -> np.ndarray:
    """One catalogue-space vector (1, d) from the input (embedding it when needed)."""
    if kind == "embedding":
        try:
            v = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise BadInput(422, "embedding must be an array of numbers") from None
        if v.shape != (cat.snapshot.dim,):
            raise BadInput(422, f"embedding must have shape ({cat.snapshot.dim},), got {v.shape}")
        finite_bounded(v, "embedding")
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            raise BadInput(422, "embedding is the zero vector")
        return (v / norm).astype(np.float32)[None, :]
    if kind == "audio":
        suffix, data = value
        try:
            x = featurize_upload(data, suffix, cat.frontend, "audio")
        except DataError as exc:  # bad audio: named as the field, not the server's temporary file
            raise BadInput(422, str(exc)) from None
    else:
        x = check_features(value, "features", cat.frontend.dim)
    finite_bounded(x, "features")
    vec = cat.embed([x])
    if not np.isfinite(vec).all():
        raise BadInput(422, "features give a non-finite embedding")
    return vec


def _json(body: dict[str, Any]) -> Response:
    """A JSON response of plain Python values by orjson, skipping FastAPI's generic encoder."""
    return Response(orjson.dumps(body), media_type="application/json")


def create_app(cat: LiveCatalogue, max_body: int = MAX_BODY_BYTES, search_threads: int | None = None,
               threads: int = 1, auth: ApiKeys | None = None) -> FastAPI:
    """The FastAPI application serving `cat` (`search_threads`: see `SimilarBatcher`; `threads`: `serve`).

    `auth`: who may call the mutating endpoints (`artistsim.catalogue.auth`; None: nobody).
    """
    app = FastAPI(title="artistsim catalogue", description="Which tracks are by the same artist as this one?")
    app.state.auth = auth if auth is not None else ApiKeys()
    app.add_middleware(HotPath, batcher=SimilarBatcher(cat, search_threads))
    app.add_middleware(Observe, routes=lambda: app.routes)  # added last: the outermost, sees every answer

    @app.exception_handler(BadInput)
    async def _bad(_: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_line(exc)}, status_code=422)

    faiss = faiss_module()
    configured = threading.local()

    def guard(fn: Any, *args: Any) -> Any:
        """Map the library's errors on user input to 4xx answers (after taking in others' adds)."""
        if faiss is not None and getattr(configured, "omp", None) != threads:
            # OpenMP's thread count is a per-thread setting: serve()'s call on the main thread
            # does not reach the thread pool's workers, which would otherwise use every core
            faiss.omp_set_num_threads(threads)
            configured.omp = threads
        cat.maybe_refresh()
        try:
            return fn(*args)
        except BadInput:
            raise
        except NotFound as exc:
            raise BadInput(404, str(exc)) from None
        except Unavailable as exc:
            raise BadInput(exc.status, str(exc)) from None
        except CatalogueError as exc:
            raise BadInput(409, str(exc)) from None
        except (DataError, ValueError) as exc:
            raise BadInput(422, str(exc)) from None

    @app.get("/health")
    def health() -> dict[str, Any]:
        cat.maybe_refresh()
        snap = cat.snapshot
        return {"status": "ok", "generation": snap.generation, "tracks": snap.size}

    @app.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics: requests and latency per route (every worker's), the catalogue's size."""
        snap = cat.snapshot
        gauges = [GaugeMetricFamily("artistsim_catalogue_tracks", "Tracks in the catalogue", value=snap.size),
                  GaugeMetricFamily("artistsim_catalogue_generation", "The catalogue's generation",
                                    value=snap.generation)]
        return Response(metrics_text(gauges), media_type=CONTENT_TYPE_LATEST)

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        cat.maybe_refresh()
        return cat.stats()

    @app.get("/tracks/{trackid}/similar")
    def similar_track(trackid: str, k: str = "100") -> Response:
        tid = id_field(trackid, "trackid")
        kk = int_field(k, "k")

        def run() -> dict[str, Any]:
            check_k(kk)
            snap = cat.snapshot
            try:
                vec, rows = cat.vectors_of(np.array([tid]), snap)
            except NotFound:  # added a moment ago through another worker or writer? Look now.
                cat.maybe_refresh(interval=0.0)
                snap = cat.snapshot
                vec, rows = cat.vectors_of(np.array([tid]), snap)
            return {"trackid": tid, "k": kk, "neighbours": neighbours_list(cat.similar(vec, kk, rows, snap))}

        return _json(guard(run))

    @app.post("/similar", openapi_extra=_INPUT_DOC)
    async def similar(request: Request) -> Response:
        fields, (kind, value) = await read_input(request, max_body)
        kk = int_field(fields.get("k"), "k", 100)

        def run() -> dict[str, Any]:
            check_k(kk)
            return {"k": kk, "neighbours": neighbours_list(cat.similar(_vector(cat, kind, value), kk))}

        return _json(await run_in_threadpool(guard, run))

    @app.post("/identify", openapi_extra=_INPUT_DOC)
    async def identify(request: Request) -> dict[str, Any]:
        fields, (kind, value) = await read_input(request, max_body)
        kk = int_field(fields.get("k"), "k", 5)

        def run() -> dict[str, Any]:
            if not 1 <= kk <= MAX_K:
                raise BadInput(422, f"k must be in 1..{MAX_K}, got {kk}")
            out = cat.identify(_vector(cat, kind, value), kk)
            res = out["result"]
            return {"known": bool(res.known[0]), "artist": int(res.artists[0, 0]) if res.known[0] else None,
                    "threshold": out["threshold"], "calibrated": out["calibrated"],
                    "candidates": [{"artist": int(a), "score": float(s)}
                                   for a, s in zip(res.artists[0], res.scores[0]) if math.isfinite(s)]}

        return await run_in_threadpool(guard, run)

    @app.post("/tracks", status_code=201, openapi_extra=_INPUT_DOC)
    async def add_track(request: Request, who: str = Depends(require_writer)) -> dict[str, Any]:
        fields, (kind, value) = await read_input(request, max_body)
        if fields.get("trackid") is None:
            raise BadInput(422, "trackid is required to add a track")
        tid = id_field(fields["trackid"], "trackid")
        artist = None if fields.get("artist") is None else id_field(fields["artist"], "artist")

        def run() -> dict[str, Any]:
            vec = _vector(cat, kind, value)
            generation = cat.add(vec, np.array([tid]), None if artist is None else np.array([artist]))
            return {"trackid": tid, "generation": generation, "tracks": cat.snapshot.size, "added_by": who}

        return await run_in_threadpool(guard, run)

    mount_ui(app, cat)  # the curator pages under /ui (artistsim.catalogue.ui)
    return app


def app_from_settings(settings: dict[str, Any]) -> FastAPI:
    """Open the catalogue and make the app, with this process's thread settings."""
    import torch

    torch.set_num_threads(settings["threads"])
    faiss = faiss_module()
    if faiss is not None:
        faiss.omp_set_num_threads(settings["threads"])  # this thread's (opening the index); pool threads set their own
    cat = LiveCatalogue(settings["root"], settings["device"])
    return create_app(cat, settings["max_body"], settings["search_threads"], settings["threads"], settings.get("auth"))
