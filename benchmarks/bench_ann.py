"""Large catalogues: FAISS exact vs IVF vs HNSW (build time, query time, recall@100, memory).

The catalogue is N clustered unit vectors of dimension 128 (artists of ~10 tracks, as in
bench_search.py), generated in chunks so generation never holds more than the matrix.
A sample of Q catalogue rows is queried for its 100 nearest other rows with:

- artistsim `search` (exact; the reference the recalls are measured against);
- FAISS IndexFlatIP (exact, brute force);
- IVF-Flat as `artistsim.search.exact` builds it (nlist ~ 4 sqrt(N), trained on a seeded
  sample), visited with nprobe 16 and 64;
- HNSW-Flat as `artistsim.search.exact` builds it (M = 32), with efSearch 128 and 256.

Each index is built and queried in a fresh subprocess, so its peak RSS (VmHWM) is its own;
"RSS before" is the process with the catalogue loaded, before the index.

    python -m benchmarks.bench_ann --quick   # N = 100,000, Q = 500
    python -m benchmarks.bench_ann --full    # N = 1,000,000, Q = 1,000

Target (tracker issue): report build and query time and recall@100 against exact, with
memory bounded: every case's peak RSS within 4x the raw catalogue (N x 128 float32).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks import common as C
from benchmarks.catalogues import DIM, artist_recall, make_catalogue

K = 100
KINDS = ("exact", "flat", "ivf", "hnsw")
SEARCH_PARAMS = {"ivf": ("nprobe", (16, 64, 256)), "hnsw": ("efSearch", (128, 256, 512))}


def query_rows(n: int, q: int) -> np.ndarray:
    return np.sort(np.random.default_rng(1).choice(n, size=min(q, n), replace=False))


def drop_self(found: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """k results per query without the query's own row (or the last, if it was missed)."""
    own = found == rows[:, None]
    own[~own.any(axis=1), -1] = True
    order = np.argsort(own, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1)


def exact_path(n: int, q: int) -> Path:
    return C.SCRATCH / f"ann_exact_n{n}_q{q}.npy"


def child(args: argparse.Namespace) -> dict:
    """Build one kind of index over the catalogue and query the sample; report figures."""
    import faiss

    from artistsim.search import omp_threads
    from artistsim.search.ann import build_faiss_index, recall_at_k
    from artistsim.search.exact import search

    start_mb = C.proc_status_mb("VmRSS")  # interpreter + torch + faiss, no data yet
    x, owners = make_catalogue(args.n)
    rows = query_rows(args.n, args.queries)
    out: dict = {"kind": args.kind, "n": args.n, "queries": len(rows), "rss_start_mb": start_mb,
                 "rss_before_mb": C.proc_status_mb("VmRSS"), "load_before": C.load_average()}
    if args.kind == "exact":
        t, (_, idx) = C.time_call(lambda: search(x[rows], x, K, exclude=rows))
        out["build"], out["search"] = None, {"-": vars(t)}
        out["peak_mb"] = C.proc_status_mb("VmHWM")
        from artistsim.atomic import atomic_path

        with atomic_path(exact_path(args.n, len(rows)), suffix=".npy") as tmp:
            np.save(tmp, idx)
        out["recall"] = {"-": 1.0}
        out["artist_recall"] = {"-": artist_recall(idx, rows, owners)}
        out["load_after"] = C.load_average()
        return out
    exact = np.load(exact_path(args.n, len(rows)))
    with omp_threads(faiss, None):
        kind = "flat" if args.kind == "flat" else args.kind
        t, (index, keep) = C.time_call(lambda: build_faiss_index(faiss, x, kind, None, 32, 0))
        out["build"] = vars(t)
        out["nlist"] = int(index.nlist) if kind == "ivf" else None
        params = SEARCH_PARAMS.get(kind, ("-", ("-",)))
        out["search"], out["recall"], out["artist_recall"] = {}, {}, {}
        for value in params[1]:
            if kind == "ivf":
                index.nprobe = value
            elif kind == "hnsw":
                index.hnsw.efSearch = value
            t, (_, found) = C.time_call(lambda: index.search(x[rows], K + 1))
            found = drop_self(found.astype(np.int64), rows, K)
            out["search"][str(value)] = vars(t)
            out["recall"][str(value)] = recall_at_k(found, exact)
            out["artist_recall"][str(value)] = artist_recall(found, rows, owners)
    out["peak_mb"] = C.proc_status_mb("VmHWM")
    out["param"] = params[0]
    out["load_after"] = C.load_average()
    return out


def run_all_kinds(args: argparse.Namespace, n: int, q: int) -> list[dict]:
    results = []
    for kind in KINDS:
        C.log(f"ANN N={n:,}: {kind} (fresh process)")
        cmd = C.child_command("bench_ann.py", "--child", kind, "--n", str(n), "--queries", str(q),
                              "--threads", str(args.threads))
        r = C.run_child(cmd, memory_limit_gb=args.memory_limit_gb, timeout=args.timeout)
        r.setdefault("kind", kind)
        results.append(r)
        if kind == "exact" and "error" in r:
            break
    return results


def table(results: list[dict], n: int) -> C.Section:
    data_mb = n * DIM * 4 / 2**20
    rows = []
    flat_per_query = None
    for r in results:
        if r.get("kind") == "flat" and "search" in r:
            flat_per_query = r["search"]["-"]["wall"] / r["queries"]
    within = True
    for r in results:
        if "error" in r:
            rows.append([r["kind"], "FAILED", r["error"], "", "", "", "", "", "", "", "", ""])
            within = False
            continue
        label = {"exact": "artistsim `search` (exact)", "flat": "FAISS IndexFlatIP",
                 "ivf": f"IVF-Flat (nlist {r.get('nlist')})", "hnsw": "HNSW-Flat (M 32)"}[r["kind"]]
        build = r.get("build")
        above = r["peak_mb"] - r["rss_start_mb"]
        within &= above <= 4 * data_mb
        for value, t in r["search"].items():
            per_query = t["wall"] / r["queries"]
            speedup = flat_per_query / per_query if flat_per_query else float("nan")
            setting = f"{r.get('param')} {value}" if value != "-" else "-"
            rows.append([label, setting, C.fmt(build["wall"]) if build else "-", C.fmt(build["cpu"]) if build else "-",
                         C.fmt(per_query * 1e3, 3), C.fmt(t["cpu"] / r["queries"] * 1e3, 3), C.fmt(speedup, 1),
                         f"{r['recall'][value]:.4f}",
                         f"{r['artist_recall'][value]:.4f}" if "artist_recall" in r else "-", f"{r['peak_mb']:,.0f}", f"{above:,.0f}",
                         f"{above / data_mb:.1f}"])
    q = next((r["queries"] for r in results if "queries" in r), 0)
    tbl = C.markdown_table(
        ["index", "search setting", "build s", "build CPU s", "ms / query", "CPU ms / query",
         "speed-up vs flat", "recall@100", "artist recall", "peak RSS MB", "peak above start MB", "/ catalogue"],
        rows, "llrrrrrrrrrr")
    loads = [r.get("load_before") for r in results if "load_before" in r] + \
            [r.get("load_after") for r in results if "load_after" in r]
    return C.Section(
        heading=f"N = {n:,} x {DIM}, {q} queries, k = {K}",
        table=tbl,
        target=(f"peak RSS above the process's start (imports, no data) <= 4x the raw catalogue "
                f"({data_mb:,.0f} MB) in every case; times and recall reported"),
        met=within,
        notes=("Queries are a seeded sample of catalogue rows; each asks for its 100 nearest other rows. "
               "Recall@100 is against artistsim's exact search on the same sample; artist recall is the share "
               "of each query's same-artist rows (~9 per query) that come back in its 100, the figure that "
               "matters for same-artist search (the other ~90 exact neighbours are noise whose order an "
               "approximate index need not keep). Query times are for the "
               "whole sample in one batched call (FAISS parallelises over queries). The peak includes the "
               "catalogue itself (1x) and the index's copy of it (flat, IVF and HNSW all store the vectors)."),
        load=(min(loads), max(loads)) if loads else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__)
    parser.add_argument("--n", type=int, help="catalogue size")
    parser.add_argument("--queries", type=int, help="sampled queries")
    parser.add_argument("--memory-limit-gb", type=float, default=16.0, help="address-space cap per case")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per case")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    C.set_threads(args.threads, tune_malloc=False)  # one-shot library calls: malloc as the CLI leaves it
    if args.child:
        args.kind = args.child
        print(json.dumps(child(args)))
        return 0
    n = args.n or (1_000_000 if args.full else 100_000)
    q = args.queries or (1000 if args.full else 500)
    facts = C.machine_facts()
    results = run_all_kinds(args, n, q)
    result = C.make_result("ann", "Approximate indexes on a large catalogue", C.mode_of(args), "bench_ann.py",
                           argv, [table(results, n)], facts, {"cases": results})
    C.emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
