"""A request's input, read and checked before any work: the service's first line of defence.

Why by hand rather than by pydantic models: one endpoint takes either JSON or an
uploaded file, and an oversized body must be refused while it is read (413), before it
is held in memory. Every fault is a `BadInput`: its status (4xx) and one line naming the
field and the problem, never the client's data (ids, file names, values) or a path of
the server's.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError

from artistsim.data.arrays import MAX_ABS, check_values
from artistsim.data.ids import ID_LIMIT, TOO_LARGE, check_id
from artistsim.data.layout import DataError

MAX_BODY_BYTES = 32 * 2**20  # a 81-frame track as JSON is ~0.8 MB; audio files a few MB
MAX_ABS_VALUE = MAX_ABS  # features and embeddings beyond this are refused (`finite_bounded`)
MAX_LENIENT_BRACKETS = 600  # a features array has 513; the interpreter's recursion limit is 1000
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")


class BadInput(Exception):
    """A request the service refuses: `status` (4xx) and the one line of its `detail`."""

    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail


async def read_body(request: Request, limit: int) -> bytes:
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


def int_field(value: Any, name: str, default: int | None = None) -> int:
    """An integer request field (k), absent -> `default`; 422 naming the field for anything else
    (an empty `k=` included: it is not an absent k)."""
    if value is None and default is not None:
        return default
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(422, f"{name} must be an integer")
    return value


def id_field(value: Any, name: str) -> int:
    """A trackid / artist id through the one id check (`data.ids`): 422 naming the field.

    orjson reads an integer beyond 64 bits as a float: such a float is named as too large.
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) >= ID_LIMIT:
        raise BadInput(422, f"{name} {TOO_LARGE}")
    try:
        return check_id(value, name)
    except DataError as exc:
        raise BadInput(422, str(exc)) from None


async def read_input(request: Request, limit: int) -> tuple[dict[str, Any], Any]:
    """(fields, input): ("features", (512, T) array), ("embedding", (d,)) or ("audio", (suffix, bytes))."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        await read_body(request, limit)  # enforces the limit; starlette re-reads the cached body
        form = await request.form(max_part_size=limit)
        upload = form.get("audio")
        if upload is None or isinstance(upload, str):
            raise BadInput(422, "multipart request without an 'audio' file field")
        fields = {k: v for k, v in form.items() if k != "audio"}
        return fields, ("audio", (upload_suffix(upload.filename), await upload.read()))
    data = parse_json(await read_body(request, limit))
    if not isinstance(data, dict):
        raise BadInput(422, "body must be a JSON object with 'features' or 'embedding' (or a multipart 'audio' file)")
    if "features" in data:
        return data, ("features", data["features"])
    if "embedding" in data:
        return data, ("embedding", data["embedding"])
    raise BadInput(422, "body needs 'features' (512 x T array) or 'embedding' (or a multipart 'audio' file)")


def upload_suffix(filename: str | None) -> str:
    """The upload's extension for its temporary file (a hint to the decoders), or "".

    Only a short alphanumeric suffix is kept: the client's name never reaches the file
    system (a 300-character suffix cannot be a file name; `../` has no business there).
    """
    suffix = Path(filename or "").suffix
    return suffix if _SUFFIX.fullmatch(suffix) else ""


def parse_json(raw: bytes) -> Any:
    """The JSON body by orjson (depth-limited); 400 naming the problem for anything else.

    Python's json reads what orjson refuses only for one purpose: NaN / Infinity
    literals (what `json.dumps` writes) parse, so that the features check can name them.
    It recurses without a depth limit of its own, so it is tried only on a body whose
    count of brackets (an upper bound of its depth) is far below the interpreter's.
    """
    if not raw:
        raise BadInput(400, "empty body: send a JSON object or a multipart 'audio' file")
    try:
        return orjson.loads(raw)  # several times faster on a 512 x 81 features array
    except orjson.JSONDecodeError as exc:
        error = str(exc)
    if raw.count(b"[") + raw.count(b"{") <= MAX_LENIENT_BRACKETS:
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    raise BadInput(400, f"body is not valid JSON ({error})")


def finite_bounded(x: np.ndarray, name: str) -> np.ndarray:
    """`x` when every value is finite and |value| <= MAX_ABS_VALUE; 422 naming `name` otherwise.

    Why a magnitude bound: values near float32's limit overflow when squared (a norm of
    inf, a vector "normalised" to zeros or NaN scores), and no feature or embedding in
    this domain comes near 1e6. The check is the data layer's (`data.arrays.check_values`).
    """
    try:
        return check_values(x, name, MAX_ABS_VALUE)
    except DataError as exc:
        raise BadInput(422, str(exc)) from None


def validation_line(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors as the one line every 4xx body holds (first error named)."""
    errors = exc.errors() or [{"loc": (), "msg": "invalid request"}]
    first = errors[0]
    field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header")) or "request"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{field}: {first.get('msg', 'invalid')}{more}"
