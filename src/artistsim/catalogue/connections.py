"""The server's connections: deadlines and size limits that uvicorn does not set itself.

Why: uvicorn closes an idle keep-alive connection (`timeout_keep_alive`), but it arms
that timer only after a response. A client that connects and sends nothing, or sends a
request's headers one byte at a time (slowloris), holds its socket and a slot of the
event loop for as long as it likes: measured, 16 idle sockets held for 30 s. And
httptools (llhttp) sets no bound on the size of the headers it buffers.

`guarded_protocol` makes uvicorn's httptools protocol with three more rules:
- the headers of a request must arrive within `header_timeout` seconds of its start
  (the connection's opening, or the request's first byte on a kept-alive connection);
- while a request's body arrives, a gap of more than `idle_timeout` seconds between two
  pieces ends the connection (a slow but steady upload is not cut off);
- headers beyond `max_header_bytes` are answered with 431 and the connection closed.
Idle keep-alive connections close after `idle_timeout` (uvicorn's own timer). Each
drop is counted in /metrics (`artistsim_http_connections_dropped_total{reason}`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from artistsim.catalogue.observe import count_dropped

HEADER_TIMEOUT = 5.0
IDLE_TIMEOUT = 5.0
MAX_HEADER_BYTES = 64 * 1024
_TOO_LARGE_BODY = b'{"detail":"request headers exceed the size limit"}'
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
              b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY))


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a body idle timeout and a header size cap."""

    header_timeout = HEADER_TIMEOUT
    idle_timeout = IDLE_TIMEOUT
    max_header_bytes = MAX_HEADER_BYTES

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = False
        self._in_body = False
        self._header_bytes = 0
        super().connection_made(transport)
        self._await_headers()

    def _await_headers(self) -> None:
        if not self._awaiting_headers:
            self._awaiting_headers, self._header_bytes = True, 0
            self._arm(self.header_timeout, "header_timeout")

    def _arm(self, delay: float, reason: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, self._expire, reason)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, reason: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if reason == "idle_timeout" and self.flow.read_paused:  # the app is behind, not the client
            self._arm(self.idle_timeout, reason)
            return
        count_dropped(reason)
        self.transport.close()

    # the parser's callbacks and the transport's events --------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._in_body:
            self._arm(self.idle_timeout, "idle_timeout")
        if self._awaiting_headers:  # count the header bytes before the parser takes them in
            end = data.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end + 4
            if self._header_bytes > self.max_header_bytes:
                self._disarm()
                count_dropped("headers_too_large")
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._awaiting_headers, self._in_body = False, True
        self._arm(self.idle_timeout, "idle_timeout")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def guarded_protocol(header_timeout: float = HEADER_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                     max_header_bytes: int = MAX_HEADER_BYTES) -> type[GuardedHttpProtocol]:
    """The protocol class for `uvicorn.Config(http=...)` with these limits."""
    attrs: dict[str, Any] = {"header_timeout": header_timeout, "idle_timeout": idle_timeout,
                             "max_header_bytes": max_header_bytes}
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), attrs)
