"""The audit review: suspects page by page, decisions recorded, applied as a new generation; login.

Why paged: the audit ranks every labelled track (a million at scale); a page shows
PAGE_SIZE of the suspects not decided yet, with the evidence a curator needs to judge
one (its similarity to its own artist and to the suspected one, and the nearest tracks
of each, to listen to). Decisions go to the catalogue's corrections.tsv
(`artistsim.catalogue.corrections`) under the deciding key's name; "apply" relabels the
catalogue in a new generation, after which the audit is computed afresh.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from artistsim.catalogue import corrections
from artistsim.catalogue.live import LiveCatalogue
from artistsim.catalogue.names import Names
from artistsim.catalogue.snapshot import Snapshot
from artistsim.catalogue.ui.access import COOKIE, COOKIE_PATH, key_name, require_decider, same_origin
from artistsim.catalogue.ui.pages import parse_int
from artistsim.catalogue.ui.render import PageError, PageRoute, artist_label, page
from artistsim.catalogue.ui.state import Artists, CuratorState

PAGE_SIZE = 10
MAX_PAGE_SIZE = 50
EVIDENCE_TRACKS = 3  # nearest tracks shown of the own and of the suspected artist


def _nearest_of(snap: Snapshot, vector: np.ndarray, artist: int, skip: int, n: int) -> list[dict[str, Any]]:
    """The n tracks of `artist` nearest to `vector` (`skip`: the track itself)."""
    rows = np.flatnonzero(snap.artists() == artist)
    rows = rows[snap.trackids()[rows] != skip]
    if len(rows) == 0:
        return []
    sims = snap.vectors(rows) @ vector
    top = np.argsort(-sims, kind="stable")[:n]
    return [{"trackid": int(snap.trackids()[rows[i]]), "score": float(sims[i])} for i in top]


def _row(snap: Snapshot, table: Artists, names: Names, tid: int, suspected: int, suspicion: float) -> dict[str, Any]:
    row = snap.rows_of(np.array([tid]))
    vec, own = snap.vectors(row)[0], int(snap.artists()[row[0]])
    return {"trackid": tid, "artist": own, "artist_label": artist_label(names, own),
            "suspected": suspected, "suspected_label": artist_label(names, suspected), "suspicion": suspicion,
            "own_similarity": table.similarity(vec, own, without_self=True),
            "suspected_similarity": table.similarity(vec, suspected),
            "own_nearest": _nearest_of(snap, vec, own, tid, EVIDENCE_TRACKS),
            "suspected_nearest": _nearest_of(snap, vec, suspected, tid, EVIDENCE_TRACKS),
            "duration": names.tracks.get(tid, (None, None))[1], "audio": names.audio_file(tid) is not None}


def _review_page(cat: LiveCatalogue, state: CuratorState, number: int, size: int) -> dict[str, Any]:
    snap = cat.snapshot
    log = corrections.read(cat.root / corrections.CORRECTIONS)
    pending, _ = corrections.pending(log, snap)
    review = state.review(snap)
    if review is None:
        return {"computing": round(state.audit_seconds()), "rows": [], "page": 1, "pages": 1, "size": size,
                "open": 0, "decided": len(corrections.decided(log)), "pending": len(pending), "start": 0,
                "method": state.audit_method, "generation": snap.generation}
    res = review.audit
    open_ = np.isfinite(res.suspicion) & ~np.isin(review.trackids, corrections.decided(log))
    todo = np.flatnonzero(open_)
    pages = max(1, -(-len(todo) // size))
    number = min(number, pages)
    mine = todo[(number - 1) * size: number * size]
    table, names = state.artists(snap), state.names()
    rows = [_row(snap, table, names, int(review.trackids[i]), int(res.suspected[i]), float(res.suspicion[i]))
            for i in mine]
    return {"computing": None, "rows": rows, "page": number, "pages": pages, "size": size, "open": len(todo),
            "decided": len(corrections.decided(log)), "pending": len(pending), "start": (number - 1) * size,
            "method": state.audit_method, "generation": snap.generation}


def _target(value: str, names: Names) -> int:
    """The artist a track is moved to: an id, or a name the catalogue knows (exactly one artist)."""
    text = value.strip()
    if not text:
        raise PageError(422, "name the artist to move the track to (an id or a known name)")
    try:
        artist = int(text.lstrip("#"))
    except ValueError:
        found = [a for a, n in names.artists.items() if n == text]
        if len(found) != 1:
            raise PageError(422, "no single artist of that name; give the artist's id") from None
        artist = found[0]
    if artist < 0:
        raise PageError(422, "an artist id is 0 or more")
    return artist


def _local(next_url: str) -> str:
    """Where to go after logging in: a /ui path of this server only (never another site)."""
    return next_url if next_url.startswith("/ui") and not next_url.startswith("//") else "/ui"


def router(cat: LiveCatalogue, state: CuratorState) -> APIRouter:
    """The review's routes (the form posts need a key: `access.require_decider`)."""
    r = APIRouter(route_class=PageRoute)

    @r.get("/ui/audit", response_class=HTMLResponse)
    def review(request: Request, size: str = "", applied: str = "") -> HTMLResponse:
        cat.maybe_refresh()
        number = parse_int(request.query_params.get("page"), "page", 1, None, 1)
        n = parse_int(size, "size", 1, MAX_PAGE_SIZE, PAGE_SIZE)
        done = parse_int(applied, "applied", 0, None, -1)
        return page(request, "audit.html", applied=done if done >= 0 else None, **_review_page(cat, state, number, n))

    @r.post("/ui/audit/decide")
    async def decide(request: Request) -> Response:
        who = require_decider(request)
        form = await request.form()
        tid = parse_int(form.get("trackid"), "trackid")  # type: ignore[arg-type]
        decision = str(form.get("decision", ""))
        number = parse_int(form.get("page"), "page", 1, None, 1)  # type: ignore[arg-type]
        if decision not in corrections.DECISIONS:
            raise PageError(422, f"decision must be one of {', '.join(corrections.DECISIONS)}")
        target = str(form.get("other", "")).strip() or str(form.get("artist", ""))

        def record() -> None:  # file I/O under the writer lock, a catalogue refresh: off the event loop
            cat.maybe_refresh(interval=0.0)
            snap = cat.snapshot
            row = snap.rows_of(np.array([tid]))[0]
            if row < 0:
                raise PageError(404, f"trackid {tid} is not in the catalogue")
            old = int(snap.artists()[row])
            new = _target(target, state.names()) if decision == "move" else old
            corrections.record(cat.root, tid, old, new, decision, who)

        await run_in_threadpool(record)
        return RedirectResponse(f"/ui/audit?page={number}", status_code=303)

    @r.post("/ui/audit/apply")
    def apply(request: Request) -> Response:
        require_decider(request)
        cat.maybe_refresh(interval=0.0)
        new, n = corrections.apply(cat.root, cat.root / corrections.CORRECTIONS, cat.snapshot)
        if new is not None:
            cat.refresh()  # the new generation, read now (by generation, not the file's time)
        return RedirectResponse(f"/ui/audit?applied={n}", status_code=303)

    @r.get("/ui/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/ui") -> HTMLResponse:
        return page(request, "login.html", next=_local(next), failed=False)

    @r.post("/ui/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        target = _local(str(form.get("next", "/ui")))
        if not same_origin(request):
            raise PageError(403, "log in from this server's own login page")
        key = str(form.get("key", ""))
        if key_name(request, key) is None:
            return page(request, "login.html", status=403, next=target, failed=True)
        out = RedirectResponse(target, status_code=303)
        out.set_cookie(COOKIE, key.strip(), path=COOKIE_PATH, httponly=True, samesite="strict",
                       secure=request.url.scheme == "https")
        return out

    @r.post("/ui/logout")
    def logout(request: Request) -> Response:
        if not same_origin(request):
            raise PageError(403, "log out from this server's own pages")
        out = RedirectResponse("/ui", status_code=303)
        out.delete_cookie(COOKIE, path=COOKIE_PATH)
        return out

    return r

