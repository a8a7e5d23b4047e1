"""The documentation site builds with no broken link, anchor or nav entry.

Why a test: docs/ pages link to each other and to generated tables (docs/benchmarks.md,
docs/quality.md); a renamed heading or a moved page breaks a link silently on GitHub.
`mkdocs build --strict` turns every such warning into a failure, so CI catches it.
"""

from __future__ import annotations

import os
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
