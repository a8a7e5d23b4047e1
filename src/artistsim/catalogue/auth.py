"""Who may write the catalogue over HTTP: API keys for the mutating endpoints.

Why keys at all: anyone who reaches the port of `artistsim serve` could otherwise add
tracks (or, with the curator pages, relabel them). Reads stay open; every mutating
endpoint depends on `require_writer`, which answers with the key's NAME, the "who" of
audit trails (never the key itself, which is never logged or echoed).

Where keys come from (`keys_from_options`, called once at startup):
- `serve --api-key-file FILE`: lines `NAME KEY`; `#` comments and blank lines skipped.
  A malformed line stops the server before it starts (one line naming the file and the
  line number, never quoting the key; the CLI exits 2).
- the environment variable `ARTISTSIM_API_KEY`: one key, named "env".

A request carries its key as `Authorization: Bearer KEY` or `X-API-Key: KEY`. Keys are
compared in constant time (`hmac.compare_digest`, against every configured key, so the
time taken does not tell which key came close).

With no key configured, writing is OFF (403 naming how to turn it on), unless
`serve --allow-writes` was given AND the server listens on a loopback address only: a
developer on their own machine may then write as "anonymous". `--allow-writes` on any
other address is a startup error: an open write port on a network is never implied.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path

from fastapi import HTTPException, Request

ENV_VAR = "ARTISTSIM_API_KEY"
ENV_NAME = "env"
ANONYMOUS = "anonymous"
WRITES_DISABLED = f"writes are disabled: start serve with --api-key-file or {ENV_VAR}"
_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
_KEY = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an HTTP header carries unchanged


class ApiKeys:
    """The configured keys (name -> key) and whether keyless loopback writing is allowed.

    Plain data (picklable): `serve --workers N` hands it to each spawned worker.
    """

    def __init__(self, keys: Mapping[str, str] | None = None, allow_anonymous: bool = False):
        self._keys = [(name, key.encode("ascii")) for name, key in (keys or {}).items()]
        self.allow_anonymous = allow_anonymous and not self._keys

    @property
    def configured(self) -> bool:
        """True when at least one key is configured (then every write needs one)."""
        return bool(self._keys)

    @property
    def writes_enabled(self) -> bool:
        return self.configured or self.allow_anonymous

    def __len__(self) -> int:
        return len(self._keys)

    def name_of(self, key: str) -> str | None:
        """The name of `key`, or None when it is no configured key.

        Every configured key is compared (no early exit), each in constant time.
        """
        try:
            given = key.encode("ascii")
        except (UnicodeEncodeError, AttributeError):
            return None
        found = None
        for name, secret in self._keys:
            if hmac.compare_digest(given, secret) and found is None:
                found = name
        return found


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) or "localhost"; any other name is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_key_file(path: str | Path) -> dict[str, str]:
    """name -> key from a key file; ValueError naming the file and line for a bad line."""
    keys: dict[str, str] = {}
    seen: set[str] = set()
    text = Path(path).read_text(encoding="utf-8", errors="replace")  # OSError names the file (exit 2)
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        where = f"{path}: line {number}"
        if len(fields) != 2:
            raise ValueError(f"{where}: expected 'NAME KEY' (two fields separated by spaces), "
                             f"found {len(fields)} field(s)")
        name, key = fields
        if not _NAME.fullmatch(name):
            raise ValueError(f"{where}: a key's name is 1-64 characters of letters, digits and _.@+-")
        if not _KEY.fullmatch(key):
            raise ValueError(f"{where}: a key holds only visible ASCII characters")
        if name in keys:
            raise ValueError(f"{where}: the name {name!r} is given twice")
        if key in seen:
            raise ValueError(f"{where}: this key is already given to another name")
        keys[name] = key
        seen.add(key)
    if not keys:
        raise ValueError(f"{path}: no keys (lines 'NAME KEY')")
    return keys


def keys_from_options(key_file: str | Path | None, allow_writes: bool, host: str,
                      environ: Mapping[str, str] | None = None) -> ApiKeys:
    """The server's `ApiKeys` from `serve`'s options; ValueError (exit 2) for a bad configuration."""
    environ = os.environ if environ is None else environ
    keys = read_key_file(key_file) if key_file is not None else {}
    env_key = environ.get(ENV_VAR, "").strip()
    if env_key:
        if not _KEY.fullmatch(env_key):
            raise ValueError(f"{ENV_VAR}: a key holds only visible ASCII characters")
        if ENV_NAME in keys:
            raise ValueError(f"{key_file}: the name {ENV_NAME!r} is reserved for {ENV_VAR}")
        if env_key in keys.values():
            raise ValueError(f"{ENV_VAR}: the same key is also in {key_file}")
        keys[ENV_NAME] = env_key
    if allow_writes and not is_loopback(host):
        raise ValueError(f"--allow-writes serves keyless writes on loopback only, not on --host {host}; "
                         f"use --api-key-file or {ENV_VAR}")
    return ApiKeys(keys, allow_anonymous=allow_writes)


def presented_keys(request: Request) -> list[str]:
    """The keys a request carries: `Authorization: Bearer KEY` and/or `X-API-Key: KEY`."""
    found = []
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    api_key = request.headers.get("x-api-key", "").strip()
    if api_key:
        found.append(api_key)
    return found


def _auth_of(request: Request) -> ApiKeys:
    auth = getattr(request.app.state, "auth", None)
    return auth if isinstance(auth, ApiKeys) else ApiKeys()  # none set up: writes off


def optional_writer(request: Request) -> str | None:
    """The writer's name when the request may write, else None (never raises).

    For read pages that show edit controls only to those who could use them.
    """
    auth = _auth_of(request)
    if not auth.configured:
        return ANONYMOUS if auth.allow_anonymous else None
    for key in presented_keys(request):
        name = auth.name_of(key)
        if name is not None:
            return name
    return None


def require_writer(request: Request) -> str:
    """FastAPI dependency of every mutating endpoint: the writer's name, else 401 / 403.

    401 (with `WWW-Authenticate: Bearer`): no key sent; 403: a key no one holds, or
    writes disabled on this server. The name is kept on `request.state.writer` for logs.
    """
    auth = _auth_of(request)
    if not auth.writes_enabled:
        raise HTTPException(403, WRITES_DISABLED)
    if not auth.configured:
        request.state.writer = ANONYMOUS
        return ANONYMOUS
    keys = presented_keys(request)
    if not keys:
        raise HTTPException(401, "this endpoint needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                            headers={"WWW-Authenticate": "Bearer"})
    for key in keys:
        name = auth.name_of(key)
        if name is not None:
            request.state.writer = name
            return name
    raise HTTPException(403, "the API key sent is not valid for writing")
