"""`artistsim validate DATA_DIR`: check a data directory before spending hours training on it.

Unlike the readers, which stop at the first problem, validation goes through everything
and lists every problem with the file or meta row that causes it, so a user can fix a
broken download in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from artistsim.data.layout import (
    GT_FILE,
    SPLITS,
    DataError,
    TableScan,
    feature_dim,
    features_root,
    link_problem,
    meta_line,
    progress_disabled,
    read_features,
    scan_meta,
    scan_tsv,
)
from artistsim.data.paths import escaping_links, outside_allowed, outside_rows


@dataclass
class ValidationReport:
    """Errors make the data unusable; warnings are worth knowing (e.g. unscorable artists)."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self, max_lines: int = 50) -> str:
        lines = list(self.info)
        for kind, items in (("ERROR", self.errors), ("WARNING", self.warnings)):
            lines += [f"{kind}: {m}" for m in items[:max_lines]]
            if len(items) > max_lines:
                lines.append(f"{kind}: ... and {len(items) - max_lines} more")
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


def _check_features(data_dir: Path, split: str, meta: pd.DataFrame, report: ValidationReport,
                    progress: bool | None) -> np.ndarray:
    """Load every referenced file whose path is usable; return frame counts (0 where bad).

    Rows with bad ids are still checked: one pass must show every problem of a download.
    """
    rel = meta["archive_features_path"]
    lengths = np.zeros(len(rel), dtype=np.int64)
    try:
        dim = feature_dim(data_dir)  # frontend.json's D, 512 without one
    except DataError as exc:
        report.errors.append(str(exc))
        return lengths
    usable = np.array(rel != "", dtype=bool)
    if not outside_allowed():
        usable &= ~outside_rows(rel)
    try:
        root = features_root(data_dir, split, rel[usable].tolist())
    except DataError as exc:
        report.errors.append(str(exc))
        return lengths
    paths = rel.to_numpy()
    if not outside_allowed():
        escaped = escaping_links(data_dir, root, paths[usable].tolist())
        rows_usable = np.flatnonzero(usable)
        for k, target in sorted(escaped.items()):
            i = rows_usable[k]
            report.errors.append(str(meta_line(split, i, DataError(link_problem(root, paths[i], target)))))
            usable[i] = False
    rows = np.flatnonzero(usable)
    for i in tqdm(rows, desc=f"Checking {split} features", disable=progress_disabled(progress)):
        try:
            lengths[i] = read_features(root / paths[i], dim).shape[1]
        except DataError as exc:
            report.errors.append(str(meta_line(split, i, exc)))
    return lengths


def _check_split(data_dir: Path, split: str, report: ValidationReport, progress: bool | None) -> TableScan | None:
    scan = scan_meta(data_dir, split)
    if scan.table is None:
        missing = not scan.path.exists()
        (report.warnings if missing and split == "test" else report.errors).extend(scan.problems)
        return None
    report.errors.extend(scan.problems)
    meta = scan.table
    lengths = _check_features(data_dir, split, meta, report, progress)
    good = lengths > 0
    short = int((lengths[good] < 81).sum())
    report.info.append(f"{split}: {len(meta)} tracks, {short} shorter than 81 frames")
    if split == "train":
        labelled = meta[meta["artistid"].to_numpy() >= 0]
        if labelled["artistid"].nunique() < 2:
            report.errors.append(f"{scan.path}: {labelled['artistid'].nunique()} artist(s); training needs at "
                                 f"least 2 (artists are held out whole for validation)")
        if len(labelled):
            _check_artists(labelled, f"{split}_meta.tsv", report)
    return scan


def _check_artists(table: pd.DataFrame, name: str, report: ValidationReport) -> None:
    counts = table.groupby("artistid").size()
    singles = counts.index[counts.to_numpy() == 1].tolist()
    report.info.append(f"{name}: {len(counts)} artists, tracks per artist median {int(counts.median())}, "
                       f"max {int(counts.max())}")
    if singles:
        shown = ", ".join(map(str, singles[:10])) + (" ..." if len(singles) > 10 else "")
        report.warnings.append(f"{name}: {len(singles)} artist(s) with one track (allowed, but their tracks "
                               f"cannot be scored as queries): {shown}")


def _check_ground_truth(data_dir: Path, test: pd.DataFrame | None, train: pd.DataFrame | None,
                        report: ValidationReport) -> None:
    """Every test track has one artist, and no other track has one (it would count as a query)."""
    path = data_dir / GT_FILE
    if not path.exists():
        return
    scan = scan_tsv(path, ("trackid", "artistid"), ("trackid", "artistid"))
    report.errors.extend(scan.problems)
    if scan.table is None:
        return
    gt = scan.table[~scan.bad_rows]
    if test is not None:
        test_ids = test["trackid"][test["trackid"] >= 0]
        missing = ~test_ids.isin(gt["trackid"])
        for row in test_ids.index[missing.to_numpy()]:
            report.errors.append(f"{path}: no artist for test_meta.tsv line {row + 2} "
                                 f"(trackid {test['trackid'].iloc[row]})")
        extra = ~gt["trackid"].isin(test_ids)
        for row in gt.index[extra.to_numpy()]:
            report.errors.append(f"{path}: line {row + 2}: trackid {gt['trackid'].loc[row]} is not in test_meta.tsv "
                                 f"(it would count as a query no submission can answer)")
    if train is not None:
        shared = np.intersect1d(gt["artistid"].unique(), train["artistid"].unique())
        if len(shared):
            report.warnings.append(f"{path}: {len(shared)} test artist(s) also in train (the task assumes disjoint)")
    if len(gt):
        _check_artists(gt, GT_FILE, report)


def validate_dataset(data_dir: str | Path, progress: bool | None = None) -> ValidationReport:
    """Check meta files, every feature file and the optional ground truth, all in one pass.

    Never raises on bad data: a problem in one place never hides the checks of another.
    """
    data_dir = Path(data_dir)
    report = ValidationReport()
    if not data_dir.is_dir():
        report.errors.append(f"{data_dir}: data directory not found")
        return report
    scans = {split: _check_split(data_dir, split, report, progress) for split in SPLITS}
    metas = {split: (s.table if s is not None else None) for split, s in scans.items()}
    if metas["train"] is not None and metas["test"] is not None:
        ids = [m["trackid"].to_numpy() for m in (metas["train"], metas["test"])]
        both = np.intersect1d(ids[0][ids[0] >= 0], ids[1][ids[1] >= 0])
        if len(both):
            report.errors.append(f"{len(both)} trackid(s) in both train_meta.tsv and test_meta.tsv: "
                                 f"{both[:10].tolist()}" + (" ..." if len(both) > 10 else ""))
    _check_ground_truth(data_dir, metas["test"], metas["train"], report)
    return report
