"""Run the benchmarks one after another, then rewrite the docs pages of their tables.

    python -m benchmarks.run_all                 # --quick: small sizes, a few minutes
    python -m benchmarks.run_all --full          # the sizes the targets are stated for (hours)
    python -m benchmarks.run_all --full --only search
    python -m benchmarks.run_all --quick --only train -- --models transformer

Each benchmark runs in its own process, one at a time (full sizes need the whole
machine), prints its tables and leaves a JSON result: benchmarks/results/NAME.json for a
full run (committed), benchmarks/results/quick/NAME.json for a quick one (not committed).
docs/benchmarks.md and docs/quality.md are then regenerated from the result files
present (`benchmarks.report`), a benchmark's full result before its quick one: `make bench` (quick) checks the machinery without replacing
the full-size tables, and a benchmark re-run alone (`--only`) replaces its own section
and keeps the others, each labelled with its mode, the exact command, the machine and
the load average.
`--report-only` regenerates the pages without running anything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import common as C
from benchmarks.report import BENCHES, ON_DEMAND, result_path, write_pages


def run_one(name: str, mode: str, extra: list[str]) -> int:
    script, _ = BENCHES[name]
    out = result_path(name, mode)
    out.parent.mkdir(parents=True, exist_ok=True)
    if name == "losses":  # bench_losses.py keeps its own format: wrap its table
        return run_losses(mode, extra, out)
    cmd = [*C.child_command(script), f"--{mode}", "--json", str(out), *extra]
    print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
    return subprocess.call(cmd)


def run_losses(mode: str, extra: list[str], out: Path) -> int:
    """bench_losses.py prints a plain-text table; keep it verbatim in a result of our format."""
    args = (["--quick"] if mode == "quick" else []) + extra
    cmd = [*C.child_command("bench_losses.py"), *args]
    print(f"\n=== losses: {' '.join(cmd[1:])}", flush=True)
    facts = C.machine_facts()
    load0 = C.load_average()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    print(proc.stdout, end="")
    body = proc.stdout.strip()
    met = None
    if mode == "full":
        met = proc.returncode == 0
    section = C.Section(
        heading="SeedLoss forward + backward, one process per case",
        table="```\n" + body + "\n```",
        target="" if mode == "quick" else "every case completes under its memory cap",
        met=met, load=(load0, C.load_average()),
        notes="From `benchmarks/bench_losses.py` (the losses' own benchmark, run as is).",
    )
    result = C.make_result("losses", "The seed loss alone", mode, "bench_losses.py", args, [section], facts)
    from artistsim.atomic import atomic_write_text

    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (default)")
    mode.add_argument("--full", action="store_true", help="the targets' sizes")
    parser.add_argument("--only", action="append", choices=list(BENCHES), help="run only these (repeatable)")
    parser.add_argument("--report-only", action="store_true", help="only regenerate the docs pages")
    args = parser.parse_args(argv)
    names = args.only or [n for n in BENCHES if n not in ON_DEMAND]
    if extra and len(names) != 1:
        parser.error("arguments after -- go to one benchmark: use it with a single --only")
    failed = []
    if not args.report_only:
        start = time.perf_counter()
        for name in names:
            rc = run_one(name, "full" if args.full else "quick", extra)
            if rc != 0:
                failed.append(name)
        print(f"\nran {len(names)} benchmark(s) in {time.perf_counter() - start:.0f} s", flush=True)
    for path in write_pages():
        print(f"wrote {path.relative_to(C.ROOT)}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
