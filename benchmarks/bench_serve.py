"""The catalogue service under load: latency, throughput, adds during queries, memory.

For each catalogue (N clustered unit vectors of dimension 128, as in bench_ann.py;
HNSW at the large size, exact search at 41,377 tracks), the real server
(`artistsim serve`, a subprocess on a free loopback port) answers
`GET /tracks/{id}/similar?k=100` from an async httpx load loop with 1, 8 and 32
concurrent clients; each level sends a fixed number of requests and stops by itself.
The same queries are answered by FAISS directly in this process (the index read from
the catalogue; exact: `faiss.knn`) with the same number of threads, as the baseline.

Then `index add` of 10,000 tracks (the store's append: segment + manifest) into the
large catalogue while the load loop keeps querying: its wall time and the query errors
seen meanwhile. Memory: the serving process's RSS with the catalogue loaded, minus an
empty server's, per million tracks.

    python benchmarks/bench_serve.py --quick   # 100,000 (HNSW) and 41,377 (exact)
    python benchmarks/bench_serve.py --full    # 1,000,000 (HNSW) and 41,377 (exact)

Targets (issue 13): p99 <= 20 ms at 8 clients on 1M HNSW; throughput within 2x of
FAISS in-process for the same queries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from bench_ann import make_catalogue  # noqa: E402

K = 100
CLIENTS = (1, 8, 32)


def build(root: Path, n: int, kind: str) -> None:
    from artistsim.catalogue.store import MANIFEST, Part, create

    if (root / MANIFEST).exists():
        return
    x, owners = make_catalogue(n)
    C.log(f"building a {kind} catalogue of {n:,} tracks in {root}")
    create(root, Part(x, np.arange(n, dtype=np.int64), owners), runs=[], embed={}, index=kind, overwrite=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "artistsim", "serve", str(root), "--port", str(port),
                             "--threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(3000):  # index loading at 1M takes a while; bounded all the same
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-500:]}")
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


async def load(url: str, ids: np.ndarray, clients: int) -> dict:
    """Send len(ids) queries from `clients` concurrent workers; latencies and errors."""
    import httpx

    lat: list[float] = []
    errors = 0
    queue = list(map(int, ids))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while queue:
            tid = queue.pop()
            t0 = time.perf_counter()
            try:
                r = await client.get(f"/tracks/{tid}/similar", params={"k": K})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            lat.append(time.perf_counter() - t0)
            errors += not ok

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "qps": len(a) / wall,
            "errors": errors, "n": len(a)}


def faiss_direct(root: Path, ids: np.ndarray, clients: int) -> float:
    """Queries per second of the same single queries through FAISS in this process."""
    import faiss

    from artistsim.catalogue.snapshot import open_snapshot

    snap = open_snapshot(root)
    faiss.omp_set_num_threads(1)
    vecs = snap.vectors(ids)
    if snap.index is not None:
        def one(i: int) -> None:
            snap.index.search(vecs[i : i + 1], K + 1)
    else:
        xb = np.ascontiguousarray(snap.main.embeddings)

        def one(i: int) -> None:
            faiss.knn(vecs[i : i + 1], xb, K + 1, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(len(ids))))
    return len(ids) / (time.perf_counter() - t0)


async def add_during_load(root: Path, url: str, ids: np.ndarray, n_add: int) -> dict:
    """Append n_add tracks (a child process) while 8 clients query; seconds and errors."""
    code = ("import numpy as np, sys, time; from artistsim.catalogue.store import Part, append; "
            f"rng = np.random.default_rng(7); x = rng.normal(size=({n_add}, 128)).astype(np.float32); "
            "x /= np.linalg.norm(x, axis=1, keepdims=True); t = time.perf_counter(); "
            f"append(sys.argv[1], Part(x, np.arange(10**9, 10**9 + {n_add}), np.full({n_add}, -1)), compact=False); "
            "print(time.perf_counter() - t)")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, str(root),
                                                stdout=asyncio.subprocess.PIPE)
    res = await asyncio.gather(proc.communicate(), load(url, ids, 8))
    (out, _), stats = res
    return {"seconds": float(out.decode().strip().splitlines()[-1]), "errors": stats["errors"], "queries": stats["n"]}


def main() -> int:
    p = C.base_parser(__doc__)
    args = p.parse_args()
    mode = C.mode_of(args)
    C.set_threads(args.threads or 0, tune_malloc=False)
    facts = C.machine_facts()
    big = 1_000_000 if mode == "full" else 100_000
    requests = 2000 if mode == "full" else 400
    sections = []
    rows, add_row, mem_rows = [], None, []
    load0 = C.load_average()
    empty = C.SCRATCH / "serve_empty"
    build(empty, 1000, "flat")
    proc, url = start_server(empty)
    base_rss = rss_mb(proc.pid)
    proc.terminate()
    proc.wait()
    met = True
    for n, kind in ((big, "hnsw"), (41_377, "flat")):
        root = C.SCRATCH / f"serve_{kind}_{n}"
        build(root, n, kind)
        proc, url = start_server(root)
        try:
            rng = np.random.default_rng(1)
            for clients in CLIENTS:
                ids = rng.integers(0, n, size=requests)
                s = asyncio.run(load(url, ids, clients))
                direct = faiss_direct(root, ids, clients)
                ratio = direct / s["qps"]
                if kind == "hnsw" and clients == 8:
                    met = met and s["p99"] <= 20 and ratio <= 2
                rows.append([f"{n:,}", kind, clients, C.fmt(s["p50"]), C.fmt(s["p99"]), C.fmt(s["qps"], 0),
                             C.fmt(direct, 0), C.fmt(ratio), s["errors"]])
            rss = rss_mb(proc.pid)
            mem_rows.append([f"{n:,}", kind, C.fmt(rss, 0), C.fmt((rss - base_rss) / n * 1e6, 0)])
            if kind == "hnsw":
                a = asyncio.run(add_during_load(root, url, rng.integers(0, n, size=requests), 10_000))
                add_row = [f"{n:,}", "10,000", C.fmt(a["seconds"]), a["queries"], a["errors"]]
        finally:
            proc.terminate()
            proc.wait()
    load1 = C.load_average()
    sections.append(C.Section(
        heading="GET /tracks/{id}/similar?k=100 under load vs FAISS in-process",
        table=C.markdown_table(["tracks", "index", "clients", "p50 ms", "p99 ms", "server q/s", "FAISS q/s",
                                "FAISS / server", "errors"], rows),
        target="p99 <= 20 ms at 8 clients on 1M HNSW, throughput within 2x of FAISS in-process",
        met=met if mode == "full" else None, load=(load0, load1),
        notes=f"{requests} requests per row. FAISS in-process: the same single queries, as many threads as "
              "clients, 1 OpenMP thread each (as the server runs them)."))
    if add_row:
        sections.append(C.Section(
            heading="index add of 10,000 tracks while 8 clients query",
            table=C.markdown_table(["catalogue", "added", "add seconds", "queries meanwhile", "query errors"],
                                   [add_row]),
            notes="The add is the store's append (new segment + manifest switch) in its own process; the "
                  "running server keeps answering from its snapshot."))
    sections.append(C.Section(
        heading="Memory of the serving process",
        table=C.markdown_table(["tracks", "index", "RSS MB", "MB per million tracks"], mem_rows),
        notes=f"RSS after the load loops; an empty server (1,000 tracks) holds {base_rss:.0f} MB, subtracted "
              "before scaling to a million."))
    C.emit(C.make_result("serve", "Catalogue service under load", mode, "bench_serve.py", sys.argv[1:],
                         sections, facts), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
