"""Shared plumbing of the benchmarks: machine facts, timers, the matmul rate, subprocesses.

Why ratios: these machines are shared (other processes may hold the cores), so an
absolute time says little. Every benchmark measures its baseline in the same run, next
to the thing measured, and reports the ratio; the load average is recorded before and
after each table, and CPU-seconds are reported alongside wall time (a process that
loses its cores to a neighbour waits longer but does not burn more CPU-seconds).

Every benchmark script is runnable alone (`python benchmarks/bench_search.py --quick`)
and also writes a JSON result (`--json PATH`) that `run_all.py` turns into BENCHMARKS.md.
A result is a dict: name, title, mode, command, machine facts, and sections, each with
a markdown table, the target, whether it is met, and notes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
BENCH_DIR = Path(__file__).resolve().parent
# Scratch data (synthetic datasets, stores) lives outside the repository.
SCRATCH = Path(os.environ.get("ARTISTSIM_BENCH_DIR", "/tmp/artistsim_bench"))

if str(SRC) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(SRC))


# --------------------------------------------------------------------------- machine


def load_average() -> float:
    """1-minute load average (how many runnable processes shared the cores)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not on Unix
        return float("nan")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def total_ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return float("nan")


def machine_facts() -> dict[str, Any]:
    """What a reader needs to interpret absolute figures."""
    import torch

    from artistsim.runtime import allocator_tuned

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count() or 1
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gb": total_ram_gb(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "malloc_tuned": allocator_tuned(),
        "python": platform.python_version(),
        "load_1min": load_average(),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def peak_rss_mb() -> float:
    """Peak resident set of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def proc_status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmHWM, VmRSS, RssAnon, RssFile) in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


# --------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Timing:
    """Wall and CPU seconds of one measured call, with the load average around it."""

    wall: float
    cpu: float
    load_before: float
    load_after: float

    @property
    def cores_used(self) -> float:
        """CPU-seconds per wall second: ~threads when the cores were ours, less when shared."""
        return self.cpu / self.wall if self.wall > 0 else float("nan")


@contextmanager
def timed() -> Iterator[Timing]:
    """`with timed() as t: ...` fills t.wall / t.cpu (this process, all threads)."""
    t = Timing(0.0, 0.0, load_average(), float("nan"))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        yield t
    finally:
        t.wall = time.perf_counter() - wall0
        t.cpu = time.process_time() - cpu0
        t.load_after = load_average()


def time_call(fn: Callable[[], Any]) -> tuple[Timing, Any]:
    with timed() as t:
        out = fn()
    return t, out


def matmul_rate(size: int = 2048, repeats: int = 3) -> float:
    """FLOP/s of a large square fp32 matmul on this process's threads (best of `repeats`).

    The compute bound of anything matmul-shaped: measured in the same process and run as
    what it is compared with, so a busy machine lowers both alike.
    """
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # first call: thread pool start-up, packing buffers
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class Section:
    """One table of a benchmark, with its target and verdict."""

    heading: str
    table: str  # markdown
    target: str = ""
    met: bool | None = None  # None: no target, or not measurable in this mode
    notes: str = ""
    load: tuple[float, float] | None = None  # load average before / after the table
    command: str = ""  # filled by make_result: the command that produced this table
    date: str = ""


def verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "n/a"}[met]


def render_section(s: Section) -> str:
    lines = [f"#### {s.heading}", ""]
    if s.command:
        lines.append(f"Measured by `{s.command}` on {s.date}.")
        lines.append("")
    if s.target:
        lines.append(f"Target: {s.target} -- {verdict(s.met)}")
        lines.append("")
    lines.append(s.table.rstrip())
    lines.append("")
    if s.load is not None:
        lines.append(f"Load average (1 min) before / after: {s.load[0]:.2f} / {s.load[1]:.2f}")
        lines.append("")
    if s.notes:
        lines.append(s.notes.rstrip())
        lines.append("")
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; floats are expected pre-formatted by the caller."""
    align = align or ("l" + "r" * (len(header) - 1))
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    out = ["| " + " | ".join(str(h) for h in header) + " |",
           "|" + "|".join(marks[a] for a in align) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None or x != x:  # None or NaN
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command a reader can paste to reproduce a table (without --json)."""
    shown = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--json":
            skip = True
            continue
        if a.startswith("--json="):
            continue
        shown.append(a)
    return " ".join(["python", f"benchmarks/{script}", *map(shlex.quote, shown)])


def make_result(name: str, title: str, mode: str, script: str, argv: Sequence[str],
                sections: list[Section], facts: dict[str, Any], extra: dict[str, Any] | None = None) -> dict:
    facts = dict(facts)
    facts["load_1min_end"] = load_average()
    command = command_line(script, argv)
    for s in sections:
        s.command = s.command or command
        s.date = s.date or facts["date"]
    return {
        "name": name,
        "title": title,
        "mode": mode,
        "command": command,
        "machine": facts,
        "sections": [dataclasses.asdict(s) for s in sections],
        "extra": extra or {},
    }


def merge_previous(result: dict, json_path: Path) -> dict:
    """Keep the tables of an earlier run of the same benchmark and mode not re-measured now.

    Tables are matched by heading, so `bench_search.py --full --sizes 41377` refreshes the
    N = 41,377 tables and keeps the N = 200,000 ones (each keeps its own command and date).
    """
    try:
        old = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return result
    if old.get("name") != result["name"] or old.get("mode") != result["mode"]:
        return result
    fresh = {s["heading"] for s in result["sections"]}
    kept = [s for s in old["sections"] if s["heading"] not in fresh]
    order = [s["heading"] for s in old["sections"]]
    merged = kept + result["sections"]
    merged.sort(key=lambda s: order.index(s["heading"]) if s["heading"] in order else len(order))
    return {**result, "sections": merged}


def emit(result: dict, json_path: Path | None, merge: bool = False) -> None:
    """Print the tables (the standalone output) and write the JSON for run_all."""
    print(f"\n## {result['title']} ({result['mode']})\n")
    print(f"command: {result['command']}")
    m = result["machine"]
    print(f"machine: {m['cores']} cores ({m['cpu']}), torch {m['torch']} with {m['torch_threads']} threads, "
          f"load {m['load_1min']} -> {m['load_1min_end']}\n")
    for s in result["sections"]:
        print(render_section(Section(**{**s, "load": tuple(s["load"]) if s["load"] else None})))
    if json_path is not None:
        from artistsim.atomic import atomic_write_text

        if merge:
            result = merge_previous(result, json_path)
        atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")


def base_parser(description: str | None) -> argparse.ArgumentParser:
    """--quick / --full and --json, common to every benchmark."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (the default): a few minutes in all")
    mode.add_argument("--full", action="store_true", help="the sizes the targets are stated for (long)")
    p.add_argument("--json", type=Path, help="also write the result as JSON here (run_all.py uses it)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    return p


def mode_of(args: argparse.Namespace) -> str:
    return "full" if args.full else "quick"


def set_threads(n: int, tune_malloc: bool = True) -> None:
    """Torch's thread count, and the allocator setting of the CLI's looping commands.

    Every benchmark process (children included) calls this first, so the library's code
    and the baselines it is compared with run under the same allocator. Benchmarks of
    one-shot library calls (bench_ann's children) pass tune_malloc=False, as the CLI
    leaves malloc alone outside its looping commands (artistsim.runtime).
    """
    import torch

    from artistsim.runtime import tune_allocator

    if tune_malloc:
        tune_allocator()
    if n:
        torch.set_num_threads(n)


# --------------------------------------------------------------------------- children


def run_child(cmd: list[str], memory_limit_gb: float = 0.0, timeout: float = 3600.0) -> dict:
    """Run a benchmark child in a fresh interpreter; its last stdout line is a JSON dict.

    Why fresh: peak RSS only grows within a process, so every memory figure needs its
    own process. `memory_limit_gb` caps the child's address space, so an oversized case
    fails with an allocation error instead of waking the OOM killer on a shared machine.
    The child's peak RSS is also read from RUSAGE_CHILDREN as a cross-check.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    limit = int(memory_limit_gb * 2**30) if memory_limit_gb > 0 else None

    def cap() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        tail = next((line for line in reversed(err) if line.strip()), f"exit code {proc.returncode}")
        if proc.returncode < 0:
            tail = f"killed by signal {-proc.returncode}; {tail}"
        elif "MemoryError" in proc.stderr or "DefaultCPUAllocator" in proc.stderr:
            tail = f"out of memory under the {memory_limit_gb:g} GB cap ({tail[:160]})"
        return {"error": tail[:300], "wall_total": wall}
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        return {"error": "child printed no result"}
    out = json.loads(lines[-1])
    out.setdefault("child_maxrss_mb", after.ru_maxrss / 1024.0 if after.ru_maxrss > before.ru_maxrss else None)
    out.setdefault("wall_total", wall)
    return out


def child_command(script: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCH_DIR / script), *args]


# --------------------------------------------------------------------------- data


def synth_dataset(preset: str, seed: int = 0, packed: bool = True) -> Path:
    """A synthetic dataset (competition layout) under SCRATCH, made once and reused.

    Made in a temporary folder and renamed when complete, so an interrupted run never
    leaves a half-written dataset that later runs would trust.
    """
    from artistsim.data.synth import generate

    out = SCRATCH / f"{preset}_seed{seed}"
    if not (out / "train_meta.tsv").exists():
        tmp = SCRATCH / f".{preset}_seed{seed}.partial"
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        print(f"[bench] generating synthetic '{preset}' data in {out} (once) ...", file=sys.stderr, flush=True)
        generate(tmp, preset, seed=seed, progress=False)
        tmp.rename(out)
    if packed:
        from artistsim.data.store import pack_split

        for split in ("train", "test"):
            pack_split(out, split, progress=False)
    return out


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)
