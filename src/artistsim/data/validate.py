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
    features_root,
    load_npy,
    meta_path,
    progress_disabled,
    read_ground_truth_tsv,
    read_meta,
)


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
    """Load every referenced file; return the frame counts (0 where the file is bad)."""
    rel = meta["archive_features_path"].tolist()
    try:
        root = features_root(data_dir, split, rel[0])
    except DataError as exc:
        report.errors.append(str(exc))
        return np.zeros(len(rel), dtype=np.int64)
    lengths = np.zeros(len(rel), dtype=np.int64)
    for i, p in enumerate(tqdm(rel, desc=f"Checking {split} features", disable=progress_disabled(progress))):
        try:
            lengths[i] = len(load_npy(root / p))
        except DataError as exc:
            report.errors.append(f"{split}_meta.tsv line {i + 2}: {exc}")
    return lengths


def _check_split(data_dir: Path, split: str, report: ValidationReport, progress: bool | None) -> pd.DataFrame | None:
    if not meta_path(data_dir, split).exists():
        (report.errors if split == "train" else report.warnings).append(f"{meta_path(data_dir, split)}: not found")
        return None
    try:
        meta = read_meta(data_dir, split)
    except DataError as exc:
        report.errors.append(str(exc))
        return None
    lengths = _check_features(data_dir, split, meta, report, progress)
    good = lengths > 0
    short = int((lengths[good] < 81).sum())
    report.info.append(f"{split}: {len(meta)} tracks, {short} shorter than 81 frames")
    if split == "train":
        _check_artists(meta, f"{split}_meta.tsv", report)
    return meta


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
    path = data_dir / GT_FILE
    if not path.exists():
        return
    try:
        gt = read_ground_truth_tsv(path)
    except DataError as exc:
        report.errors.append(str(exc))
        return
    if test is not None:
        missing = ~test["trackid"].isin(gt["trackid"])
        for row in np.flatnonzero(missing.to_numpy())[:20]:
            report.errors.append(f"{path}: no artist for test_meta.tsv line {row + 2} "
                                 f"(trackid {test['trackid'].iloc[row]})")
    if train is not None:
        shared = np.intersect1d(gt["artistid"].unique(), train["artistid"].unique())
        if len(shared):
            report.warnings.append(f"{path}: {len(shared)} test artist(s) also in train (the task assumes disjoint)")
    _check_artists(gt, GT_FILE, report)


def validate_dataset(data_dir: str | Path, progress: bool | None = None) -> ValidationReport:
    """Check meta files, every feature file and the optional ground truth; never raises on bad data."""
    data_dir = Path(data_dir)
    report = ValidationReport()
    if not data_dir.is_dir():
        report.errors.append(f"{data_dir}: data directory not found")
        return report
    metas = {split: _check_split(data_dir, split, report, progress) for split in SPLITS}
    if metas["train"] is not None and metas["test"] is not None:
        both = np.intersect1d(metas["train"]["trackid"], metas["test"]["trackid"])
        if len(both):
            report.errors.append(f"trackid(s) in both train_meta.tsv and test_meta.tsv: {both[:10].tolist()}")
    _check_ground_truth(data_dir, metas["test"], metas["train"], report)
    return report
