"""The read-only curator pages: home, track, artist, the track's audio, identify an upload.

Every page reads one snapshot (taken once at its start, like the JSON API's queries)
and the catalogue's names; none changes anything, so none needs a key.
"""

from __future__ import annotations

import io
import mimetypes
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from artistsim.catalogue.build import check_features
from artistsim.catalogue.live import LiveCatalogue, Neighbours, featurize_upload
from artistsim.catalogue.names import Names
from artistsim.catalogue.snapshot import Snapshot
from artistsim.catalogue.store import UNKNOWN_ARTIST
from artistsim.catalogue.ui.render import PageError, PageRoute, artist_label, page
from artistsim.catalogue.ui.state import CuratorState
from artistsim.data.ids import ID_LIMIT
from artistsim.data.provenance import Frontend

NEIGHBOURS = 20  # a track page's default list
MAX_NEIGHBOURS = 200
ARTIST_TRACKS = 500  # an artist page lists at most this many of its tracks
MAX_UPLOAD_BYTES = 32 * 2**20


def parse_int(value: str | None, name: str, lo: int | None = None, hi: int | None = None,
              default: int | None = None) -> int:
    """An integer field of a URL or form (422 page naming it otherwise)."""
    if value is None or str(value).strip() == "":
        if default is None:
            raise PageError(422, f"{name} is required")
        return default
    try:
        n = int(str(value).strip())
    except ValueError:
        raise PageError(422, f"{name} must be an integer") from None
    if not -ID_LIMIT <= n < ID_LIMIT:  # ids and counts are int64 everywhere below
        raise PageError(422, f"{name} is beyond the 64-bit integer range")
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise PageError(422, f"{name} must be in {lo}..{hi}")
    return n


def neighbour_rows(n: Neighbours, names: Names, own_artist: int | None) -> list[dict[str, Any]]:
    """A query's ranked neighbours as template rows (same-artist hits marked)."""
    out = []
    for rank, (t, s, a) in enumerate(zip(n.trackids[0], n.scores[0], n.artists[0]), start=1):
        if t < 0:
            continue
        same = own_artist is not None and own_artist != UNKNOWN_ARTIST and int(a) == own_artist
        out.append({"rank": rank, "trackid": int(t), "score": float(s), "artist": int(a),
                    "artist_label": artist_label(names, a), "same": same})
    return out


def _track(cat: LiveCatalogue, names: Names, snap: Snapshot, tid: int, k: int) -> dict[str, Any]:
    vec, rows = cat.vectors_of(np.array([tid]), snap)
    artist = int(snap.artists()[rows[0]])
    path, duration = names.tracks.get(tid, (None, None))
    hits = neighbour_rows(cat.similar(vec, k, rows, snapshot=snap), names, artist)
    return {"trackid": tid, "artist": artist, "artist_label": artist_label(names, artist), "path": path,
            "duration": duration, "audio": names.audio_file(tid) is not None, "neighbours": hits, "k": k,
            "same_count": sum(h["same"] for h in hits)}


def _artist(cat: LiveCatalogue, state: CuratorState, names: Names, snap: Snapshot, artist: int) -> dict[str, Any]:
    rows = np.flatnonzero(snap.artists() == artist)
    if len(rows) == 0 or artist == UNKNOWN_ARTIST:
        raise PageError(404, f"artist {artist} has no tracks in the catalogue")
    table = state.artists(snap)
    col = table.column(artist)
    centroid = table.centroids[col]
    sims = table.centroids @ centroid
    sims[col] = -np.inf
    top = np.argpartition(-sims, min(10, len(sims) - 1))[:10]  # 10 of ~100,000: no full sort
    near = top[np.argsort(-sims[top], kind="stable")]
    own = snap.vectors(rows[:ARTIST_TRACKS]) @ centroid
    order = np.argsort(-own, kind="stable")
    tids = snap.trackids()[rows[:ARTIST_TRACKS]]
    tracks = [{"trackid": int(tids[i]), "score": float(own[i]),
               "duration": names.tracks.get(int(tids[i]), (None, None))[1]} for i in order]
    found = cat.similar(centroid[None, :], min(10 + int(table.counts[col]), 1000), snapshot=snap)
    keep = (found.artists[0] != artist) & (found.trackids[0] >= 0)
    others = [{"trackid": int(t), "score": float(s), "artist": int(a), "artist_label": artist_label(names, a)}
              for t, s, a in zip(found.trackids[0][keep], found.scores[0][keep], found.artists[0][keep])][:10]
    return {"artist": artist, "artist_label": artist_label(names, artist), "count": len(rows), "tracks": tracks,
            "nearest": [{"artist": int(table.ids[c]), "artist_label": artist_label(names, table.ids[c]),
                         "score": float(sims[c]), "count": int(table.counts[c])} for c in near if np.isfinite(sims[c])],
            "others": others}


def _read_upload(filename: str, data: bytes, frontend: Frontend) -> np.ndarray:
    """(D, T) features of an uploaded .npy features file or audio file, D of the catalogue's front end."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise PageError(422, f"{filename}: not a readable .npy file ({exc})") from None
        return check_features(arr, filename, frontend.dim)
    return featurize_upload(data, suffix, frontend, filename)


def router(cat: LiveCatalogue, state: CuratorState) -> APIRouter:
    """The read-only pages' routes over `cat`."""
    r = APIRouter(route_class=PageRoute)

    @r.get("/ui", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        cat.maybe_refresh()
        stats = cat.stats()
        return page(request, "home.html", stats=stats, names=bool(state.names()))

    @r.get("/ui/tracks", response_class=HTMLResponse)
    def go_track(trackid: str = "") -> Response:
        return RedirectResponse(f"/ui/tracks/{parse_int(trackid, 'trackid')}", status_code=303)

    @r.get("/ui/artists", response_class=HTMLResponse)
    def go_artist(artist: str = "") -> Response:
        return RedirectResponse(f"/ui/artists/{parse_int(artist, 'artist')}", status_code=303)

    @r.get("/ui/tracks/{trackid}", response_class=HTMLResponse)
    def track(request: Request, trackid: str, k: str = "") -> HTMLResponse:
        cat.maybe_refresh()
        tid = parse_int(trackid, "trackid")
        kk = parse_int(k, "k", 1, MAX_NEIGHBOURS, NEIGHBOURS)
        return page(request, "track.html", **_track(cat, state.names(), cat.snapshot, tid, kk))

    @r.get("/ui/artists/{artist}", response_class=HTMLResponse)
    def artist(request: Request, artist: str) -> HTMLResponse:
        cat.maybe_refresh()
        aid = parse_int(artist, "artist")
        return page(request, "artist.html", **_artist(cat, state, state.names(), cat.snapshot, aid))

    @r.get("/ui/audio/{trackid}")
    def audio(trackid: str) -> Response:
        tid = parse_int(trackid, "trackid")
        path = state.names().audio_file(tid)
        if path is None:
            raise PageError(404, f"no audio file of track {tid} inside the catalogue's source folders")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=kind)  # answers Range requests (206) itself

    @r.get("/ui/identify", response_class=HTMLResponse)
    def identify_form(request: Request) -> HTMLResponse:
        return page(request, "identify.html", result=None)

    @r.post("/ui/identify", response_class=HTMLResponse)
    async def identify_upload(request: Request) -> HTMLResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            raise PageError(413, f"upload larger than {MAX_UPLOAD_BYTES // 2**20} MB")
        form = await request.form()
        upload = form.get("upload")
        if upload is None or isinstance(upload, str) or not upload.filename:
            raise PageError(422, "choose an audio file or a features .npy file to upload")
        data = await upload.read()
        if len(data) > MAX_UPLOAD_BYTES:
            raise PageError(413, f"upload larger than {MAX_UPLOAD_BYTES // 2**20} MB")
        name = Path(upload.filename).name

        def run() -> dict[str, Any]:
            cat.maybe_refresh()
            vec = cat.embed([_read_upload(name, data, cat.frontend)])
            out = cat.identify(vec, 5)
            res = out["result"]
            names = state.names()
            candidates = [{"artist": int(a), "artist_label": artist_label(names, a), "score": float(s)}
                          for a, s in zip(res.artists[0], res.scores[0]) if np.isfinite(s)]
            hits = neighbour_rows(cat.similar(vec, 10), names, int(res.artists[0, 0]) if res.known[0] else None)
            return {"filename": name, "known": bool(res.known[0]), "threshold": out["threshold"],
                    "calibrated": out["calibrated"], "candidates": candidates, "neighbours": hits}

        return page(request, "identify.html", result=await run_in_threadpool(run))

    return r
