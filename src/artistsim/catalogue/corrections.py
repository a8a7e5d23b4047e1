"""Curators' decisions on the audit's suspects, and applying them as a new generation.

Why a file of decisions rather than relabelling at once: a review is a trail (who
decided what, when), several curators review at the same time, and a label changes
only when someone applies the decisions (`artistsim index relabel`, or the review
page's "apply"). `corrections.tsv` in the catalogue folder holds one line per decision:

    trackid  old_artist  new_artist  decision  who  when

decision: "confirm" (the label is right: new = old), "move" (to new_artist) or "skip"
(decide later: changes nothing). Each append rewrites the file atomically under the
catalogue's writer lock, so a kill leaves the file with or without the line, never half
of it. Applying takes each track's last confirm-or-move decision and relabels the
tracks whose label differs from it (`relabel`): applying twice changes nothing.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from artistsim.atomic import atomic_path, atomic_write_text
from artistsim.catalogue.names import int_column
from artistsim.catalogue.snapshot import Snapshot
from artistsim.catalogue.store import MANIFEST, UNKNOWN_ARTIST, CatalogueError, Manifest, writer_lock
from artistsim.data.ids import check_ids

CORRECTIONS = "corrections.tsv"
COLUMNS = ("trackid", "old_artist", "new_artist", "decision", "who", "when")
DECISIONS = ("confirm", "move", "skip")
LINKED = ("embeddings.npy", "trackids.npy", "stats.npy")  # a relabelled segment's arrays, shared with the old one


def record(root: str | Path, trackid: int, old: int, new: int, decision: str, who: str) -> dict[str, str]:
    """Append one decision to the catalogue's corrections.tsv (atomically); returns the row."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
    if decision == "move" and new == old:
        raise ValueError(f"track {trackid} is already labelled {old}: nothing to move")
    if decision != "move":
        new = old
    when = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    who = "".join(ch for ch in who if ch.isprintable() and ch not in "\t\n\r") or "?"
    row = {"trackid": str(trackid), "old_artist": str(old), "new_artist": str(new), "decision": decision,
           "who": who, "when": when}
    root = Path(root)
    path = root / CORRECTIONS
    with writer_lock(root):
        text = path.read_text(encoding="utf-8") if path.exists() else "\t".join(COLUMNS) + "\n"
        if not text.endswith("\n"):
            text += "\n"
        atomic_write_text(path, text + "\t".join(row[c] for c in COLUMNS) + "\n")
    return row


def read(path: str | Path) -> pd.DataFrame:
    """The decisions of a corrections file, checked (one-line errors naming the row and field)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype="int64" if c.endswith(("id", "artist")) else str) for c in COLUMNS})
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CatalogueError(f"{path}: not a readable TSV ({exc})") from None
    for col in ("trackid", "new_artist", "decision"):
        if col not in df.columns:
            raise CatalogueError(f"{path}: no '{col}' column (columns: {', '.join(COLUMNS)})")
    df["trackid"] = check_ids(df["trackid"], str(path), "trackid", first_line=2)
    df["new_artist"] = check_ids(df["new_artist"], str(path), "new_artist", first_line=2)
    if "old_artist" in df.columns:  # -1 where the track had no artist
        df["old_artist"] = int_column(df, "old_artist", path)
    bad = np.flatnonzero(~df["decision"].isin(DECISIONS).to_numpy())
    if len(bad):
        raise CatalogueError(f"{path}: row {int(bad[0]) + 2}: decision must be one of {', '.join(DECISIONS)}")
    return df


def decided(df: pd.DataFrame) -> np.ndarray:
    """Trackids with any decision (the review page no longer shows them)."""
    return np.unique(df["trackid"].to_numpy(dtype=np.int64))


def pending(df: pd.DataFrame, snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """(trackids, new artists) whose last confirm-or-move decision differs from the label now."""
    acted = df[df["decision"] != "skip"].drop_duplicates("trackid", keep="last")
    tids = acted["trackid"].to_numpy(dtype=np.int64)
    new = acted["new_artist"].to_numpy(dtype=np.int64)
    rows = snapshot.rows_of(tids)
    if (rows < 0).any():
        raise CatalogueError(f"{CORRECTIONS}: trackid {int(tids[rows < 0][0])} is not in the catalogue")
    change = snapshot.artists()[rows] != new
    if (new[change] == UNKNOWN_ARTIST).any():
        raise CatalogueError(f"{CORRECTIONS}: a track cannot be moved to artist {UNKNOWN_ARTIST} (unknown)")
    return tids[change], new[change]


def apply(root: str | Path, path: str | Path, snapshot: Snapshot) -> tuple[Manifest | None, int]:
    """Relabel the catalogue by the decisions in `path`: (new manifest or None when nothing changes, tracks)."""
    tids, new = pending(read(path), snapshot)
    if len(tids) == 0:
        return None, 0
    return relabel(root, tids, new), len(tids)


def relabel(root: str | Path, trackids: np.ndarray, artists: np.ndarray) -> Manifest:
    """A new generation in which each of `trackids` is labelled with the matching `artists`.

    Files a manifest names are never changed: each segment holding a relabelled track is
    written anew under a new name, its other arrays (embeddings, trackids, AS-norm
    statistics) hard-linked (copied where links are impossible) and a new artists array
    written. The index stays valid (the
    same vectors in the same order) and is kept. Unknown trackids are refused. The
    replaced segments (hard links: almost no space) are swept by the catalogue's next
    writer, as any file no manifest names.
    """
    root = Path(root)
    tids = np.asarray(trackids, dtype=np.int64).reshape(-1)
    new_artists = np.asarray(artists, dtype=np.int64).reshape(-1)
    if len(tids) != len(new_artists) or len(np.unique(tids)) != len(tids):
        raise CatalogueError("relabel needs one new artist per trackid, each trackid once")
    with writer_lock(root):
        manifest = Manifest.read(root)
        gen = manifest.generation + 1
        found = np.zeros(len(tids), dtype=bool)
        renamed: dict[str, str] = {}
        for i, seg in enumerate([manifest.main, *manifest.tail]):
            seg_ids = np.load(root / seg / "trackids.npy")
            hit = np.isin(tids, seg_ids)
            if not hit.any():
                continue
            found |= hit
            labels = np.load(root / seg / "artists.npy")
            order = np.argsort(seg_ids, kind="stable")
            labels[order[np.searchsorted(seg_ids, tids[hit], sorter=order)]] = new_artists[hit]
            renamed[seg] = f"seg-{gen:06d}r{i}"
            _relabelled_segment(root, seg, renamed[seg], labels)
        if not found.all():
            raise CatalogueError(f"trackid(s) not in the catalogue: {tids[~found][:10].tolist()}")
        # the linked files keep their records (same bytes); the new labels are hashed by with_records
        files = {**manifest.files, **{f"{new}/{f}": manifest.files[f"{old}/{f}"] for old, new in renamed.items()
                                      for f in LINKED if f"{old}/{f}" in manifest.files}}
        new = Manifest(**{**manifest.__dict__, "generation": gen, "main": renamed.get(manifest.main, manifest.main),
                          "tail": [renamed.get(s, s) for s in manifest.tail], "files": files})
        new = new.with_records(root)  # sizes and checksums of the generation's files (`index check`)
        atomic_write_text(root / MANIFEST, new.to_json())  # the old segments: swept by the next writer
    return new


def _relabelled_segment(root: Path, old: str, new: str, artists: np.ndarray) -> None:
    folder = root / new
    folder.mkdir(parents=True, exist_ok=True)
    for fname in LINKED:  # every array but the labels
        if not (root / old / fname).is_file():
            continue
        (folder / fname).unlink(missing_ok=True)  # a killed relabel's leftover
        try:
            os.link(root / old / fname, folder / fname)
        except OSError:
            with atomic_path(folder / fname, suffix=".npy") as tmp:
                shutil.copyfile(root / old / fname, tmp)
    with atomic_path(folder / "artists.npy", suffix=".npy") as tmp:
        np.save(tmp, artists)
