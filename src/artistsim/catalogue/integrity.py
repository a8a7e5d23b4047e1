"""`artistsim index check`: verify a whole catalogue and say what is damaged.

What `index add` checks before it commits (`store.verify_generation`) is the cheap part;
this is everything: manifest.json's fields and confinement, every named file present
with its recorded size and SHA-256, every segment's arrays complete, of the right dtype,
finite and consistent with the manifest's `dim`, trackids valid and unique across the
segments, the index readable and holding the main segment's rows, and the runs'
checkpoints still matching their fingerprints (a missing run only disables embedding,
so it is a warning, not damage).

Every problem is one line naming the file (and field); nothing is repaired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from artistsim.catalogue.manifest import MANIFEST, CatalogueError, Manifest, verify_files
from artistsim.catalogue.store import Part, read_index, read_segment
from artistsim.runs import file_sha256


@dataclass
class CheckReport:
    """Problems (damage) and warnings (a missing run) found in one catalogue."""

    root: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tracks: int = 0
    generation: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"DAMAGED {p}" for p in self.problems] + [f"WARNING {w}" for w in self.warnings]
        if self.ok:
            lines.append(f"{self.root}: ok (generation {self.generation}, {self.tracks} tracks, every file verified)")
        else:
            lines.append(f"{self.root}: {len(self.problems)} problem(s); the catalogue is refused until rebuilt "
                         f"(`artistsim index build --overwrite`)")
        return "\n".join(lines)


def check_catalogue(root: str | Path) -> CheckReport:
    """Everything this module's docstring lists, each problem collected (never raised)."""
    root = Path(root)
    report = CheckReport(root)
    try:
        manifest = Manifest.read(root)
    except CatalogueError as exc:
        report.problems.append(str(exc))
        return report
    report.generation = manifest.generation
    report.problems += verify_files(root, manifest, checksums=True)
    broken = {p.split(": ")[0] for p in report.problems}
    parts: dict[str, Part] = {}
    for seg in manifest.segments():
        if any(b.startswith(str(root / seg) + "/") for b in broken):
            continue  # already reported as missing or changed
        try:
            parts[seg] = read_segment(root, seg, mmap=False, dim=manifest.dim)  # full read: values checked
        except CatalogueError as exc:
            report.problems.append(str(exc).removeprefix("catalogue damaged: "))
    if len(parts) == len(manifest.segments()):
        ids = np.concatenate([p.trackids for p in parts.values()])
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            report.problems.append(f"{root}: trackid(s) stored twice across segments: {uniq[counts > 1][:10].tolist()}")
        report.tracks = len(ids)
    _check_index(root, manifest, parts.get(manifest.main), broken, report)
    for run in manifest.runs:
        ckpt = Path(run["path"]) / run["checkpoint"]
        if not ckpt.is_file():
            report.warnings.append(f"{ckpt}: run checkpoint gone; only trackid queries are possible")
        elif file_sha256(ckpt) != run["sha256"]:
            report.problems.append(f"{ckpt}: run checkpoint changed since the catalogue was built")
    return report


def _check_index(root: Path, manifest: Manifest, main: Part | None, broken: set[str], report: CheckReport) -> None:
    if not manifest.index.get("file") or str(root / manifest.index["file"]) in broken:
        return
    try:
        index = read_index(root, manifest)
    except CatalogueError as exc:
        report.problems.append(str(exc).removeprefix("catalogue damaged: "))
        return
    if index.d != manifest.dim:
        report.problems.append(f"{root / manifest.index['file']}: dimension {index.d}, {MANIFEST} 'dim' {manifest.dim}")
    if main is not None and index.ntotal != len(main):
        report.problems.append(f"{root / manifest.index['file']}: holds {index.ntotal} vectors, "
                               f"the main segment {len(main)}")
