"""Watching the service: request ids, access and error lines, and Prometheus metrics.

`Observe` is the outermost ASGI middleware, so it sees every answer, the hot path's
(`catalogue.hotpath`) included, for a few microseconds each:
- a request id: the client's `X-Request-ID` when it is a short token, else a new one
  (this process's random prefix and a counter: unique across workers, no syscall);
  echoed in the response's `X-Request-ID` and written in every log line of the request;
- a log line per request on stderr with `serve --access-log`, and always one for a 5xx,
  whose traceback follows under the same id (an unexpected error is answered with 500
  `{"detail": "internal error (request id ...)"}` rather than a dropped connection);
- `artistsim_http_requests_total{route, method, status}` (status: "2xx" .. "5xx") and
  `artistsim_http_request_duration_seconds{route, method}`, where route is the route's
  template (`/tracks/{trackid}/similar`), never the raw path: a path a client makes up
  must not make a new time series. Paths no route matches count as "unmatched"; a
  request whose client left before any answer counts as status 499.

Several workers (`serve --workers N`): prometheus-client's multiprocess mode. The
supervisor makes a private temporary directory and names it in PROMETHEUS_MULTIPROC_DIR
before the workers start (the variable is read when prometheus_client is imported);
each worker writes its counts there, and a scrape of /metrics on any worker sums all of
them (counts of a worker that was restarted are kept). One process: plain in-memory metrics.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ROUTE_KEY = "artistsim.route"  # scope key: the route template of an answer given outside the router
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")
CLIENT_GONE = 499  # no response sent: the client went away first (nginx's convention)
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

log = logging.getLogger("artistsim.serve")
disable_created_metrics()  # no `_created` series: a scrape's size halves, nothing a dashboard reads is lost
REGISTRY = CollectorRegistry()
REQUESTS = Counter("artistsim_http_requests", "HTTP requests answered, by route template, method and status class",
                   ["route", "method", "status"], registry=REGISTRY)
LATENCY = Histogram("artistsim_http_request_duration_seconds", "Time from a request's start to its response's end",
                    ["route", "method"], buckets=_BUCKETS, registry=REGISTRY)
DROPPED = Counter("artistsim_http_connections_dropped", "Connections the server closed: header_timeout, "
                  "idle_timeout (a stalled body) or headers_too_large", ["reason"], registry=REGISTRY)
_ids = itertools.count(1)
_prefix = secrets.token_hex(4)


def count_dropped(reason: str) -> None:
    DROPPED.labels(reason).inc()


def configure_logging(access_log: bool) -> None:
    """Log lines of requests (INFO, with `access_log`) and errors (always) on stderr, one per event."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("artistsim serve: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO if access_log else logging.WARNING)


def metrics_text(extra: Iterable[GaugeMetricFamily] = ()) -> bytes:
    """The Prometheus text exposition: this process's metrics, or every worker's in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    gauges = list(extra)
    if gauges:
        registry = CollectorRegistry()
        registry.register(_Fixed(gauges))
        body += generate_latest(registry)
    return body


class _Fixed:
    """A collector of metric families computed at scrape time (the catalogue's size, generation)."""

    def __init__(self, families: list[GaugeMetricFamily]):
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The client's X-Request-ID when it is a short token, else a new id."""
    for name, value in headers:
        if name == b"x-request-id":
            if _CLIENT_ID.fullmatch(value):
                return value
            break
    return f"{_prefix}-{next(_ids)}".encode()


class Observe:
    """ASGI middleware: request ids, log lines and metrics for every HTTP request."""

    def __init__(self, app: Callable[..., Awaitable[None]], routes: Callable[[], Iterable[Any]]):
        self.app = app
        self.routes = routes
        self._templates: dict[Any, str] = {}
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def template(self, scope: dict[str, Any]) -> str:
        """The route template that answered (set by the router, or by the hot path under ROUTE_KEY)."""
        route = scope.get(ROUTE_KEY)
        if route is not None:
            return route
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        if endpoint not in self._templates:  # routes added after the app was made: look again
            self._templates = {getattr(r, "endpoint", None): getattr(r, "path", UNMATCHED) for r in self.routes()}
        return self._templates.get(endpoint, UNMATCHED)

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status // 100)
        children = self._children.get(key)
        if children is None:  # label lookups once per (route, method, class), not per request
            children = (REQUESTS.labels(route, method, f"{status // 100}xx"), LATENCY.labels(route, method))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = request_id(scope.get("headers", ()))
        scope.setdefault("state", {})["request_id"] = rid.decode()
        status, failed = 0, False

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), (b"x-request-id", rid)]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            failed = True
            log.error("%s %s %s 500: unexpected error", rid.decode(), _printable(scope["method"]),
                      _printable(scope["path"]), exc_info=True)
            if not status:  # nothing sent yet: still one line of JSON, naming the id to look up
                body = orjson.dumps({"detail": f"internal error (request id {rid.decode()})"})
                await send_with_id({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", b"application/json"),
                                                (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
            status = 500
        finally:
            seconds = time.perf_counter() - start
            method = scope["method"] if scope["method"] in _METHODS else "other"
            status = status or CLIENT_GONE
            self.record(self.template(scope), method, status, seconds)
            if not failed and (status >= 500 or log.isEnabledFor(logging.INFO)):
                writer = scope.get("state", {}).get("writer")
                log.log(logging.ERROR if status >= 500 else logging.INFO, "%s %s %s %d %.1fms%s", rid.decode(),
                        method, _printable(scope["path"]), status, seconds * 1e3, f" by {writer}" if writer else "")


def _printable(text: str) -> str:
    """At most 200 characters of a client's text, anything but visible ASCII as '?': one log line each."""
    return _UNPRINTABLE.sub("?", text[:200])
