"""What a catalogue knows of its tracks beyond their vectors: artist names, source files, durations.

Why in the catalogue: the people who curate it read names, not ids, and listen to the
track before correcting its label. `index build` / `index add` take them from a
`featurize` output folder (its `artists.tsv`: artistid, artist; `tracks.tsv`: trackid,
path, ..., duration) or from a `--names` TSV of the same columns, and keep them in a
`names-GENERATION.json` file the manifest names (written like every other catalogue
file: a new file, then a new manifest, under the writers' lock; `keep`).

Source paths in those tables are relative to the folder `featurize` read (which the
output does not record): `--audio-root DIR` names it. Paths are stored resolved, and
`roots` are the folders the server may play audio from (`audio_file`): the audio root,
else the folders of the listed files. A path that leads out of every root (a symlink
out, a `..`) is never served.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artistsim.atomic import atomic_write_text
from artistsim.catalogue.store import MANIFEST, CatalogueError, Manifest, writer_lock
from artistsim.data.ids import check_ids


@dataclass
class Names:
    """artist id -> name; trackid -> (source path or None, duration in seconds or None); audio roots."""

    artists: dict[int, str] = field(default_factory=dict)
    tracks: dict[int, tuple[str | None, float | None]] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.artists or self.tracks)

    def artist(self, artist: int) -> str | None:
        return self.artists.get(int(artist))

    def merged(self, newer: Names) -> Names:
        """These names with `newer`'s added (newer wins where both name the same id)."""
        roots = list(dict.fromkeys([*self.roots, *newer.roots]))
        return Names({**self.artists, **newer.artists}, {**self.tracks, **newer.tracks}, roots)

    def to_json(self) -> str:
        return json.dumps({"artists": {str(k): v for k, v in self.artists.items()},
                           "tracks": {str(k): list(v) for k, v in self.tracks.items()},
                           "roots": self.roots}, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Names:
        try:
            d = json.loads(text)
            return cls({int(k): str(v) for k, v in d.get("artists", {}).items()},
                       {int(k): (v[0], v[1]) for k, v in d.get("tracks", {}).items()},
                       [str(r) for r in d.get("roots", [])])
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            raise CatalogueError(f"{where}: names file unreadable ({exc})") from None

    def audio_file(self, trackid: int) -> Path | None:
        """The track's source file when it exists inside one of the roots (symlinks resolved), else None."""
        path = self.tracks.get(int(trackid), (None, None))[0]
        if not path or not self.roots:
            return None
        try:
            real = Path(path).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        roots = {os.path.realpath(r) for r in self.roots}
        if not real.is_file() or not any(str(p) in roots for p in real.parents):
            return None
        return real


def read_names(root: str | Path, manifest: Manifest) -> Names:
    """The names the manifest's generation keeps (empty when it keeps none)."""
    if not manifest.names:
        return Names()
    path = Path(root) / manifest.names
    try:
        return Names.from_json(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise CatalogueError(f"{path}: names file unreadable ({exc.strerror})") from None


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CatalogueError(f"{path}: not a readable TSV ({exc})") from None


def int_column(df: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A TSV column of integers that may be -1 (an unknown artist); trackids go through `data.ids`."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() | (values != values.round()).to_numpy())
    if len(bad):
        raise CatalogueError(f"{path}: row {int(bad[0]) + 2}: {column} is not an integer")
    return values.to_numpy(dtype=np.int64)


def read_table(path: str | Path, audio_root: str | Path | None = None) -> Names:
    """Names from one TSV with a `trackid` column and any of path, duration, artistid + artist.

    `tracks.tsv` of `featurize` is such a table (rows whose status is not "ok" are left
    out: no features were made of them). Relative paths are taken from `audio_root`,
    else from the table's own folder.
    """
    path = Path(path)
    df = _read_tsv(path)
    if "trackid" not in df.columns:
        raise CatalogueError(f"{path}: no 'trackid' column (columns: trackid, path, duration, artistid, artist)")
    tids = check_ids(df["trackid"], str(path), "trackid", first_line=2)
    if "status" in df.columns:
        ok = (df["status"] == "ok").to_numpy()
        df, tids = df[ok], tids[ok]
    base = Path(audio_root) if audio_root is not None else path.parent
    paths: list[str | None] = [None] * len(df)
    if "path" in df.columns:
        paths = [os.path.abspath(base / p) if p else None for p in df["path"]]
    durations: list[float | None] = [None] * len(df)
    if "duration" in df.columns:
        d = pd.to_numeric(df["duration"], errors="coerce").to_numpy(dtype=np.float64)
        durations = [float(x) if np.isfinite(x) else None for x in d]
    artists: dict[int, str] = {}
    if "artistid" in df.columns and "artist" in df.columns:
        ids = int_column(df, "artistid", path)
        artists = {int(a): n for a, n in zip(ids, df["artist"]) if a >= 0 and n}
    if audio_root is not None:
        roots = [os.path.abspath(audio_root)]
    else:
        roots = sorted({os.path.dirname(p) for p in paths if p})
    return Names(artists, {int(t): (p, d) for t, p, d in zip(tids, paths, durations)}, roots)


def read_artists(path: str | Path) -> dict[int, str]:
    """artistid -> name of an `artists.tsv` (columns artistid, artist)."""
    path = Path(path)
    df = _read_tsv(path)
    for col in ("artistid", "artist"):
        if col not in df.columns:
            raise CatalogueError(f"{path}: no '{col}' column (columns: artistid, artist)")
    return {int(a): n for a, n in zip(int_column(df, "artistid", path), df["artist"]) if n}


def gather(data_dir: str | Path | None, names_tsv: str | Path | None,
           audio_root: str | Path | None) -> Names:
    """The names a build or add was given: a featurize folder's tables, then a --names TSV (which wins)."""
    names = Names()
    if data_dir is not None:
        data = Path(data_dir)
        if (data / "tracks.tsv").is_file():
            names = names.merged(read_table(data / "tracks.tsv", audio_root))
        if (data / "artists.tsv").is_file():
            names = names.merged(Names(read_artists(data / "artists.tsv")))
    if names_tsv is not None:
        names = names.merged(read_table(names_tsv, audio_root))
    return names


def keep(root: str | Path, names: Names) -> Manifest | None:
    """Merge `names` into the catalogue's (a new generation); None when there is nothing to keep."""
    if not names:
        return None
    root = Path(root)
    with writer_lock(root):
        manifest = Manifest.read(root)
        gen = manifest.generation + 1
        name = f"names-{gen:06d}.json"
        atomic_write_text(root / name, read_names(root, manifest).merged(names).to_json())
        new = Manifest(**{**manifest.__dict__, "generation": gen, "names": name}).with_records(root)
        atomic_write_text(root / MANIFEST, new.to_json())  # the old names file: swept by the next writer
    return new


def describe(names: Names) -> dict[str, Any]:
    """Counts for the CLI's report."""
    return {"artists": len(names.artists), "tracks": len(names.tracks),
            "with_path": sum(1 for p, _ in names.tracks.values() if p)}
