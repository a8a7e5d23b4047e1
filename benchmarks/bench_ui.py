"""The curator pages' server time on a large catalogue: track page, artist page, audit page.

A catalogue of N clustered unit vectors (dimension 128, artists of ~10 tracks, as in
bench_ann.py / bench_serve.py) is built through the public store API, with names for
every artist and a duration for every track (`catalogue.names`, the JSON kept in the
catalogue). The service app (`create_app`, the curator pages mounted) answers in this
process through Starlette's TestClient, one request at a time: the time measured per
request is the whole round trip through the ASGI app (routing, search, names, Jinja2
rendering, the client's own share), an upper bound of the server's time.

- track page `/ui/tracks/{id}` (20 neighbours) for random catalogued tracks: p50 / p99
  over a bounded number of requests, after a warm-up; the JSON `GET /tracks/{id}/similar?k=20`
  of the same tracks for comparison;
- artist page `/ui/artists/{id}`: the first call computes the artist centroids of the
  generation (reported apart), later calls reuse them;
- audit page `/ui/audit?page=P`: the audit ranks every labelled track against every
  artist (O(tracks x artists), `catalogue.audit`), computed once per generation in the
  background: the time until its ranking is shown is reported at a smaller catalogue
  (AUDIT_N), then pages are timed.

    python -m benchmarks.bench_ui --quick   # 100,000 tracks (exact search)
    python -m benchmarks.bench_ui --full    # 1,000,000 tracks (HNSW)

Target (issue 21): at 1,000,000 tracks a track page renders in under 50 ms server time at p99.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import common as C
from benchmarks.catalogues import make_catalogue

REQUESTS = 1000
WARM_UP = 100
ARTIST_REQUESTS = 100
AUDIT_N = 20_000
AUDIT_PAGES = 50


def build(root: Path, n: int, kind: str) -> None:
    """A catalogue of n clustered random embeddings (once; bench_serve's folder names, so either reuses it)."""
    from artistsim.catalogue.store import MANIFEST, Part, create

    if (root / MANIFEST).exists():
        return
    x, owners = make_catalogue(n)
    C.log(f"building a {kind} catalogue of {n:,} tracks in {root}")
    create(root, Part(x, np.arange(n, dtype=np.int64), owners), runs=[], embed={}, index=kind, overwrite=True)


def name_catalogue(root: Path) -> None:
    """Names for every artist and a duration for every track (once per catalogue)."""
    from artistsim.catalogue.names import Names, keep
    from artistsim.catalogue.snapshot import open_snapshot
    from artistsim.catalogue.store import Manifest

    if Manifest.read(root).names:
        return
    snap = open_snapshot(root)
    artists = np.unique(snap.artists())
    keep(root, Names({int(a): f"Artist {a}" for a in artists},
                     {int(t): (None, 180.0) for t in snap.trackids()}, []))


def client_for(root: Path):
    from fastapi.testclient import TestClient

    from artistsim.catalogue.auth import ApiKeys
    from artistsim.catalogue.live import LiveCatalogue
    from artistsim.catalogue.service import create_app

    return TestClient(create_app(LiveCatalogue(root), auth=ApiKeys()))


def timings(client, paths: list[str]) -> np.ndarray:
    """Milliseconds per request, each checked to be a 200."""
    out = np.empty(len(paths))
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        r = client.get(path)
        out[i] = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {r.status_code}")
    return out


def row(what: str, ms: np.ndarray) -> list[str]:
    return [what, str(len(ms)), C.fmt(float(np.percentile(ms, 50))), C.fmt(float(np.percentile(ms, 99))),
            C.fmt(float(ms.max()))]


def main() -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--requests", type=int, default=REQUESTS)
    args = p.parse_args()
    C.set_threads(1)
    mode = C.mode_of(args)
    n, kind = (1_000_000, "hnsw") if args.full else (100_000, "flat")
    facts = C.machine_facts()
    rng = np.random.default_rng(0)

    root = C.SCRATCH / f"serve_{kind}_{n}"  # bench_serve's catalogue, reused when present
    build(root, n, kind)
    name_catalogue(root)
    client = client_for(root)
    ids = rng.integers(0, n, size=WARM_UP + args.requests)
    timings(client, [f"/ui/tracks/{t}" for t in ids[:WARM_UP]])
    track = timings(client, [f"/ui/tracks/{t}" for t in ids[WARM_UP:]])
    plain = timings(client, [f"/tracks/{t}/similar?k=20" for t in ids[WARM_UP:]])
    html = client.get(f"/ui/tracks/{ids[0]}").text
    assert html.count('class="neighbour"') == 20 and "Artist " in html

    owners = np.random.default_rng(1).integers(0, max(1, n // 10), size=ARTIST_REQUESTS + 1)
    t0 = time.perf_counter()
    client.get(f"/ui/artists/{owners[0]}")
    artist_first = time.perf_counter() - t0
    artist = timings(client, [f"/ui/artists/{a}" for a in owners[1:]])

    small = C.SCRATCH / f"ui_audit_flat_{AUDIT_N}"
    build(small, AUDIT_N, "flat")
    name_catalogue(small)
    audit_client = client_for(small)
    t0 = time.perf_counter()
    while 'id="computing"' in audit_client.get("/ui/audit").text:  # each call waits for it a few seconds
        pass
    audit_first = time.perf_counter() - t0
    audit = timings(audit_client, [f"/ui/audit?page={1 + i % 200}" for i in range(AUDIT_PAGES)])

    header = ["page", "requests", "p50 ms", "p99 ms", "max ms"]
    rows = [row(f"track page, {n:,} tracks ({kind})", track),
            row(f"JSON /tracks/{{id}}/similar?k=20, {n:,} tracks", plain),
            row(f"artist page, {n:,} tracks (centroids cached)", artist),
            row(f"audit page, {AUDIT_N:,} tracks (audit cached)", audit)]
    p99 = float(np.percentile(track, 99))
    notes = (f"First artist page (computes the generation's {n // 10:,} centroids): {artist_first:.1f} s. "
             f"First audit page at {AUDIT_N:,} tracks (computes the audit, PLDA): {audit_first:.1f} s. "
             "Times are in-process round trips through the ASGI app (TestClient), one request at a time.")
    section = C.Section(heading=f"Curator pages at {n:,} tracks", table=C.markdown_table(header, rows), notes=notes,
                        target="track page p99 < 50 ms server time at 1,000,000 tracks",
                        met=p99 < 50 if args.full else None)
    C.emit(C.make_result("ui", "Curator pages: server time", mode, "bench_ui.py", sys.argv[1:], [section], facts),
           args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
