"""Turning a page's values into HTML: the package's Jinja2 templates, and errors as pages.

Why server-rendered: curators open a page, read it, press a button; every page is one
request whose answer is complete HTML (no client build, nothing fetched from elsewhere:
the templates and the one script and style sheet ship inside the package). Templates
escape every value (autoescape), so names and paths from the catalogue's tables can
never inject markup.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from artistsim.catalogue.live import NotFound, Unavailable
from artistsim.catalogue.names import Names
from artistsim.catalogue.store import UNKNOWN_ARTIST, CatalogueError
from artistsim.data.layout import DataError
from artistsim.catalogue.ui.access import writer, writes_enabled

_ENV = Environment(loader=PackageLoader("artistsim.catalogue.ui", "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


class PageError(Exception):
    """A request the pages answer with an error page (`status`: 4xx), the message saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def artist_label(names: Names, artist: int) -> str:
    """How a page names an artist: its name and id, or its id, or "unknown"."""
    artist = int(artist)
    if artist == UNKNOWN_ARTIST:
        return "unknown artist"
    name = names.artist(artist)
    return f"{name} (#{artist})" if name else f"artist #{artist}"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """The rendered template, with who is logged in (for the header and the buttons)."""
    html = _ENV.get_template(template).render(
        writer=writer(request), writes=writes_enabled(request), here=str(request.url.path),
        query=str(request.url.query), duration_text=duration_text, **values)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return page(request, "error.html", status=status, status_code=status, message=message)


def status_of(exc: Exception) -> tuple[int, str] | None:
    """The 4xx status and message of an error caused by the request, None for anything else."""
    if isinstance(exc, PageError):
        return exc.status, exc.message
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    if isinstance(exc, NotFound):
        return 404, str(exc)
    if isinstance(exc, Unavailable):
        return exc.status, str(exc)
    if isinstance(exc, CatalogueError):
        return 409, str(exc)
    if isinstance(exc, (DataError, ValueError)):
        return 422, str(exc)
    return None


class PageRoute(APIRoute):
    """A route whose request errors are answered with an error page (4xx), never a 500."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                known = status_of(exc)
                if known is None:
                    raise
                return error_page(request, *known)

        return answer
