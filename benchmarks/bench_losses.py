"""Peak memory and time of the seed's summed loss: PML path vs memory-efficient path.

Why a fresh subprocess per case: peak RSS (ru_maxrss) only ever grows within a process,
so each (batch size, path) runs alone in a child that reports its own peak, the peak it
had before the loss ran (imports + inputs) and the time of one forward + backward of
SeedLoss on B x dim random embeddings with artist-like labels (whole artists of mostly
10 tracks, some singletons, as the seed's batches hold).

    python -m benchmarks.bench_losses            # B = 2,000 / 6,000 / 13,000
    python -m benchmarks.bench_losses --quick    # B = 500 / 1,500 (seconds)

Measured on 2 shared cores: the PML path at 13,000 peaks at ~12 GB and takes ~80 s; on
a smaller machine pass --sizes (each case is capped by --memory-limit-gb anyway).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported in the children only, to keep the parent light
    import torch

FULL_SIZES = (2000, 6000, 13000)
QUICK_SIZES = (500, 1500)
PATHS = ("pml", "efficient")


def make_labels(num_tracks: int, seed: int) -> torch.Tensor:
    """Artist ids for a batch of whole artists: 60% have 10 tracks, the rest 1-20."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    counts = torch.where(
        torch.rand(num_tracks, generator=gen) < 0.6,
        torch.full((num_tracks,), 10),
        torch.randint(1, 21, (num_tracks,), generator=gen),
    )
    labels = torch.repeat_interleave(torch.arange(num_tracks), counts)[:num_tracks]
    return labels[torch.randperm(num_tracks, generator=gen)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_child(args: argparse.Namespace) -> dict:
    """Measure one case in this (fresh) process and return its figures."""
    import torch

    from artistsim.training.losses import SeedLoss

    if args.threads:
        torch.set_num_threads(args.threads)
    labels = make_labels(args.size, args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    embeddings = torch.randn(args.size, args.dim, generator=gen).requires_grad_()
    loss_fn = SeedLoss(args.path == "efficient", chunk_size=args.chunk_size)
    warm = torch.randn(64, args.dim, requires_grad=True)  # one-time library start-up costs
    loss_fn(warm, labels[:64]).backward()
    base_mb = _peak_rss_mb()
    times, cpu_times, value = [], [], float("nan")
    for _ in range(args.repeats):
        embeddings.grad = None
        torch.manual_seed(args.seed)  # same triplets on both paths
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = loss_fn(embeddings, labels)
        loss.backward()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        value = float(loss.detach())
        del loss
    return {
        "size": args.size,
        "path": args.path,
        "artists": int(labels.unique().numel()),
        "seconds": min(times),
        "cpu_seconds": min(cpu_times),
        "peak_mb": _peak_rss_mb(),
        "base_mb": base_mb,
        "loss": value,
        "grad_norm": float(embeddings.grad.norm()),
    }


def run_case(size: int, path: str, args: argparse.Namespace) -> dict:
    """Run one case in a fresh interpreter; a crash or OOM kill becomes an error row."""
    cmd = [
        sys.executable, "-m", "benchmarks.bench_losses", "--child",
        "--size", str(size), "--path", path, "--dim", str(args.dim),
        "--chunk-size", str(args.chunk_size), "--repeats", str(args.repeats),
        "--seed", str(args.seed), "--threads", str(args.threads),
    ]
    env = dict(os.environ)  # PYTHONPATH holds this checkout (benchmarks/__init__.py)
    limit = int(args.memory_limit_gb * 2**30) if args.memory_limit_gb > 0 else None

    def cap_memory() -> None:  # fail with an allocation error instead of waking the OOM killer
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.timeout, env=env, preexec_fn=cap_memory
        )
    except subprocess.TimeoutExpired:
        return {"size": size, "path": path, "error": f"timeout after {args.timeout} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        return {"size": size, "path": path, "error": f"rc {proc.returncode}: {tail[0]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    """One line per case, then PML / efficient ratios per batch size."""
    lines = [
        f"{'B':>6} {'artists':>7} {'path':>9} {'time s':>8} {'cpu s':>7} {'peak MB':>8} {'extra MB':>9} "
        f"{'loss':>10}",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['size']:>6} {'':>7} {r['path']:>9}  FAILED: {r['error']}")
            continue
        extra = r["peak_mb"] - r["base_mb"]
        lines.append(
            f"{r['size']:>6} {r['artists']:>7} {r['path']:>9} {r['seconds']:>8.2f} {r['cpu_seconds']:>7.2f} "
            f"{r['peak_mb']:>8.0f} {extra:>9.0f} {r['loss']:>10.6f}"
        )
    lines.append("")
    lines.append(f"{'B':>6} {'time pml/eff':>13} {'peak pml/eff':>13} {'extra pml/eff':>14} {'loss rel diff':>14}")
    by_key = {(r["size"], r["path"]): r for r in rows if "error" not in r}
    for size in sorted({r["size"] for r in rows}):
        ref, eff = by_key.get((size, "pml")), by_key.get((size, "efficient"))
        if ref is None or eff is None:
            continue
        extra_ref = ref["peak_mb"] - ref["base_mb"]
        extra_eff = max(eff["peak_mb"] - eff["base_mb"], 1.0)
        rel = abs(ref["loss"] - eff["loss"]) / max(abs(ref["loss"]), 1e-30)
        lines.append(
            f"{size:>6} {ref['seconds'] / eff['seconds']:>13.2f} "
            f"{ref['peak_mb'] / eff['peak_mb']:>13.2f} {extra_ref / extra_eff:>14.1f} {rel:>14.2e}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"small sizes {QUICK_SIZES}")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"batch sizes (default {FULL_SIZES})")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--chunk-size", type=int, default=None, help="rows per chunk (default: the library's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per case; the fastest is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    parser.add_argument(
        "--memory-limit-gb", type=float, default=20.0,
        help="address-space cap per case (0 = none): an oversized case fails instead of the machine",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=PATHS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.chunk_size is None:
        from artistsim.training.losses import DEFAULT_CHUNK_SIZE

        args.chunk_size = DEFAULT_CHUNK_SIZE
    if args.child:
        print(json.dumps(run_child(args)))
        return 0
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    rows = []
    for size in sizes:
        for path in args.paths:
            row = run_case(size, path, args)
            rows.append(row)
            status = row.get("error") or f"{row['seconds']:.2f} s"
            print(f"done B={size} {path}: {status}", file=sys.stderr, flush=True)
    print(f"dim {args.dim}, chunk_size {args.chunk_size}, forward+backward of SeedLoss (seed weights)")
    print(format_table(rows))
    if args.json:
        from artistsim.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
