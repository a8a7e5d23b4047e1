"""What `featurize` is asked to do: the input tracks, their artists, ids and split.

Input is either a folder (walked recursively; files with an audio extension are taken,
see `artistsim.audio.decode.AUDIO_EXTENSIONS`) or a TSV manifest with a header row and the
columns `path` (required; relative to the manifest's folder), and optionally `artist` and
`trackid` (checked by `artistsim.data.ids`). Paths stay inside their folder (the
manifest's, or the walked one): absolute paths, `..` and links to files outside are
refused unless `--allow-outside-paths` is given (`artistsim.data.paths`). Artists come from the manifest, from `--labels` (a TSV
with `path` and `artist`, paths as in the input), or from the files' artist tags
(mutagen) when `--tags` is given, in that order of precedence. A track without an artist
goes to the test split, without ground truth.

The plan is deterministic: the same input and options give the same trackids (the
manifest's, else the position in the sorted list of paths), the same artist ids (the
names' sorted order, or the names themselves when all are integers) and the same split
(a seeded draw of whole artists), in every process and on every machine, so that shards
agree without talking to each other.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from artistsim.audio.decode import AUDIO_EXTENSIONS, UNSUPPORTED_EXTENSIONS
from artistsim.data.errors import DataError
from artistsim.data.ids import check_ids, parse_ids
from artistsim.data.paths import PathError, escaping_rows

PLAN_COLUMNS = ("trackid", "path", "artist", "artistid", "split")


def display_path(path: str) -> str:
    """A path as one TSV cell: undecodable bytes, tabs and newlines escaped."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def walk_folder(root: Path) -> list[str]:
    """Audio files under `root` (recursive, symlinked folders not followed), relative, sorted.

    A file link that leads outside `root` is refused like a manifest path that does
    (`refuse_outside`): the walk must not be a way to read files elsewhere.
    """
    wanted = AUDIO_EXTENSIONS | UNSUPPORTED_EXTENSIONS
    found, links = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in wanted:
                rel = os.path.relpath(os.path.join(folder, name), root)
                found.append(rel)
                if os.path.islink(os.path.join(folder, name)):
                    links.append(rel)
    refuse_outside(root, links, lambda row: f"{root / links[row]}")
    return sorted(found)


def refuse_outside(base: Path, rel_paths: list[str], where) -> None:
    """PathError naming the first path (by `where(row)`) that leaves `base`, and how many do."""
    bad = escaping_rows(base, rel_paths)
    if bad:
        row = min(bad)
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise PathError(f"{where(row)}: the path {bad[row]}{more}; pass --allow-outside-paths to allow it")


def _read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot parse as tab-separated values with a header row "
                        f"({type(exc).__name__})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:  # named, never quoted: the first line may belong to any file
        raise DataError(f"{path}: missing column(s) {missing} (the first line must be a header naming them)")
    empty = df["path"].str.strip() == ""
    if empty.any():
        raise DataError(f"{path}: line {int(np.flatnonzero(empty.to_numpy())[0]) + 2}: empty path")
    return df


def read_manifest(path: Path) -> pd.DataFrame:
    """A manifest's rows as columns path (as written), artist ('' if none), trackid (or -1)."""
    df = _read_table(path, ("path",))
    out = pd.DataFrame({"path": df["path"],
                        "artist": df["artist"].str.strip() if "artist" in df.columns else ""})
    if "trackid" in df.columns:
        out["trackid"] = check_ids(df["trackid"], str(path), "trackid", first_line=2)
        dup = out["trackid"].duplicated()
        if dup.any():
            row = int(np.flatnonzero(dup.to_numpy())[0])
            raise DataError(f"{path}: line {row + 2}: duplicate trackid {out['trackid'].iloc[row]}")
    dup = out["path"].duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"{path}: line {row + 2}: path listed twice (first on line "
                        f"{int(np.flatnonzero((out['path'] == out['path'].iloc[row]).to_numpy())[0]) + 2})")
    refuse_outside(path.parent, out["path"].tolist(), lambda row: f"{path}: line {row + 2}")
    return out


def read_tag_artist(path: Path) -> str:
    """The file's artist tag (first value), or '' when it has none or cannot be read."""
    try:
        import mutagen

        tags = mutagen.File(str(path), easy=True)
    except Exception:  # noqa: BLE001 - a bad tag must not stop the plan; decoding will report the file
        return ""
    if tags is None:
        return ""
    for key in ("artist", "albumartist", "composer"):
        try:
            values = tags.get(key)
        except (KeyError, ValueError):
            values = None
        if values:
            return str(values[0]).strip()
    return ""


def list_inputs(source: str | Path, labels: str | Path | None = None, tags: bool = False,
                progress: bool | None = None) -> tuple[Path, pd.DataFrame]:
    """The base folder and the input rows: trackid, path (relative to the base), artist."""
    source = Path(source)
    if source.is_dir():
        base, df = source, pd.DataFrame({"path": walk_folder(source), "artist": ""})
        if df.empty:
            raise DataError(f"{source}: no audio files found (looked for {', '.join(sorted(AUDIO_EXTENSIONS))})")
    elif source.is_file():
        base, df = source.parent, read_manifest(source)
    else:
        raise DataError(f"{source}: no such folder or manifest")
    if df.empty:
        raise DataError(f"{source}: no tracks listed; nothing to featurize")
    if "trackid" not in df.columns:
        df = df.sort_values("path", kind="stable").reset_index(drop=True)
        df.insert(0, "trackid", np.arange(len(df), dtype=np.int64))
    if labels is not None:
        lab = _read_table(Path(labels), ("path", "artist"))
        mapping = dict(zip(lab["path"], lab["artist"].str.strip()))
        from_labels = df["path"].map(mapping).fillna("")
        df["artist"] = np.where(df["artist"] != "", df["artist"], from_labels)
    if tags:
        from tqdm.auto import tqdm

        from artistsim.data.layout import progress_disabled

        need = np.flatnonzero((df["artist"] == "").to_numpy())
        found = [read_tag_artist(base / df["path"].iloc[i])
                 for i in tqdm(need, desc="Reading tags", unit="file", disable=progress_disabled(progress))]
        artist = df["artist"].to_numpy(dtype=object).copy()
        artist[need] = found
        df["artist"] = artist
    return base, df[["trackid", "path", "artist"]].reset_index(drop=True)


def artist_ids(artists: pd.Series) -> tuple[np.ndarray, dict[str, int]]:
    """Integer ids for artist names: the names themselves when all are integers, else sorted order."""
    names = sorted({a for a in artists if a != ""})
    as_int, reasons = parse_ids(pd.Series(names, dtype=object))  # ids only if every name is one
    if len(names) and (reasons == None).all():  # noqa: E711 - elementwise over an object array
        mapping = {n: int(v) for n, v in zip(names, as_int)}
    else:
        mapping = {n: i for i, n in enumerate(names)}
    ids = np.array([mapping.get(a, -1) for a in artists], dtype=np.int64)
    return ids, mapping


def make_plan(df: pd.DataFrame, test_fraction: float, seed: int) -> pd.DataFrame:
    """Add artistid (-1 unlabelled) and split: a seeded share of whole artists goes to test.

    Unlabelled tracks go to test. Artists are drawn by a seeded permutation of their
    sorted names, so the split depends on the set of artists, not on the listing order.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    ids, mapping = artist_ids(df["artist"])
    names = sorted(mapping)
    n_test = int(round(test_fraction * len(names)))
    if test_fraction > 0 and len(names) >= 2:
        n_test = min(max(n_test, 1), len(names) - 1)
    order = np.random.default_rng(seed).permutation(len(names))
    test_names = {names[i] for i in order[:n_test]}
    split = np.where((df["artist"] == "") | df["artist"].isin(test_names), "test", "train")
    plan = df.assign(artistid=ids, split=split)
    return plan[list(PLAN_COLUMNS)]
