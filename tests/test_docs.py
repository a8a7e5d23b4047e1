"""The documentation site builds with no broken link, anchor or nav entry.

Why a test: docs/ pages link to each other and to generated tables (docs/benchmarks.md,
docs/quality.md); a renamed heading or a moved page breaks a link silently on GitHub.
`mkdocs build --strict` turns every such warning into a failure, so CI catches it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the dev extra (make setup installs it)")
    pytest.importorskip("material", reason="mkdocs-material is in the dev extra")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "experiments" / "index.html").exists()


def test_every_docs_page_is_in_the_nav():
    """A page outside the nav is unreachable from the site's menu; mkdocs only logs it."""
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with mkdocs (the dev extra)")

    def pages_of(nav: list) -> set[str]:
        out: set[str] = set()
        for entry in nav:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            out |= pages_of(value) if isinstance(value, list) else {value}
        return out

    listed = pages_of(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages == listed, f"not in nav: {sorted(pages - listed)}; missing: {sorted(listed - pages)}"


def test_generated_pages_match_the_results_files():
    """docs/benchmarks.md and docs/quality.md are rendered from benchmarks/results/, never edited by hand."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.report", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_a_quoted_block_is_rerendered_from_its_results_file_and_left_alone_without_one(monkeypatch):
    """docs pages quote a results table between markers; a stale copy is replaced, prose kept."""
    monkeypatch.syspath_prepend(str(ROOT))  # benchmarks/ is not an installed package
    from benchmarks.report import quote_sections

    section = {"heading": "T", "table": "| a |\n|--:|\n| 0.7 |", "target": "", "met": None, "notes": "",
               "load": None, "command": "python -m benchmarks.x", "date": "2026-12-04"}
    page = "prose\n<!-- results x: T -->\n| a |\n|--:|\n| 0.5 |\n<!-- end results -->\nmore prose\n"
    out = quote_sections(page, {"x": {"sections": [section]}})
    assert "| 0.7 |" in out and "| 0.5 |" not in out
    assert out.startswith("prose\n<!-- results x: T -->") and out.endswith("<!-- end results -->\nmore prose\n")
    assert quote_sections(page, {}) == page  # no results file: the page is not emptied


# README's headline figures that come from a results file: (file, table heading, row, column,
# the text README shows). README is written by hand; this keeps it from drifting.
TARGETS = "Targets: the default recipe (transformer) against the tuned LDA, test nDCG@100"
REAL = "Front ends on real music, untrained and trained (3 artist-disjoint splits)"
SPEED = "musicnn speed against the TensorFlow original, 3 tracks of 3-7 min, one thread"
SERVE = "GET /tracks/{id}/similar?k=100 with the whole ranking pipeline vs the pipeline in-process"
README_FIGURES = [
    *[("networks.json", TARGETS, row, column, shown) for row, cells in {
        "demo": ("0.3575 ± 0.0164", "0.4902 ± 0.0115", "0.4986 ± 0.0119", "+0.141 ± 0.020"),
        "**holdout** (": ("0.6330 ± 0.0032", "0.7037 ± 0.0073", "0.7126 ± 0.0063", "+0.080 ± 0.004"),
        "holdout_wide": ("0.6807 ± 0.0258", "0.8018 ± 0.0176", "0.8036 ± 0.0169", "+0.123 ± 0.014"),
        "holdout_8k": ("| 0.6754 |", "| 0.7216 |", "| 0.7496 |", "+0.074 |"),
    }.items() for column, shown in zip(("tuned LDA", "networks alone", "whole pipeline", "pipeline − tuned LDA"), cells)],
    *[("frontends.json", REAL, row, column, shown) for row, cells in {
        "musicnn-msd": ("0.691±0.034", "0.710±0.057", "0.752±0.030", "+0.060±0.005"),
        "dsp": ("0.647±0.047", "0.634±0.020", "0.693±0.017", "+0.046±0.030"),
    }.items() for column, shown in zip(("tuned LDA", "transformer alone", "whole pipeline", "whole pipeline − tuned LDA"), cells)],
    ("frontends.json", REAL, "musicnn-msd", "standardised", "features (0.756)"),
    ("frontends.json", REAL, "musicnn-msd", "tuned WCCN", "tuned WCCN (0.752)"),
    ("frontends.json", REAL, "musicnn-msd − dsp", "whole pipeline", "+0.059 ± 0.016 (paired)"),
    ("frontends.json", SPEED, "featurize's path", "windows/s", "tracks/s, 35 windows/s |"),
    ("frontends.json", SPEED, "featurize's path", "tracks/s", "| 0.40 tracks/s"),
    ("frontends.json", SPEED, "TensorFlow reference", "windows/s", "model: 16 windows/s"),
    ("demo.json", "The demo's scores: predict and the catalogue", "submission", "test nDCG@100", "printed test nDCG@100 0.5077"),
    ("demo.json", "The demo's scores: predict and the catalogue", "catalogue", "test nDCG@100", "0.5077 for `predict`"),
    ("serve.json", SERVE, "load=closed-loop", "p99 ms", "p99 20.09 ms"),
    ("serve.json", SERVE, "load=open-loop", "p99 ms", "p99 41.67 ms"),
]


def table_cell(result: dict, heading: str, row: str, column: str) -> str:
    """The cell of a result's markdown table whose first column contains `row`."""
    table = next(s["table"] for s in result["sections"] if s["heading"] == heading)
    lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()]
    header, rows = lines[0], lines[2:]
    key, _, text = row.rpartition("=")  # "load=open-loop": the row whose `load` cell says so
    at = header.index(key) if key else 0
    return next(r[header.index(column)] for r in rows if text in r[at])


@pytest.mark.parametrize("name,heading,row,column,shown", README_FIGURES)
def test_readme_headline_figures_match_their_results_files(name, heading, row, column, shown):
    readme = (ROOT / "README.md").read_text()
    assert shown in readme, f"README no longer shows {shown!r}: update README_FIGURES with it"
    result = json.loads((ROOT / "benchmarks" / "results" / name).read_text())
    numbers = [float(x) for x in re.findall(r"[+-]?\d+\.\d+", table_cell(result, heading, row, column))]
    for text in re.findall(r"[+-]?\d+\.\d+", shown):  # each figure README prints, at its precision
        measured = numbers.pop(0)
        assert abs(float(text) - measured) <= 0.5 * 10 ** -len(text.split(".")[1]) + 1e-9, (
            f"README shows {text} for {row} / {column}; {name} holds {measured}")
