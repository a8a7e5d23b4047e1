"""`artistsim featurize`: a folder (or manifest) of audio files -> the competition layout.

OUT_DIR receives exactly what `validate`, `pack`, `train` ... read: `train_meta.tsv`,
`test_meta.tsv`, `{split}_features/<trackid % 10>/<trackid>.npy` (float32, (D, T); D = 753 for the
default `musicnn-msd` and for `musicnn-mtt`, 512 for `dsp`: `artistsim.audio.frontends`),
`frontend.json` (which front end made them), `test_gt.tsv` when every test track has an artist,
plus `tracks.tsv` (every input track: source path, split, artist, duration, T, status and
the reason it was skipped) and `artists.tsv` (artistid -> name).

How it survives kills, many machines and bad files:
- The plan (`.featurize/plan.tsv`: trackid, path, artist, split) is deterministic
  (`artistsim.audio.inputs`); a re-run checks it is unchanged.
- Each finished track, featurized or skipped, is one line appended (flushed and synced)
  to `.featurize/journal-K-of-N.tsv`, after its .npy was written to a temporary name and
  renamed. A killed run leaves at most a torn last journal line (dropped on reading) and
  a stray temporary file (removed); the next run skips every journalled track.
- `--shard K/N` featurizes the plan's rows i with i % N == K - 1 into the same layout
  (shard outputs never overlap, so folders written on different machines can simply be
  copied together); `--merge` (or a run without --shard) then writes the meta files.
- Bad audio is journalled with a reason (`artistsim.audio.decode.REASONS`) and never stops
  the batch; duplicates (same decoded content: `content_hash`) are resolved when the
  meta files are written: the lowest trackid stays, the others are listed as duplicates.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from artistsim.atomic import atomic_write_text
from artistsim.audio.inputs import PLAN_COLUMNS, display_path, list_inputs, make_plan
from artistsim.audio.frontends import DEFAULT, LEGACY, FrontendError, featurize_array, featurize_file, prepare
from artistsim.audio.worker import init_worker, process_track
from artistsim.data.layout import DataError, progress_disabled
from artistsim.data.provenance import FRONTEND_FILE, Frontend, ProvenanceError, read_frontend, write_frontend

STATE_DIR = ".featurize"
JOURNAL_COLUMNS = ("trackid", "status", "reason", "duration", "frames", "sha1")
TRACKS_COLUMNS = ("trackid", "path", "split", "artistid", "artist", "duration", "frames", "status", "reason")


@dataclass
class FeaturizeOptions:
    """The verb's options (see `artistsim featurize --help`)."""

    labels: str | Path | None = None
    tags: bool = False
    test_fraction: float = 0.2
    seed: int = 0
    workers: int = 0  # 0: one per usable core, at most 8 (each holds ~350 MB)
    shard: tuple[int, int] = (1, 1)
    merge: bool = False
    progress: bool | None = None
    frontend: str = DEFAULT  # artistsim.audio.frontends.NAMES


@dataclass
class FeaturizeSummary:
    """What a run did: counts for this run and, after the meta files, for the dataset."""

    planned: int
    processed: int = 0
    seconds: float = 0.0
    finalized: bool = False
    statuses: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    splits: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    unlabelled_test: int = 0

    @property
    def skipped(self) -> int:
        return self.statuses.get("skipped", 0)

    def render(self) -> str:
        rate = self.processed / self.seconds if self.seconds > 0 else 0.0
        lines = [f"featurized {self.processed} track(s) in this run ({self.seconds:.1f} s, {rate:.2f} tracks/s); "
                 f"{self.planned} in the plan"]
        if self.finalized:
            lines.append(f"dataset: {self.statuses.get('ok', 0)} track(s) ok "
                         f"(train {self.splits.get('train', 0)}, test {self.splits.get('test', 0)}), "
                         f"{self.skipped} skipped")
            for reason, n in sorted(self.reasons.items()):
                lines.append(f"  skipped {n} x {reason} (e.g. {self.examples[reason]})")
            if self.unlabelled_test and self.unlabelled_test < self.splits.get("test", 0):
                lines.append(f"note: {self.unlabelled_test} test track(s) have no artist, so test_gt.tsv is not "
                             "written (artists in tracks.tsv); label them all to score the test split")
            if not self.splits.get("train"):
                lines.append("note: no labelled track in train: train_meta.tsv is empty; give artists "
                             "(manifest column, --labels or --tags) to train on this folder")
        else:
            lines.append("shard done: run with --merge once every shard has finished to write the meta files")
        return "\n".join(lines)


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard expects K/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def feature_relpath(trackid: int) -> str:
    """Path of a track's .npy relative to its `{split}_features/` folder (fold = trackid % 10)."""
    return f"{trackid % 10}/{trackid}.npy"


# --------------------------------------------------------------------------- state files


def _journal_path(out_dir: Path, shard: tuple[int, int]) -> Path:
    return out_dir / STATE_DIR / f"journal-{shard[0]}-of-{shard[1]}.tsv"


def read_journals(out_dir: Path) -> pd.DataFrame:
    """Every finished track of every shard (the last line per trackid wins); torn lines dropped."""
    rows = []
    for path in sorted((out_dir / STATE_DIR).glob("journal-*.tsv")):
        text = path.read_text(encoding="utf-8")
        for line in text.split("\n")[:-1]:  # the part after the last newline is torn or empty
            parts = line.split("\t")
            if len(parts) == len(JOURNAL_COLUMNS):
                rows.append(parts)
    df = pd.DataFrame(rows, columns=list(JOURNAL_COLUMNS))
    df["trackid"] = df["trackid"].astype(np.int64)
    df["duration"] = df["duration"].astype(float)
    df["frames"] = df["frames"].astype(np.int64)
    return df.drop_duplicates("trackid", keep="last").set_index("trackid")


def _open_journal(path: Path):
    """Append handle to a journal, first cutting a torn last line left by a kill."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            with path.open("r+b") as fh:
                fh.truncate(keep)
    return path.open("a", encoding="utf-8")


def _write_if_changed(path: Path, text: str) -> None:
    """Atomic write that leaves an identical file untouched (a re-run changes nothing)."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    atomic_write_text(path, text)


def _tsv(df: pd.DataFrame) -> str:
    return df.to_csv(sep="\t", index=False, lineterminator="\n")


def _check_plan(out_dir: Path, plan: pd.DataFrame, frontend: Frontend) -> None:
    """Store the plan and front end on the first run; refuse a later run whose plan or front end differs."""
    state = out_dir / STATE_DIR
    legacy = state / "descriptor_version"  # folders from before front ends had records: dsp only
    if (state / FRONTEND_FILE).exists():
        try:
            before = read_frontend(state)
        except ProvenanceError as exc:
            raise DataError(str(exc)) from None
    elif legacy.exists():
        before = Frontend(LEGACY, legacy.read_text().strip(), 512, frontend.params if frontend.name == LEGACY else {})
    else:
        before = frontend
    if not before.same_as(frontend):
        raise DataError(f"{out_dir}: holds features made by front end {before.label()}, this run applies "
                        f"{frontend.label()}; featurize into a new folder")
    write_frontend(state, frontend)
    text = _tsv(plan.assign(path=plan["path"].map(display_path)))
    path = out_dir / STATE_DIR / "plan.tsv"
    if path.exists():
        if path.read_text(encoding="utf-8") != text:
            raise DataError(f"{out_dir}: holds features made from a different input or options "
                            f"({path} differs); featurize into a new folder")
        return
    atomic_write_text(path, text)


# --------------------------------------------------------------------------- the run


def default_workers() -> int:
    """One worker per usable core, at most 8: decoding is the work, memory ~350 MB each."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _run_jobs(jobs: list[tuple[int, str, str, str]], journal: Path, workers: int, progress: bool | None) -> int:
    """Featurize `jobs`, journalling each result as it arrives; returns how many ran."""
    from tqdm.auto import tqdm

    workers = workers or default_workers()
    bar = tqdm(total=len(jobs), desc="Featurizing", unit="track", disable=progress_disabled(progress))
    done = 0
    with _open_journal(journal) as fh:
        def record(row: tuple) -> None:
            nonlocal done
            fh.write("\t".join(str(v) for v in row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            done += 1
            bar.update(1)

        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                record(process_track(job))
        else:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers, initializer=init_worker) as pool:
                for row in pool.imap_unordered(process_track, jobs, chunksize=1):
                    record(row)
    bar.close()
    return done


def featurize_dataset(source: str | Path, out_dir: str | Path, opts: FeaturizeOptions) -> FeaturizeSummary:
    """Plan, featurize this shard's unfinished tracks, and (unsharded or --merge) write the meta."""
    out_dir = Path(out_dir)
    base, inputs = list_inputs(source, opts.labels, opts.tags, opts.progress)
    plan = make_plan(inputs, opts.test_fraction, opts.seed).sort_values("trackid").reset_index(drop=True)
    try:
        frontend = prepare(opts.frontend)
    except FrontendError as exc:
        raise DataError(str(exc)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STATE_DIR).mkdir(exist_ok=True)
    _check_plan(out_dir, plan, frontend)
    for stray in out_dir.glob("*_features/*/.*.tmp.npy"):  # temporaries of a killed run
        stray.unlink(missing_ok=True)
    summary = FeaturizeSummary(planned=len(plan))
    start = time.perf_counter()
    if not opts.merge:
        k, n = opts.shard
        journal = _journal_path(out_dir, opts.shard)
        finished = set(read_journals(out_dir).index)
        mine = plan[(np.arange(len(plan)) % n == k - 1) & ~plan["trackid"].isin(finished)]
        jobs = [(int(t), str(base / p), str(out_dir / f"{s}_features" / feature_relpath(int(t))), opts.frontend)
                for t, p, s in zip(mine["trackid"], mine["path"], mine["split"])]
        summary.processed = _run_jobs(jobs, journal, opts.workers, opts.progress)
    summary.seconds = time.perf_counter() - start
    if opts.merge or opts.shard == (1, 1):
        write_layout(out_dir, plan, summary, frontend)
    return summary


def write_layout(out_dir: Path, plan: pd.DataFrame, summary: FeaturizeSummary, frontend: Frontend) -> None:
    """Meta files, tracks.tsv and artists.tsv from the plan and the journals of every shard."""
    records = read_journals(out_dir)
    missing = plan.loc[~plan["trackid"].isin(records.index), "trackid"].to_numpy()
    if len(missing):
        raise DataError(f"{out_dir}: {len(missing)} of {len(plan)} track(s) not featurized yet "
                        f"(e.g. trackid {missing[0]}); finish every shard, then run with --merge")
    df = plan.join(records, on="trackid")
    ok = (df["status"] == "ok").to_numpy()
    first = df[ok].groupby("sha1")["trackid"].transform("min")
    dup_rows = first.index[first.to_numpy() != df.loc[first.index, "trackid"].to_numpy()]
    df.loc[dup_rows, "status"] = "skipped"
    df.loc[dup_rows, "reason"] = ["duplicate: same content as trackid " + str(v) for v in first[dup_rows]]
    for t, s in zip(df.loc[dup_rows, "trackid"], df.loc[dup_rows, "split"]):
        (out_dir / f"{s}_features" / feature_relpath(int(t))).unlink(missing_ok=True)

    good = df[df["status"] == "ok"]
    rel = good["trackid"].map(lambda t: feature_relpath(int(t)))
    train, test = good["split"] == "train", good["split"] == "test"
    _write_if_changed(out_dir / "train_meta.tsv", _tsv(pd.DataFrame(
        {"trackid": good["trackid"][train], "artistid": good["artistid"][train], "archive_features_path": rel[train]})))
    _write_if_changed(out_dir / "test_meta.tsv", _tsv(pd.DataFrame(
        {"trackid": good["trackid"][test], "archive_features_path": rel[test]})))
    gt = good[test]
    summary.unlabelled_test = int((gt["artistid"] < 0).sum())
    if len(gt) and not summary.unlabelled_test:  # ground truth is for every test track or none
        _write_if_changed(out_dir / "test_gt.tsv", _tsv(gt[["trackid", "artistid"]]))
    else:
        (out_dir / "test_gt.tsv").unlink(missing_ok=True)
    tracks = df.assign(path=df["path"].map(display_path), artist=df["artist"].map(display_path))
    _write_if_changed(out_dir / "tracks.tsv", _tsv(tracks[list(TRACKS_COLUMNS)]))
    artists = df[df["artistid"] >= 0].drop_duplicates("artistid").sort_values("artistid")
    _write_if_changed(out_dir / "artists.tsv", _tsv(artists[["artistid", "artist"]].assign(
        artist=artists["artist"].map(display_path))))
    write_frontend(out_dir, frontend)  # which front end made these frames (train copies it into runs)

    summary.finalized = True
    summary.statuses = Counter(df["status"])
    summary.splits = {"train": int(train.sum()), "test": int(test.sum())}
    skipped = df[df["status"] != "ok"]
    codes = skipped["reason"].str.split(":", n=1).str[0]
    summary.reasons = Counter(codes)
    for code, path in zip(codes, skipped["path"]):
        summary.examples.setdefault(code, display_path(path))


__all__ = ["FeaturizeOptions", "FeaturizeSummary", "featurize_array", "featurize_dataset", "featurize_file",
           "parse_shard", "PLAN_COLUMNS"]
