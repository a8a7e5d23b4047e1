"""The catalogue as an HTTP JSON API (FastAPI on uvicorn; OpenAPI docs at /docs).

    GET  /health                      liveness, generation and size
    GET  /stats                       the catalogue's figures and settings
    GET  /tracks/{trackid}/similar?k= the k tracks nearest to a catalogued track
    POST /similar                     same for new input: JSON {"features": [[...]] (512 x T)}
                                      or {"embedding": [...]}, or a multipart "audio" file
    POST /identify                    which artists made it (same inputs), "known" or not
    POST /tracks                      add a track: JSON {"trackid", "artist"?, "features"}
                                      (or "embedding"), or multipart "audio" + "trackid"

Why the bodies are read by hand rather than by a pydantic model: one endpoint takes
either JSON or an uploaded file, and an oversized upload must be refused while reading
(413), before it is held in memory. Every input error is a 4xx whose `detail` names the
field and the problem; the server never answers a bad input with a 500.

Concurrency: handlers run in a thread pool; searches read an immutable snapshot, adds
swap a new one in under a lock (`artistsim.catalogue.live`). The hot request, a plain
`GET /tracks/{id}/similar`, skips FastAPI's machinery and has its searches batched
(`artistsim.catalogue.hotpath`); every other case of it still reaches the route here. Tracks added by other
writers (`artistsim index add` while the server runs) are taken in within a second: a
request looks at the manifest's modification time at most once a second.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from artistsim.catalogue.auth import ApiKeys, require_writer
from artistsim.catalogue.build import check_features
from artistsim.catalogue.hotpath import HotPath, SimilarBatcher, neighbours_list
from artistsim.catalogue.live import LiveCatalogue, NotFound, Unavailable, check_k, featurize_audio
from artistsim.catalogue.snapshot import MAX_K
from artistsim.catalogue.store import CatalogueError
from artistsim.catalogue.ui import mount_ui
from artistsim.data.layout import DataError
from artistsim.search._faiss import faiss_module

MAX_BODY_BYTES = 32 * 2**20  # a 81-frame track as JSON is ~0.8 MB; audio files a few MB
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


class BadInput(Exception):
    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadInput(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInput(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # starlette's form() and json() read this cache instead of the spent stream
    return body


def _int(value: Any, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise BadInput(422, f"{name} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadInput(422, f"{name} must be an integer, got {value!r}") from None


async def read_input(request: Request, limit: int) -> tuple[dict[str, Any], Any]:
    """(fields, input): ("features", (512, T) array), ("embedding", (d,)) or ("audio", (suffix, bytes))."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        await _body(request, limit)  # enforces the limit; starlette re-reads the cached body
        form = await request.form()
        upload = form.get("audio")
        if upload is None or isinstance(upload, str):
            raise BadInput(422, "multipart request without an 'audio' file field")
        fields = {k: v for k, v in form.items() if k != "audio"}
        return fields, ("audio", (Path(upload.filename or "upload").suffix, await upload.read()))
    raw = await _body(request, limit)
    try:
        data = orjson.loads(raw) if raw else None  # several times faster on a 512 x 81 features array
    except orjson.JSONDecodeError:
        data = _loads_lenient(raw)
    if not isinstance(data, dict):
        raise BadInput(422, "body must be a JSON object with 'features' or 'embedding' (or a multipart 'audio' file)")
    if "features" in data:
        return data, ("features", data["features"])
    if "embedding" in data:
        return data, ("embedding", data["embedding"])
    raise BadInput(422, "body needs 'features' (512 x T array) or 'embedding' (or a multipart 'audio' file)")


def _loads_lenient(raw: bytes) -> Any:
    """Python's json reading of what orjson refused: NaN / Infinity literals pass, so that the
    features check can name them; anything else is answered with 400 naming the problem."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(400, f"body is not valid JSON ({exc})") from None


def _vector(cat: LiveCatalogue, kind: str, value: Any) -> np.ndarray:
    """One catalogue-space vector (1, d) from the input (embedding it when needed)."""
    if kind == "embedding":
        try:
            v = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise BadInput(422, "embedding must be an array of numbers") from None
        if v.shape != (cat.snapshot.dim,):
            raise BadInput(422, f"embedding must have shape ({cat.snapshot.dim},), got {v.shape}")
        if not np.isfinite(v).all():
            raise BadInput(422, "embedding holds NaN or infinite values")
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            raise BadInput(422, "embedding is the zero vector")
        return (v / norm)[None, :]
    if kind == "audio":  # the decoders read files: the upload lives in a temporary one meanwhile
        suffix, data = value
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            x = featurize_audio(tmp.name, cat.frontend)
    else:
        x = check_features(value, "features", cat.frontend.dim)
    return cat.embed([x])


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

    @app.exception_handler(BadInput)
    async def _bad(_: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

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

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        cat.maybe_refresh()
        return cat.stats()

    @app.get("/tracks/{trackid}/similar")
    def similar_track(trackid: str, k: str = "100") -> Response:
        tid = _int(trackid, "trackid")
        kk = _int(k, "k")

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
        kk = _int(fields.get("k"), "k", 100)

        def run() -> dict[str, Any]:
            check_k(kk)
            return {"k": kk, "neighbours": neighbours_list(cat.similar(_vector(cat, kind, value), kk))}

        return _json(await run_in_threadpool(guard, run))

    @app.post("/identify", openapi_extra=_INPUT_DOC)
    async def identify(request: Request) -> dict[str, Any]:
        fields, (kind, value) = await read_input(request, max_body)
        kk = _int(fields.get("k"), "k", 5)

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
        tid = _int(fields.get("trackid"), "trackid")
        if tid is None:
            raise BadInput(422, "trackid is required to add a track")
        artist = _int(fields.get("artist"), "artist")

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
