"""Where meta paths may point: inside the data directory, unless the user allows more.

A meta file is input from a stranger (a download, a colleague's export). Its paths must
not make a verb read files elsewhere on the machine, so two escapes are refused by
default:
- by text: absolute paths and `..` climbing out of the split's feature folder
  (`outside_rows`, vectorised over the meta column);
- by link: a path passing through a symbolic link whose target lies outside the data
  directory (`escaping_links`). Links that stay inside it (dataset managers that keep
  their objects under the same tree, such as git-annex or DVC's link cache) are fine.

`--allow-outside-paths` lifts both for one command (`outside_paths_allowed`).

The same policy holds for every other list of paths read from a file: a featurize
manifest (and the links met by featurize's folder walk) and a catalogue manifest's
segment and index names (`escaping_rows`, `inside`), so a crafted manifest can neither
make artistsim decode /etc/passwd nor read another catalogue's segments.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import pandas as pd

from artistsim.data.errors import DataError

class PathError(DataError):
    """A path read from a file that leaves the folder it must stay in."""


_ALLOW_OUTSIDE: ContextVar[bool] = ContextVar("artistsim_allow_outside_paths", default=False)


@contextlib.contextmanager
def outside_paths_allowed(allowed: bool = True) -> Iterator[None]:
    """Within this block, meta paths may leave the split's feature folder (`--allow-outside-paths`).

    Why a context and not an argument: the policy is the user's, set once by the CLI, and
    every reader below it (pack, train, predict ...) must apply the same one.
    """
    token = _ALLOW_OUTSIDE.set(allowed)
    try:
        yield
    finally:
        _ALLOW_OUTSIDE.reset(token)


def outside_allowed() -> bool:
    """The policy in force: may meta paths leave the split's feature folder?"""
    return _ALLOW_OUTSIDE.get()


def outside_rows(paths: pd.Series) -> np.ndarray:
    """Rows whose path is absolute or climbs out with `..`: they leave the feature folder."""
    p = paths.str.replace("\\", "/", regex=False)
    return (p.str.startswith("/") | p.str.contains(r"(?:^|/)\.\.(?:/|$)") | p.str.match(r"^[A-Za-z]:/")).to_numpy(bool)


def _links_under(root: Path) -> list[str]:
    """Relative (posix) paths of every symbolic link under `root`, found in one walk.

    The walk reads directory entries only (no stat per file) and does not descend into
    links, so it costs a small fraction of reading the features themselves.
    """
    links: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable folders are reported by the readers, with the file at fault
        for entry in entries:
            if entry.is_symlink():
                links.append(Path(entry.path).relative_to(root).as_posix())
            elif entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
    return links


def escaping_links(data_dir: str | Path, root: Path, rel_paths: Sequence[str]) -> dict[int, str]:
    """Rows whose file, reached through a symbolic link, lies outside `data_dir`: row -> target.

    Only rows under a link are resolved one by one (usually none), so a tree without links
    costs one directory walk.
    """
    links = _links_under(root)
    if not links:
        return {}
    rel = pd.Series(list(rel_paths), dtype=object).astype(str).str.replace("\\", "/", regex=False)
    rel = rel.str.replace(r"^(?:\./)+", "", regex=True)
    # A row is under a link when the path itself or one of its ancestor folders is one:
    # one set lookup per path depth, so a tree of links (git-annex: every file) stays linear.
    parts = rel.str.split("/")
    depth = parts.str.len().to_numpy()
    link_set = set(links)
    under = np.zeros(len(rel), dtype=bool)
    for i in range(1, int(depth.max(initial=0)) + 1):
        under |= (depth >= i) & parts.str[:i].str.join("/").isin(link_set).to_numpy(bool)
    boundary = Path(os.path.realpath(data_dir))
    escaped: dict[int, str] = {}
    for row in np.flatnonzero(under):
        target = Path(os.path.realpath(root / rel.iloc[row]))
        if not target.is_relative_to(boundary):
            escaped[int(row)] = str(target)
    return escaped


def escaping_rows(base: str | Path, rel_paths: Sequence[str], boundary: str | Path | None = None) -> dict[int, str]:
    """Rows of `rel_paths` (relative to `base`) that leave `boundary` (default `base`): row -> why.

    For lists whose every file is then read at a cost far above a `realpath` (audio to
    decode, a catalogue's few segment names): each row is resolved, so links are caught
    wherever they are. Empty when `--allow-outside-paths` is in force.
    """
    if outside_allowed():
        return {}
    base = Path(base)
    bound = Path(os.path.realpath(boundary if boundary is not None else base))
    text_out = outside_rows(pd.Series([str(r) for r in rel_paths], dtype=object)) if len(rel_paths) else []
    found: dict[int, str] = {}
    for row, rel in enumerate(rel_paths):
        if text_out[row]:
            found[row] = "is absolute or climbs out with '..'"
        elif not Path(os.path.realpath(base / str(rel))).is_relative_to(bound):
            found[row] = f"leads outside {bound} through a symbolic link"
    return found


def inside(base: str | Path, rel: str, where: str) -> Path:
    """`base / rel` when it stays inside `base`; DataError naming `where` otherwise.

    The single-path form of the policy (a catalogue manifest's segment and index names).
    """
    bad = escaping_rows(base, [rel])
    if bad:
        raise PathError(f"{where} {bad[0]}; pass --allow-outside-paths to allow it")
    return Path(base) / rel
