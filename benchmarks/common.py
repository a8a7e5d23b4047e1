"""The benchmarks' shared plumbing under one name: `from benchmarks import common as C`.

Each helper has one home, a module per concern (see benchmarks/__init__.py); this module
only gathers them, so a script reads `C.timed()`, `C.markdown_table(...)` without
importing six modules.
"""

from __future__ import annotations

from benchmarks import BENCH_DIR, ROOT, SRC
from benchmarks.children import child_command, run_child
from benchmarks.cli import base_parser, mode_of
from benchmarks.datasets import SCRATCH, synth_dataset
from benchmarks.machine import (
    cpu_model,
    load_average,
    machine_facts,
    peak_rss_mb,
    proc_status_mb,
    set_threads,
    total_ram_gb,
)
from benchmarks.results import (
    Section,
    command_line,
    emit,
    fmt,
    log,
    make_result,
    markdown_table,
    merge_previous,
    render_section,
    stored_section,
    verdict,
)
from benchmarks.timing import Timing, matmul_rate, time_call, timed

__all__ = [
    "BENCH_DIR", "ROOT", "SCRATCH", "SRC", "Section", "Timing", "base_parser", "child_command", "command_line",
    "cpu_model", "emit", "fmt", "load_average", "log", "machine_facts", "make_result", "markdown_table",
    "matmul_rate", "merge_previous", "mode_of", "peak_rss_mb", "proc_status_mb", "render_section", "run_child",
    "set_threads", "stored_section", "synth_dataset", "time_call", "timed", "total_ram_gb", "verdict",
]
