"""Who may decide on the curator pages: the service's API keys, carried by a header or a cookie.

Why a cookie: a browser cannot add an `Authorization` header to a form post. The login
form checks the key against the service's keys (`artistsim.catalogue.auth`, constant
time) and stores it in an HttpOnly cookie (scripts cannot read it), SameSite=Strict (no
other site's page can make the browser send it), limited to /ui. Form posts whose key
came from the cookie must also come from this server's own pages: their Origin (or,
without one, Referer) must name this host, which closes cross-site request forgery for
browsers that predate SameSite. A key sent in a header needs no such check: no browser
adds it on another site's behalf.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from artistsim.catalogue.auth import ApiKeys, optional_writer, presented_keys

COOKIE = "artistsim_ui_key"
COOKIE_PATH = "/ui"


def _auth(request: Request) -> ApiKeys:
    auth = getattr(request.app.state, "auth", None)
    return auth if isinstance(auth, ApiKeys) else ApiKeys()


def cookie_writer(request: Request) -> str | None:
    """The key name of the login cookie, when it holds a configured key."""
    key = request.cookies.get(COOKIE)
    return _auth(request).name_of(key) if key else None


def writer(request: Request) -> str | None:
    """Who the request may decide as (header key, keyless loopback writing, or the cookie), else None."""
    return optional_writer(request) or cookie_writer(request)


def key_name(request: Request, key: str) -> str | None:
    """The name of a key typed into the login form (None: no such key)."""
    return _auth(request).name_of(key.strip())


def writes_enabled(request: Request) -> bool:
    return _auth(request).writes_enabled


def same_origin(request: Request) -> bool:
    """True when the request's Origin (or Referer) is this server (scheme, host and port)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme == request.url.scheme and parts.netloc == request.headers.get("host", "")


def require_decider(request: Request) -> str:
    """The name of who decides on a form post: 401 without a key, 403 from another origin or a bad key."""
    if presented_keys(request):  # a client sending its key itself: no browser forges that
        name = optional_writer(request)
        if name is None:
            raise HTTPException(403, "the API key sent is not valid for writing")
        return name
    name = writer(request)
    if name is None:
        if not writes_enabled(request):
            raise HTTPException(403, "decisions are disabled: the server was started without an API key")
        raise HTTPException(401, "log in with the service's API key to record decisions")
    if not same_origin(request):
        raise HTTPException(403, "form posts are accepted from this server's own pages only")
    return name
