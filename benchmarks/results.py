"""A benchmark's result: markdown tables with their target, verdict, command and date.

A result is a dict: name, title, mode, command, machine facts, and sections, each with a
markdown table, the target, whether it is met, and notes. Every script prints it and
writes it as JSON (`--json PATH`); `benchmarks.report` renders the docs pages from
those files, so no figure in the docs is copied by hand.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.machine import load_average


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


def stored_section(s: dict) -> Section:
    """A section read back from a results file (JSON stores the load pair as a list)."""
    return Section(**{**s, "load": tuple(s["load"]) if s.get("load") else None})


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
    return " ".join(["python", "-m", f"benchmarks.{Path(script).stem}", *map(shlex.quote, shown)])


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
        print(render_section(stored_section(s)))
    if json_path is not None:
        from artistsim.atomic import atomic_write_text

        if merge:
            result = merge_previous(result, json_path)
        atomic_write_text(json_path, json.dumps(result, indent=2) + "\n")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)
