"""Training and evaluating recipes in child processes, shared by bench_quality and bench_networks.

Why children: every training and evaluation runs in a fresh interpreter with
OMP_NUM_THREADS=1, so its CPU-seconds are its own and a crash leaves its log instead of
taking the harness down. A child is this module again (`python -m benchmarks.recipes
--child-train ...`); its last stdout line is JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import SRC

HELD_OUT = ("holdout", "holdout_wide")  # the generator's presets never used for tuning
# evaluate's inference add-ons, cumulative, in its order
ADDON_STEPS = ("plain", "+ ensemble weights", "+ LDA fusion", "+ AS-norm", "+ weighted query expansion", "+ rerank")


def child_train(data: str, config: str, out: str, seed: int, max_steps: int) -> None:
    """Train one run (in a child process): the config with its seed replaced; print wall and CPU seconds."""
    import dataclasses

    import torch

    from artistsim.config import load_train_config
    from artistsim.training.dispatch import train

    torch.set_num_threads(1)
    cfg = dataclasses.replace(load_train_config(config), seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    train(data, cfg, out, device="cpu", progress=False, log=lambda _m: None,
          max_steps=max_steps or None)
    print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}))


def child_evaluate(data: str, runs: list[str]) -> None:
    """Evaluate runs together (each, ensemble, baselines) in a child; print the table as JSON."""
    import torch

    from artistsim.evaluation.report import evaluate

    torch.set_num_threads(1)
    table = evaluate(data, runs, torch.device("cpu"), progress=False)
    addons, settings = addon_rows(table)
    print(json.dumps({"columns": table.columns, "rows": table.rows, "addons": addons, "settings": settings}))


def addon_rows(table) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """evaluate's inference add-on section under names that do not change across seeds.

    evaluate names each step with the setting it chose ("+ AS-norm (cohort top-k 100)");
    here the step is the key ("+ AS-norm") and the setting is kept beside it, so the
    steps of several seeds line up. The steps are cumulative, in evaluate's order.
    """
    section = next((t for title, t in table.sections.items() if title.startswith("Inference add-ons")), None)
    addons: dict[str, dict[str, float]] = {}
    settings: dict[str, str] = {}
    for name, vals in (section.rows.items() if section is not None else ()):
        step = "plain" if name.endswith(" plain") else name.split(" (", 1)[0]
        if step not in ADDON_STEPS:
            continue
        addons[step] = dict(vals)
        if "(" in name:
            settings[step] = name.split(" (", 1)[1].rstrip(")")
    return addons, settings


def child_env() -> dict[str, str]:
    """One thread per child; this checkout's artistsim first."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_recipe_child(args: list[str], log_path: Path) -> dict:
    """This module as a child (`--child-train ...` or `--child-evaluate ...`); errors keep their log."""
    cmd = [sys.executable, "-m", "benchmarks.recipes", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(proc.stdout + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{' '.join(args[:2])}: {tail[:200]} (log: {log_path})"}
    return json.loads(lines[-1])


def config_path(name: str) -> Path:
    """A config given as a path, or by its name among the packaged configs."""
    from artistsim.config import packaged_config

    path = Path(name)
    return path if path.exists() else packaged_config(name)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child-train":
        child_train(argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]))
        return 0
    if argv and argv[0] == "--child-evaluate":
        child_evaluate(argv[1], argv[2:])
        return 0
    print("usage: python -m benchmarks.recipes --child-train DATA CONFIG OUT SEED MAX_STEPS | "
          "--child-evaluate DATA RUN...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
