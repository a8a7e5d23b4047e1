"""The benchmarks: speed, memory and quality against baselines measured in the same run.

Run each as a module from the repository root: `python -m benchmarks.bench_search
--quick`, `python -m benchmarks.run_all --full --only search`. They import artistsim's
public API only (tests/test_architecture.py checks it) and share their plumbing through
one small module per concern: `machine` (facts about the machine and process), `timing`
(timers, the matmul rate), `results` (tables, result files), `cli` (the common options),
`children` (fresh interpreters for memory figures), `datasets` (synthetic data in the
scratch folder), `flops` (analytic model FLOPs); `common` gathers them under one name
for the scripts, `report` renders docs/benchmarks.md and docs/quality.md.

Why the environment is set here: benchmarks measure memory and crashes in fresh
interpreters (their own script again, or `python -m artistsim`). Those children must
import this checkout's `artistsim` and `benchmarks`, whatever the parent's working
directory, so importing the package puts both on PYTHONPATH for every child it starts;
the parent's own sys.path is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
BENCH_DIR = Path(__file__).resolve().parent

_inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(SRC), str(ROOT), *_inherited]))
