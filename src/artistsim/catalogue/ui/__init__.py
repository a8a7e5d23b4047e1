"""Pages for the people who curate a catalogue, served by `artistsim serve` under /ui.

    GET  /ui                      the catalogue at a glance, go to a track or an artist
    GET  /ui/tracks/{trackid}     the track, its ranked neighbours, its audio
    GET  /ui/artists/{artist}     the artist's tracks, nearest artists, others' closest tracks
    GET  /ui/audit                the audit's suspects, a page at a time, to confirm / move / skip
    POST /ui/audit/decide         record a decision (key needed)
    POST /ui/audit/apply          relabel by the decisions: a new generation (key needed)
    GET  /ui/identify, POST       who made an uploaded audio or features file
    GET  /ui/map                  the artists' centroids in 2-D, the audit's suspects marked
    GET  /ui/audio/{trackid}      the track's source file (range requests), from the source folders only
    GET  /ui/static/...           the pages' script and style sheet (shipped in the package)
    GET  /tracks/{trackid}        (JSON) what the catalogue knows of one track: artist, name, file

The JSON route sits with the pages because it answers the same question as the track
page (what is this track filed under, now?), from the same names.

Same process, same catalogue as the JSON API (`artistsim.catalogue.service` mounts
these with `mount_ui`); see docs/curate.md for a walk-through.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from artistsim.catalogue.live import LiveCatalogue, Unavailable
from artistsim.catalogue.ui import pages, review
from artistsim.catalogue.ui.mapview import SIZE, picture
from artistsim.catalogue.ui.render import PageRoute, page, status_of
from artistsim.catalogue.ui.state import CuratorState
from artistsim.data.errors import DataError
from artistsim.data.ids import check_id


def _map_router(cat: LiveCatalogue, state: CuratorState) -> APIRouter:
    r = APIRouter(route_class=PageRoute)

    @r.get("/ui/map", response_class=HTMLResponse)
    def map_page(request: Request) -> HTMLResponse:
        cat.maybe_refresh()
        snap = cat.snapshot
        table = state.artists(snap)
        try:
            audited = state.review(snap)  # None while it is computed: the map without its suspects
        except Unavailable:  # a single labelled artist: nothing to suspect
            audited = None
        pic = state.cached("map", (snap.generation, audited is not None),
                           lambda: picture(snap, table, audited, state.names()))
        return page(request, "map.html", picture=pic, size=SIZE, generation=snap.generation)

    return r


def _track_json(cat: LiveCatalogue, state: CuratorState) -> APIRouter:
    r = APIRouter()

    @r.get("/tracks/{trackid}")
    def track(trackid: str) -> JSONResponse:
        try:
            tid = check_id(trackid, "trackid")
        except DataError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        cat.maybe_refresh()
        snap = cat.snapshot
        try:
            _, rows = cat.vectors_of(np.array([tid]), snap)
        except ValueError as exc:
            status, message = status_of(exc) or (422, str(exc))
            return JSONResponse({"detail": message}, status_code=status)
        names = state.names()
        artist = int(snap.artists()[rows[0]])
        path, duration = names.tracks.get(tid, (None, None))
        return JSONResponse({"trackid": tid, "artist": artist if artist >= 0 else None,
                             "artist_name": names.artist(artist), "path": path, "duration": duration,
                             "generation": snap.generation})

    return r


def mount_ui(app: FastAPI, cat: LiveCatalogue) -> CuratorState:
    """Add the curator pages and their static files to `app` (returns their per-generation caches)."""
    state = CuratorState(cat)
    static = resources.files("artistsim.catalogue.ui") / "static"
    app.mount("/ui/static", StaticFiles(directory=str(static)), name="ui-static")
    for part in (pages.router(cat, state), review.router(cat, state), _map_router(cat, state)):
        app.include_router(part, include_in_schema=False)
    app.include_router(_track_json(cat, state))
    return state
