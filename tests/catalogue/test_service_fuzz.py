"""Fuzz: every HTTP endpoint of the service, driven with generated requests.

Requests are generated from the app's own OpenAPI schema (so an endpoint added later is
fuzzed without touching this file): each path parameter, query parameter and body is
drawn from hostile values (ids beyond 64 bits, negative or fractional ids, text, NaN,
3e38, deep nesting, wrong shapes, raw bytes, multipart uploads with long file names),
mixed with valid ones so that the requests also reach past the first check. Writers'
keys are sent right, wrong or not at all. After each request: no 5xx, a 4xx body holds
one line of `detail`, and /health still answers 200.

Bounded: a fixed number of examples, derandomized (the same requests on every run), in
process (starlette's TestClient), a few seconds on a laptop.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from artistsim.catalogue.auth import ApiKeys  # noqa: E402
from artistsim.catalogue.live import LiveCatalogue  # noqa: E402
from artistsim.catalogue.service import create_app  # noqa: E402
from catalogue_cases import WRITER_KEY, make_catalogue, write_run  # noqa: E402
from conftest import write_tiny_dataset  # noqa: E402

EXAMPLES = 300
KNOWN_IDS = [1003, 1006, 1009, 1012]

huge_ints = st.integers(-(2**70), 2**70)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), huge_ints, st.integers(-3, 3),
                    st.sampled_from([3e38, -3e38, 1e6, 1e7, 1e-45, 0.0]))
ids = st.one_of(st.sampled_from(KNOWN_IDS + [0, -1, 2**63 - 1, 2**63, 10**20, 10**30]), huge_ints,
                st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=24),
                st.lists(st.integers(), max_size=2))
ks = st.one_of(st.integers(-5, 1005), huge_ints, st.sampled_from(["", "5", "x", "1e3", " 7", "+3"]), st.floats(),
               st.none(), st.booleans())
json_values = st.recursive(st.none() | st.booleans() | numbers | st.text(max_size=12),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4),
                           max_leaves=16)


@st.composite
def feature_arrays(draw: Any) -> Any:
    """Mostly (512, T) arrays (T around the 1..81 limits), scaled to sane or absurd sizes; else junk."""
    kind = draw(st.sampled_from(["frames", "frames", "constant", "junk"]))
    if kind == "junk":
        return draw(json_values)
    rows = draw(st.sampled_from([512, 512, 511, 1]))
    frames = draw(st.sampled_from([0, 1, 30, 81, 82]))
    if kind == "constant":
        return [[draw(numbers)] * frames for _ in range(rows)]
    seed, scale = draw(st.integers(0, 2**16)), draw(st.sampled_from([1.0, 1.0, 1e5, 1e7, 3e38]))
    with np.errstate(over="ignore"):
        return (np.random.default_rng(seed).normal(size=(rows, frames)) * scale).astype(np.float64).tolist()


embeddings = st.one_of(st.lists(numbers, max_size=20), st.builds(lambda v, n: [v] * n, numbers, st.integers(0, 20)),
                       st.lists(st.floats(-1, 1), min_size=16, max_size=16), json_values)
fields = st.fixed_dictionaries({}, optional={"features": feature_arrays(), "embedding": embeddings, "trackid": ids,
                                             "artist": ids, "k": ks, "rerank": json_values})
raw_bodies = st.one_of(st.binary(max_size=300), st.sampled_from([
    b"", b"[" * 100_000 + b"]" * 100_000, b'{"features": [NaN, Infinity]}', b'{"embedding": ' + b"[" * 700 + b"]" * 700 + b"}",
    b'{"trackid": 1e999}', b'{"k": 99999999999999999999999999}', b"\xff\xfe{}", b"null", b"[]"]))
filenames = st.one_of(st.text(max_size=400), st.sampled_from(["a.wav", "../../etc/passwd", "a." + "x" * 300, "",
                                                              "x" * 5000, "a.wav\x00.txt", "con.wav"]))
multipart_fields = st.dictionaries(st.sampled_from(["trackid", "artist", "k", "rerank", "audio", "x"]),
                                   st.text(max_size=30), max_size=4)


@st.composite
def bodies(draw: Any) -> dict[str, Any]:
    """httpx keywords of a body: JSON (mostly the endpoints' fields, else any value), raw bytes, or multipart."""
    kind = draw(st.sampled_from(["valid", "fields", "fields", "json", "raw", "multipart"]))
    if kind == "valid":  # a request that should succeed, with one field perhaps spoiled below
        seed = draw(st.integers(0, 2**16))
        value = {"features": np.random.default_rng(seed).normal(size=(512, 30)).round(3).tolist(),
                 "trackid": draw(st.integers(0, 2**63 - 1)), "k": draw(st.integers(1, 50)),
                 **(draw(fields) if draw(st.booleans()) else {})}
        return {"content": json.dumps(value).encode(), "headers": {"content-type": "application/json"}}
    if kind in ("fields", "json"):  # Python's json writes NaN / Infinity literals, as clients in Python do
        value = draw(fields) if kind == "fields" else draw(json_values)
        return {"content": json.dumps(value).encode(), "headers": {"content-type": "application/json"}}
    if kind == "raw":
        ctype = draw(st.sampled_from(["application/json", "multipart/form-data", "multipart/form-data; boundary=x",
                                      "text/plain", "", "application/json; charset=latin-1"]))
        return {"content": draw(raw_bodies), "headers": {"content-type": ctype}}
    files = {"audio": (draw(filenames), draw(st.binary(max_size=400)), "audio/wav")} if draw(st.booleans()) else None
    return {"data": draw(multipart_fields), "files": files or {"other": ("f", b"x", "text/plain")}}


auth_headers = st.sampled_from([{}, {"Authorization": f"Bearer {WRITER_KEY}"}, {"X-API-Key": WRITER_KEY},
                                {"Authorization": f"bearer  {WRITER_KEY} "}, {"X-API-Key": WRITER_KEY},
                                {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"},
                                {"X-API-Key": ""}, {"Authorization": "Bearer " + "k" * 3000}])
scalars = st.one_of(st.sampled_from(KNOWN_IDS), ids, ks, st.text(max_size=20))


def operations(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path template, operation) of every endpoint in the app's OpenAPI schema."""
    return [(method.upper(), path, op) for path, item in app.openapi()["paths"].items()
            for method, op in item.items() if method in ("get", "post", "put", "patch", "delete")]


@st.composite
def requests(draw: Any, ops: list[tuple[str, str, dict[str, Any]]]) -> tuple[str, str, dict[str, Any]]:
    """One request to one of `ops`: path and query parameters, headers and (for writes) a body."""
    method, template, op = draw(st.sampled_from(ops))
    path = template
    for name in re.findall(r"{(\w+)}", template):
        path = path.replace("{" + name + "}", quote(str(draw(scalars)), safe=""), 1)
    query = {}
    for param in op.get("parameters", []):
        if param.get("in") == "query" and draw(st.booleans()):
            value = draw(scalars | json_values)
            query[param["name"]] = "" if value is None else str(value)
    kw: dict[str, Any] = {"params": query, "headers": dict(draw(auth_headers))}
    if method != "GET":
        body = draw(bodies())
        kw["headers"].update(body.pop("headers", {}))
        kw.update(body)
    return method, path, kw


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Any:
    root = tmp_path_factory.mktemp("fuzz")
    data = write_tiny_dataset(root / "data", n_train_artists=5, tracks=4)
    cat = make_catalogue(root / "cat", data, write_run(root / "run"))
    shutil.copytree(cat, root / "writable")
    return create_app(LiveCatalogue(Path(root / "writable")), max_body=2**20, auth=ApiKeys({"fuzz": WRITER_KEY}))


def test_every_endpoint_is_fuzzed(app):
    ops = {(m, p) for m, p, _ in operations(app)}
    assert {("GET", "/health"), ("GET", "/tracks/{trackid}/similar"), ("POST", "/similar"), ("POST", "/identify"),
            ("POST", "/tracks"), ("GET", "/metrics"), ("GET", "/stats")} <= ops


def test_generated_requests_never_get_a_5xx(app):
    ops = operations(app)
    client = TestClient(app, raise_server_exceptions=False)
    seen: set[tuple[str, str]] = set()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(request=requests(ops))
    def check(request: tuple[str, str, dict[str, Any]]) -> None:
        method, path, kw = request
        response = client.request(method, path, **kw)
        assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
        if 400 <= response.status_code < 500 and response.headers.get("content-type", "").startswith("application/json"):
            detail = response.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail, (method, path, detail)
        assert client.get("/health").status_code == 200
        seen.add((method, path.split("/")[1] if path.count("/") > 1 else path))

    with client:
        check()
    assert len(seen) >= 5  # the draws reached every kind of endpoint, not one over and over
