"""bench_networks' tables from its per-seed rows: targets, members, larger ensembles, cost.

Kept apart from the runner so `benchmarks.report` can re-render docs/quality.md from
benchmarks/results/networks.json without importing the training machinery, and so the
arithmetic (paired margins, mean ± sd over seeds) is tested on rows made by hand.
"""

from __future__ import annotations

import numpy as np

from benchmarks import common as C

# The default recipe's members (configs/recommended/), decided by these tables (docs/networks.md).
RECIPE = ("transformer",)
HELD_BACK = ("holdout", "holdout_wide", "holdout_8k")
NETWORKS_TARGET, NETWORKS_GOAL = 0.0, 0.03  # networks alone minus the tuned LDA
PIPELINE_TARGET, PIPELINE_GOAL = 0.05, 0.08  # the whole pipeline minus the tuned LDA
COST_TARGET_MIN, COST_TRACKS = 10.0, 8000  # CPU-minutes a member may take at about this many training tracks


def mean_sd(values: list[float], digits: int = 4, sign: bool = False) -> str:
    """`m ± sd` over seeds (sample sd), or the single value; '-' for none."""
    if not values:
        return "-"
    v = np.asarray(values, dtype=float)
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    return f.format(v.mean()) if len(v) == 1 else f"{f.format(v.mean())} ± {v.std(ddof=1):.{digits}f}"


def label(preset: str) -> str:
    return f"**{preset}** (held back)" if preset in HELD_BACK else f"{preset} (the project's own)"


def _margins(rows: list[dict], key: str) -> list[float]:
    """`key`'s test nDCG@100 minus the tuned LDA of the same seed, per row."""
    return [r[key]["test"] - r["lda_tuned"]["test"] for r in rows]


def _by_preset(rows: list[dict], members: tuple[str, ...] | None) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        if members is None or tuple(r["members"]) == members:
            out.setdefault(r["preset"], []).append(r)
    return out


def targets_section(rows: list[dict], recipe: tuple[str, ...] = RECIPE) -> C.Section:
    """The issue's two quality targets for the default recipe, per preset, mean ± sd over seeds."""
    table, met = [], []
    for preset, rs in _by_preset(rows, recipe).items():
        nets, pipe = _margins(rs, "networks"), _margins(rs, "pipeline")
        ok = bool(np.mean(nets) >= NETWORKS_TARGET and np.mean(pipe) >= PIPELINE_TARGET)
        met.append(ok)
        table.append([label(preset), ", ".join(str(r["seed"]) for r in rs), mean_sd([r["fit_tracks"] for r in rs], 0),
                      mean_sd([r["lda"]["test"] for r in rs]), mean_sd([r["lda_tuned"]["test"] for r in rs]),
                      mean_sd([r["networks"]["test"] for r in rs]), mean_sd(nets, 3, True),
                      mean_sd([r["pipeline"]["test"] for r in rs]), mean_sd(pipe, 3, True), C.verdict(ok)])
    return C.Section(
        heading=f"Targets: the default recipe ({' + '.join(recipe)}) against the tuned LDA, test nDCG@100",
        table=C.markdown_table(["preset", "seeds", "training tracks", "LDA", "tuned LDA", "networks alone",
                                "networks − tuned LDA", "whole pipeline", "pipeline − tuned LDA", "both targets"],
                               table, "llrrrrrrrl"),
        target=f"networks alone ≥ tuned LDA (goal +{NETWORKS_GOAL}) and whole pipeline ≥ tuned LDA "
               f"+ {PIPELINE_TARGET} (goal +{PIPELINE_GOAL}) on every preset",
        met=all(met) if met else None,
        notes="Mean ± sd over the seeds (data seed = training seed, which also draws the validation artists). "
              "Margins are taken within each seed, then averaged. `networks alone` is the trained members' "
              "ensemble, with weights chosen on validation when there is more than one, and no LDA fusion "
              "or AS-norm. `whole pipeline` adds every inference add-on `evaluate` chose on validation "
              "(LDA fusion, AS-norm, query expansion, rerank), as `predict` applies them. `tuned LDA` "
              "has its shrinkage and directions chosen on the same validation artists. The presets marked "
              "held back were never used to tune a generator knob, a method or a config. `demo` is the "
              "project's own: the recipes were designed on it. `training tracks` counts the train split "
              "minus the validation artists.")


def members_section(rows: list[dict]) -> C.Section:
    """Each member alone and its training cost, once per (preset, seed, member)."""
    seen: dict[tuple[str, str], dict[int, tuple[dict, dict]]] = {}
    for r in rows:
        for m, vals in r["member"].items():
            seen.setdefault((r["preset"], m), {})[r["seed"]] = (vals, r)
    table, at_8k = [], []
    for (preset, member), by_seed in seen.items():
        vals = [v for v, _ in by_seed.values()]
        tracks = [r["fit_tracks"] for _, r in by_seed.values()]
        minutes = [v["cpu_s"] / 60 for v in vals]
        if member in RECIPE and np.mean(tracks) >= 0.9 * COST_TRACKS:
            at_8k.extend(minutes)
        table.append([label(preset), member, ", ".join(str(s) for s in by_seed), mean_sd(tracks, 0),
                      mean_sd([v["test"] for v in vals]),
                      mean_sd([v["test"] - r["lda_tuned"]["test"] for v, r in by_seed.values()], 3, True),
                      mean_sd(minutes, 1), mean_sd([v["epochs"] for v in vals], 0)])
    return C.Section(
        heading="Each member alone: test nDCG@100 and training cost",
        table=C.markdown_table(["preset", "member", "seeds", "training tracks", "test", "− tuned LDA",
                                "training CPU-minutes", "epochs"], table, "lllrrrrr"),
        target=f"each member of the default recipe trains in ≤ {COST_TARGET_MIN:g} CPU-minutes at "
               f"~{COST_TRACKS:,} training tracks",
        met=bool(max(at_8k) <= COST_TARGET_MIN) if at_8k else None,
        notes="CPU-minutes are user + system CPU time of the training process (OMP_NUM_THREADS=1, the "
              "full curriculum of `configs/recommended/MEMBER.toml`, one training at a time on the "
              "shared 2-core machine; other workers' jobs ran beside it). Epochs count every curriculum "
              "stage. `rflda` is fitted in closed form (one record, no epochs). `holdout_8k` is `holdout` with "
              "1,200 training artists instead of 400 (fixed before any model ran on it).")


def ensembles_section(rows: list[dict], recipe: tuple[str, ...] = RECIPE) -> C.Section | None:
    """Cells with more members than the default recipe, against the recipe in the same seed."""
    base = {(r["preset"], r["seed"]): r for r in rows if tuple(r["members"]) == recipe}
    table = []
    for r in rows:
        if tuple(r["members"]) == recipe:
            continue
        ref = base.get((r["preset"], r["seed"]))
        diff = (lambda k: f"{r[k]['test'] - ref[k]['test']:+.3f}") if ref else (lambda k: "-")
        table.append([label(r["preset"]), r["seed"], " + ".join(r["members"]),
                      f"{r['networks']['test']:.4f}", f"{_margins([r], 'networks')[0]:+.3f}", diff("networks"),
                      f"{r['pipeline']['test']:.4f}", f"{_margins([r], 'pipeline')[0]:+.3f}", diff("pipeline"),
                      ", ".join(f"{k} {v}" for k, v in r["settings"].items()) or "-"])
    if not table:
        return None
    return C.Section(
        heading="Larger ensembles against the default recipe, same seed, test nDCG@100",
        table=C.markdown_table(["preset", "seed", "members", "networks alone", "− tuned LDA",
                                f"− {' + '.join(recipe)}", "whole pipeline", "− tuned LDA",
                                f"− {' + '.join(recipe)}", "settings chosen on validation"], table, "lrlrrrrrrl"),
        notes="A member stays in the default recipe only if adding it raises the held-back presets' figures "
              "by more than the seed-to-seed spread for its cost (docs/networks.md).")


def rows_sections(rows: list[dict], quick: bool = False) -> list[C.Section]:
    """Every table of the results file, the targets first."""
    out = [targets_section(rows), members_section(rows)]
    extra = ensembles_section(rows)
    if extra is not None:
        out.append(extra)
    if quick:
        out[0].notes += " Quick mode: 2 batches an epoch, a check of the machinery, not of quality."
    commands = sorted({r.get("command", "") for r in rows} - {""})
    if commands:
        out[0].notes += " Rows measured by: " + "; ".join(f"`{c}`" for c in commands) + "."
    loads = [r["load_1min"] for r in rows if "load_1min" in r]
    if loads:
        out[0].notes += f" Load average (1 min) when each cell ended: {min(loads):.1f} to {max(loads):.1f}."
    return out
