"""Quality across synthetic presets and seeds: baselines and trained recipes, mean +- spread.

Why: a recipe tuned on one dataset (`synth --preset demo`) can lose to a linear model on
data of another structure (issue 10). This harness measures, for every preset (the demo
and the nuisance presets; `holdout` is never used for tuning) and a few seeds, the
untrained baselines (mean-pool, LDA) and the recipes given as config files, and prints
nDCG@100 on the validation artists and on the test split as mean +- standard deviation
over seeds, with the margin of each recipe over LDA (paired per seed).

    python benchmarks/bench_quality.py --quick     # demo + albums, one seed, a capped transformer
    python benchmarks/bench_quality.py --full      # all presets, seeds 0 1 2, both demo configs
    python benchmarks/bench_quality.py --full --configs configs/recommended/*.toml
    python benchmarks/bench_quality.py --runs runs.tsv   # already-trained runs, no training
    python benchmarks/bench_quality.py --md-from benchmarks/results/quality.json   # QUALITY.md only

A cell is (preset, data seed, training seed): `--seeds 0 1 2` pairs data seed s with
training seed s (each cell varies both), `--train-seeds` makes the cross product instead.
The training seed replaces the config's `seed` (weights, sampling, and the validation
artists held out), so the spread covers the split as well. Every training and evaluation
runs in its own process with OMP_NUM_THREADS=1, at most `--jobs` (default 2) at once.

A run list (`--runs FILE`) is a tab-separated file with a header `preset  data_seed
train_seed  run` (optional column `data_dir`, else the harness's own dataset for that
preset and data seed); rows sharing (preset, data_seed, train_seed) are evaluated
together, as an ensemble, exactly like trained ones. A cell whose runs all exist already
keeps its evaluation (`evaluate.json` beside the runs), so adding a seed costs that seed.

Writes the JSON result (`--json`, for run_all.py) and, unless `--no-md`, QUALITY.md (full
mode; QUALITY_quick.md under benchmarks/results/quick in quick mode) from it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks import common as C
from benchmarks import recipes as R
from benchmarks.recipes import ADDON_STEPS

HELD_OUT = R.HELD_OUT  # the presets never used for tuning
ALL_PRESETS = ("demo", "albums", "genres", "mixed", *HELD_OUT)
NOTES = "quality_notes_*.md"  # measured sections written by hand (benchmarks/results/), appended to the quality page
DEMO_CONFIGS = ("transformer_demo.toml", "conformer_demo.toml")
QUALITY_MD = C.ROOT / "QUALITY.md"


# --------------------------------------------------------------------------- cells


def plan_cells(args: argparse.Namespace) -> list[dict]:
    """(preset, data seed, training seed) cells, each with its data folder and runs."""
    if args.runs:
        return cells_from_run_list(Path(args.runs))
    pairs = ([(s, t) for s in args.seeds for t in args.train_seeds] if args.train_seeds
             else [(s, s) for s in args.seeds])
    root = C.SCRATCH / "quality"
    cells = []
    for preset in args.presets:
        for data_seed, train_seed in pairs:
            run_root = root / ("quick" if args.quick else "full") / f"{preset}_d{data_seed}_t{train_seed}"
            runs = [{"config": str(R.config_path(c)), "out": str(run_root / Path(c).stem)} for c in args.configs]
            cells.append({"preset": preset, "data_seed": data_seed, "train_seed": train_seed,
                          "data": None, "runs": runs})
    return cells


def cells_from_run_list(path: Path) -> list[dict]:
    """Cells of already-trained runs from a TSV (`preset data_seed train_seed run [data_dir]`)."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    cells: dict[tuple, dict] = {}
    for i, row in enumerate(rows, start=2):
        try:
            key = (row["preset"], int(row["data_seed"]), int(row.get("train_seed") or 0))
            run = row["run"]
        except (KeyError, ValueError, TypeError) as exc:
            raise SystemExit(f"{path}:{i}: need columns preset, data_seed, train_seed, run ({exc})") from None
        cell = cells.setdefault(key, {"preset": key[0], "data_seed": key[1], "train_seed": key[2],
                                      "data": row.get("data_dir") or None, "runs": []})
        cell["runs"].append({"config": None, "out": run})
    return list(cells.values())


def dataset(preset: str, seed: int) -> Path:
    """The harness's dataset of (preset, seed), generated and packed once under SCRATCH."""
    return C.synth_dataset(preset, seed=seed, packed=True)


def run_cells(cells: list[dict], jobs: int, max_steps: int) -> None:
    """Data (sequential, cheap), then every training, then every evaluation, `jobs` at a time."""
    for cell in cells:
        if cell["data"] is None:
            cell["data"] = str(dataset(cell["preset"], cell["data_seed"]))

    def train_one(cell: dict, run: dict) -> None:
        out = Path(run["out"])
        if (out / "summary.json").exists() or run["config"] is None:
            run["result"] = {"reused": True}
            return
        C.log(f"train {cell['preset']} d{cell['data_seed']} t{cell['train_seed']} {out.name}")
        run["result"] = R.run_recipe_child(["--child-train", cell["data"], run["config"], str(out),
                                    str(cell["train_seed"]), str(max_steps)], out.parent / f"{out.name}.log")
        if "error" not in run["result"]:
            (out / "summary.json").write_text(json.dumps(run["result"]))

    def evaluate_one(cell: dict) -> None:
        failed = [r["result"]["error"] for r in cell["runs"] if "error" in r.get("result", {})]
        if failed:
            cell["table"] = {"error": failed[0]}
            return
        cell_dir = Path(cell["runs"][0]["out"]).parent
        # a cell of the harness's own runs, all reused, keeps its table (never a run list's)
        own = all(r["config"] is not None for r in cell["runs"])
        cache = cell_dir / "evaluate.json"
        key = [r["out"] for r in cell["runs"]]
        if own and all(r.get("result", {}).get("reused") for r in cell["runs"]) and cache.exists():
            cached = json.loads(cache.read_text())
            if cached.get("runs") == key and not cached["table"].get("error") and "addons" in cached["table"]:
                cell["table"] = cached["table"]
                return
        C.log(f"evaluate {cell['preset']} d{cell['data_seed']} t{cell['train_seed']}")
        cell["table"] = R.run_recipe_child(["--child-evaluate", cell["data"], *key], cell_dir / "evaluate.log")
        if own and "error" not in cell["table"]:
            cache.write_text(json.dumps({"runs": key, "table": cell["table"]}))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda cr: train_one(*cr), [(c, r) for c in cells for r in c["runs"]]))
        list(pool.map(evaluate_one, cells))


# --------------------------------------------------------------------------- tables


def _stat(values: list[float]) -> str:
    if not values:
        return "-"
    v = np.asarray(values)
    if len(v) == 1:
        return f"{v[0]:.4f}"
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}"


def _per_seed(values: list[float]) -> str:
    """Each seed's value, for a margin whose sign per seed matters (the +0.05 goal)."""
    return " (per seed " + ", ".join(f"{v:+.3f}" for v in values) + ")" if len(values) > 1 else ""


def _label(preset: str) -> str:
    return f"**{preset}** (held back: never tuned on)" if preset in HELD_OUT else preset


def recipe_row(rows: dict) -> str | None:
    """The trained system a user gets: the ensemble when there is one, else the single run."""
    if "ensemble" in rows:
        return "ensemble"
    trained = [name for name in rows if not name.startswith("baseline")]
    return trained[0] if trained else None


def summarise(cells: list[dict]) -> dict:
    """Per preset: every row x column as a list over seeds, and the paired margins over LDA."""
    out: dict[str, dict] = {}
    for cell in cells:
        table = cell.get("table", {})
        p = out.setdefault(cell["preset"], {"cells": [], "columns": [], "values": {}, "margins": {}, "errors": [],
                                            "addons": {}, "addon_margins": {}, "settings": {}})
        if "error" in table:
            p["errors"].append(table["error"])
            continue
        p["cells"].append([cell["data_seed"], cell["train_seed"]])
        for col in table["columns"]:
            if col not in p["columns"]:
                p["columns"].append(col)
        lda = table["rows"].get("baseline: lda", {})
        for name, vals in table["rows"].items():
            if name.startswith(("baseline: lda tuned", "baseline: wccn tuned")):  # named with the setting per seed
                name = name.split(" (", 1)[0] + " on validation"
            for col, v in vals.items():
                p["values"].setdefault(name, {}).setdefault(col, []).append(v)
                if not name.startswith("baseline") and col in lda:
                    p["margins"].setdefault(name, {}).setdefault(col, []).append(v - lda[col])
        p["recipe"] = recipe_row(table["rows"])
        for step, vals in table.get("addons", {}).items():
            for col, v in vals.items():
                p["addons"].setdefault(step, {}).setdefault(col, []).append(v)
                if f"{col} plain" in lda:
                    p["addon_margins"].setdefault(step, {}).setdefault(col, []).append(v - lda[f"{col} plain"])
        for step, chosen in table.get("settings", {}).items():
            p["settings"].setdefault(step, []).append(chosen)
    return out


def sections(summary: dict) -> list[C.Section]:
    """One headline table (test split, recipe vs LDA) and one full table per preset."""
    head_rows = []
    for preset, p in summary.items():
        rec = p.get("recipe")
        if rec is None:
            head_rows.append([_label(preset), len(p["cells"]), "-", "-", "-", "-", "-", "-",
                              "; ".join(p["errors"])[:80]])
            continue
        v, m = p["values"], p["margins"].get(rec, {})
        full = p["addons"].get(ADDON_STEPS[-1], {})
        full_margin = p["addon_margins"].get(ADDON_STEPS[-1], {})
        head_rows.append([_label(preset), len(p["cells"]),
                          _stat(v["baseline: meanpool"].get("test plain", [])),
                          _stat(v["baseline: lda"].get("test plain", [])),
                          _stat(v[rec].get("test plain", [])) + " / " + _stat(v[rec].get("test rerank", [])),
                          _stat(m.get("test plain", [])) + " / " + _stat(m.get("test rerank", [])),
                          _stat(full.get("test", [])), _stat(full_margin.get("test", [])) + _per_seed(full_margin.get("test", [])),
                          rec])
    out = [C.Section(
        heading="Test nDCG@100 per preset: the trained recipe against LDA",
        table=C.markdown_table(["preset", "seeds", "mean-pool", "LDA", "recipe plain / rerank",
                                "margin over LDA (paired) plain / rerank", "recipe + add-ons",
                                "margin over LDA (paired), + add-ons", "recipe"], head_rows, "lrrrrrrrl"),
        notes="Mean ± standard deviation over the seeds (cells of data seed, training seed). "
              "The margin is the recipe minus LDA within each seed, then averaged. `recipe + add-ons` is "
              "the pipeline `predict` applies: the inference add-ons chosen on validation by `evaluate` "
              "(LDA fusion, AS-norm, weighted query expansion, rerank threshold; each kept only when it "
              "raised validation nDCG@100), per preset below. "
              + " and ".join(f"`{h}`" for h in HELD_OUT) + " were never used to tune a generator knob or a method.")]
    for preset, p in summary.items():
        if not p["values"]:
            continue
        cols = p["columns"]
        rows = [[name] + [_stat(vals.get(c, [])) for c in cols] for name, vals in p["values"].items()]
        rows += [[f"{name} − LDA"] + [_stat(vals.get(c, [])) for c in cols] for name, vals in p["margins"].items()]
        cells = ", ".join(f"d{d}/t{t}" for d, t in p["cells"])
        out.append(C.Section(heading=f"{_label(preset)}: every row (seeds {cells})",
                             table=C.markdown_table(["model", *cols], rows, "l" + "r" * len(cols)),
                             notes="; ".join(p["errors"])))
        if p["addons"]:
            out.append(addon_section(preset, p, cells))
    return out


def addon_section(preset: str, p: dict, cells: str) -> C.Section:
    """The recommended pipeline step by step: each inference add-on on top of the previous."""
    rows = []
    for step in ADDON_STEPS:
        if step not in p["addons"]:
            continue
        vals, margins = p["addons"][step], p["addon_margins"].get(step, {})
        chosen = p["settings"].get(step, [])
        rows.append([f"{p['recipe']} {step}" if step == "plain" else step,
                     _stat(vals.get("validation", [])), _stat(vals.get("test", [])),
                     _stat(margins.get("test", [])), ", ".join(chosen) or "-"])
    return C.Section(
        heading=f"{_label(preset)}: the recommended pipeline, inference add-ons (seeds {cells})",
        table=C.markdown_table(["step (cumulative)", "validation", "test", "test − LDA (paired)",
                                "setting chosen on validation, per seed"], rows, "lrrrl"),
        notes="Each step adds one inference add-on to the rows above it, with the setting `evaluate` "
              "chose on the validation artists of that seed ('off' = it did not raise validation nDCG@100 "
              "and is skipped). The last row is what `predict --run A --run B` gives.")


def write_quality_md(result: dict, path: Path) -> None:
    from artistsim.atomic import atomic_write_text

    m = result["machine"]
    parts = ["# Quality across synthetic presets", "",
             f"Generated by `{result['command']}` (benchmarks/bench_quality.py) on {m['date']}: "
             "edit the script, not this file.", "",
             f"Machine: {m['cores']} cores ({m['cpu']}); every job with OMP_NUM_THREADS=1; "
             f"load average {m['load_1min']} at start, {m['load_1min_end']} at end.", "",
             "nDCG@100 with the competition's semantics; `validation` = the artists each run held out "
             "of the train split, `test` = the preset's test split. Presets: `demo` (the calibrated "
             "demo data), `albums`, `genres`, `mixed` (the nuisance of real catalogues: see "
             "`artistsim.synth.nuisance`), and `holdout` and `holdout_wide`, of two other structures, "
             "**never used for tuning**.", "",
             "Recipes: " + ", ".join(f"`{c}`" for c in result["extra"].get("configs", [])) + " (with more than "
             "one, `recipe` is their ensemble). Every figure is mean ± standard deviation over the seeds: "
             "read no difference smaller than about two of those as a gain.", ""]
    for s in result["sections"]:
        parts.append(C.render_section(C.stored_section(s)))
    for earlier in result["extra"].get("also", []):  # other recipes' results, kept beside this one
        other = json.loads((C.ROOT / earlier).read_text())
        parts += [f"## Also measured: recipes {', '.join(f'`{c}`' for c in other['extra'].get('configs', []))}", "",
                  f"From `{earlier}` (`{other['command']}`, {other['machine']['date']}).", ""]
        for s in other["sections"]:
            parts.append(C.render_section(C.stored_section(s)))
    for notes in sorted((C.ROOT / "benchmarks" / "results").glob(NOTES)):  # hand-written measurements, kept
        parts += [notes.read_text().rstrip(), ""]
    atomic_write_text(path, "\n".join(parts).rstrip() + "\n")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = C.base_parser(__doc__)
    p.add_argument("--presets", nargs="+", default=None, help=f"default: quick demo albums; full {ALL_PRESETS}")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="data seeds (default: quick 0; full 0 1 2)")
    p.add_argument("--train-seeds", nargs="+", type=int, default=None,
                   help="training seeds crossed with the data seeds (default: paired, training seed = data seed)")
    p.add_argument("--configs", nargs="+", default=None,
                   help="train configs (paths or packaged names); default: the demo configs (quick: transformer)")
    p.add_argument("--runs", help="TSV of already-trained runs (preset, data_seed, train_seed, run[, data_dir])")
    p.add_argument("--jobs", type=int, default=2, help="concurrent child processes (each one thread)")
    p.add_argument("--max-steps", type=int, default=None, help="cap batches per epoch (quick default: 4)")
    p.add_argument("--no-md", action="store_true", help="do not write QUALITY.md")
    p.add_argument("--md-from", type=Path, help="only write QUALITY.md from this JSON result, run nothing")
    p.add_argument("--also", nargs="+", default=[],
                   help="earlier results (JSON, relative to the repository) shown after this one in QUALITY.md")
    args = p.parse_args(argv)
    if args.md_from:
        write_quality_md(json.loads(args.md_from.read_text()), QUALITY_MD)
        print(f"wrote {QUALITY_MD}")
        return 0
    mode = C.mode_of(args)
    args.quick = mode == "quick"
    args.presets = args.presets or (["demo", "albums"] if args.quick else list(ALL_PRESETS))
    args.seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    args.configs = args.configs or ([DEMO_CONFIGS[0]] if args.quick else list(DEMO_CONFIGS))
    max_steps = args.max_steps if args.max_steps is not None else (4 if args.quick else 0)
    C.set_threads(1)
    facts = C.machine_facts()
    cells = plan_cells(args)
    load0 = C.load_average()
    t0, c0 = time.perf_counter(), time.process_time()
    run_cells(cells, args.jobs, max_steps)
    summary = summarise(cells)
    secs = sections(summary)
    secs[0].load = (load0, C.load_average())
    secs[0].notes += (f" Whole run: {time.perf_counter() - t0:.0f} s wall"
                      + (f"; training capped at {max_steps} batches an epoch (machinery check, not quality)."
                         if max_steps else "."))
    facts["dataset"] = "synthetic presets " + ", ".join(args.presets)
    result = C.make_result("quality", "Quality across synthetic presets", mode, "bench_quality.py", argv, secs,
                           facts, extra={"summary": summary, "configs": args.configs, "also": args.also,
                                         "cells": [{k: c[k] for k in ("preset", "data_seed", "train_seed", "table")
                                                    if k in c} for c in cells]})
    C.emit(result, args.json)
    if not args.no_md:
        md = QUALITY_MD if mode == "full" else C.BENCH_DIR / "results" / "quick" / "QUALITY_quick.md"
        md.parent.mkdir(parents=True, exist_ok=True)
        write_quality_md(result, md)
        print(f"wrote {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
