"""bench_networks' arithmetic on rows made by hand: what it reads from `evaluate`, paired margins, merging.

The benchmark itself trains for minutes (benchmarks/, not CI); these checks keep the
tables it writes into docs/quality.md honest: the margin is taken within each seed, the
networks alone never include the LDA fusion, and a re-measured cell replaces its old row.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_networks import cell_row, merge_rows
from benchmarks.network_tables import ensembles_section, members_section, targets_section


def _table(members: list[str], nets: float, lda_tuned: float) -> dict:
    """A child_evaluate result: rows per run and baselines, add-on steps with their settings."""
    rows = {m: {"validation plain": 0.7, "test plain": 0.6 + i / 100} for i, m in enumerate(members)}
    if len(members) > 1:
        rows["ensemble"] = {"validation plain": 0.72, "test plain": 0.61}
    rows |= {"baseline: meanpool": {"validation plain": 0.3, "test plain": 0.2},
             "baseline: lda": {"validation plain": 0.5, "test plain": 0.45},
             "baseline: lda tuned (shrinkage 0.1, 64 directions)": {"validation plain": 0.66, "test plain": lda_tuned}}
    addons = {"plain": {"validation": 0.7, "test": 0.6}}
    if len(members) > 1:
        addons["+ ensemble weights"] = {"validation": 0.75, "test": nets}
    addons |= {"+ LDA fusion": {"validation": 0.8, "test": 0.7}, "+ rerank": {"validation": 0.81, "test": 0.72}}
    return {"rows": rows, "addons": addons, "settings": {"+ LDA fusion": "weight 0.5"}}


def _costs(members: list[str]) -> dict:
    return {m: {"cpu_s": 120.0, "wall_s": 150.0, "epochs": 20} for m in members}


def test_cell_row_reads_networks_alone_without_the_lda_fusion():
    one = cell_row("holdout", 0, ["transformer"], _table(["transformer"], 0.0, 0.63), _costs(["transformer"]), (3000, 2700))
    assert one["networks"]["test"] == 0.6  # one member: its plain row, no weights to choose
    assert one["pipeline"]["test"] == 0.72  # the last add-on step evaluate took
    assert one["lda_tuned"] == {"validation": 0.66, "test": 0.63, "setting": "shrinkage 0.1, 64 directions"}
    assert one["held_back"] and one["fit_tracks"] == 2700
    two = cell_row("demo", 1, ["transformer", "rflda"], _table(["transformer", "rflda"], 0.65, 0.5),
                   _costs(["transformer", "rflda"]), (3000, 2700))
    assert two["networks"]["test"] == 0.65  # the ensemble with weights chosen on validation
    assert two["member"]["rflda"]["test"] == 0.61 and not two["held_back"]


def _row(preset: str, seed: int, nets: float, pipe: float, tuned: float, members=("transformer",)) -> dict:
    return {"preset": preset, "seed": seed, "members": list(members), "fit_tracks": 2700,
            "lda": {"test": 0.4}, "lda_tuned": {"test": tuned}, "networks": {"test": nets},
            "pipeline": {"test": pipe}, "settings": {},
            "member": {m: {"test": nets, "cpu_s": 90.0, "epochs": 30} for m in members}}


def test_targets_pair_the_margin_within_each_seed():
    # the tuned LDA moves with the seed; the margins are taken before averaging
    rows = [_row("holdout", 0, 0.70, 0.75, 0.65), _row("holdout", 1, 0.60, 0.67, 0.53)]
    section = targets_section(rows)
    line = next(x for x in section.table.splitlines() if "holdout" in x)
    assert "+0.060 ± 0.014" in line  # networks − tuned LDA: 0.05 and 0.07
    assert "+0.120 ± 0.028" in line  # pipeline − tuned LDA: 0.10 and 0.14
    assert section.met is True


def test_targets_not_met_when_one_preset_misses_the_pipeline_margin():
    rows = [_row("holdout", 0, 0.70, 0.75, 0.65), _row("demo", 0, 0.66, 0.68, 0.65)]  # demo: +0.03 < +0.05
    section = targets_section(rows)
    assert section.met is False
    assert "**not met**" in next(x for x in section.table.splitlines() if x.startswith("| demo"))


def test_only_the_default_recipe_enters_the_targets_and_larger_sets_are_compared_in_seed():
    rows = [_row("holdout", 0, 0.70, 0.75, 0.65), _row("holdout", 0, 0.72, 0.74, 0.65, ("transformer", "conformer"))]
    assert "0.7200" not in targets_section(rows).table
    extra = ensembles_section(rows)
    line = next(x for x in extra.table.splitlines() if "conformer" in x)
    assert "+0.020" in line and "-0.010" in line  # networks and pipeline against transformer alone, seed 0


def test_cost_target_reads_the_8k_rows_only():
    rows = [_row("holdout", 0, 0.7, 0.75, 0.65)]
    assert members_section(rows).met is None  # no row near 8k training tracks: not measured
    big = {**_row("holdout_8k", 0, 0.7, 0.75, 0.65), "fit_tracks": 7900}
    big["member"]["transformer"]["cpu_s"] = 11 * 60.0
    assert members_section(rows + [big]).met is False


def test_merge_rows_replaces_a_measured_cell_and_keeps_the_rest():
    old = [_row("holdout", 0, 0.1, 0.1, 0.1), _row("holdout", 1, 0.2, 0.2, 0.2)]
    new = [_row("holdout", 0, 0.3, 0.3, 0.3), _row("holdout", 0, 0.4, 0.4, 0.4, ("transformer", "rflda"))]
    merged = merge_rows(old, new)
    assert [(r["seed"], r["networks"]["test"]) for r in merged] == [(0, 0.3), (1, 0.2), (0, 0.4)]


@pytest.mark.parametrize("members", [["transformer"], ["transformer", "rflda"]])
def test_every_member_gets_its_cost(members):
    row = cell_row("holdout_wide", 2, members, _table(members, 0.66, 0.6), _costs(members), (3100, 2800))
    assert set(row["member"]) == set(members)
    assert all(v["cpu_s"] == 120.0 and v["epochs"] == 20 for v in row["member"].values())
