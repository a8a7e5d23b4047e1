"""Atomic file writes: a crash or an error never leaves a half-written output behind.

Everything the product writes for a user (stores, checkpoints, embeddings, submissions,
reports) goes through `atomic_path`: the data is written to a temporary file in the
destination's own folder and renamed over the destination only when complete, which is
atomic on POSIX file systems.

A SIGKILL cannot be cleaned up after, so temporary files carry a recognisable name,
`.NAME.artistsim-tmp-PID-XXXXXXXX[SUFFIX]`: the next write into the same folder removes
those whose process is gone (never another live process's, never a file not of ours).
They are created with the usual permissions (0666 minus the umask), unlike mkstemp's
0600, so a renamed output is as readable as any file the user creates.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".artistsim-tmp-"
_TMP_RE = re.compile(r"^\..+" + re.escape(TMP_MARK) + r"(\d+)-[0-9a-f]{8}(\.[A-Za-z0-9]+)*$")


def _pid_alive(pid: int) -> bool:
    """True when a process with this id exists (or may: not ours to signal)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temp_files(folder: str | Path) -> list[Path]:
    """Our temporary files in `folder` whose writing process no longer exists."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = []
    for entry in folder.iterdir():  # one folder, not a tree: outputs sit next to their temps
        match = _TMP_RE.match(entry.name)
        if match and entry.is_file() and not _pid_alive(int(match.group(1))):
            stale.append(entry)
    return stale


def remove_stale_temp_files(folder: str | Path) -> int:
    """Delete `stale_temp_files(folder)`; returns how many were removed."""
    removed = 0
    for path in stale_temp_files(folder):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def _create_temp(path: Path, suffix: str) -> Path:
    """Create an empty temp file next to `path`, honouring the umask (O_EXCL: never shared)."""
    while True:
        tmp = path.parent / f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds.

    `suffix` lets writers that insist on an extension (numpy's `.npy`) keep it. Stale
    temporary files of killed runs in the same folder are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", str(path))
    remove_stale_temp_files(path.parent)
    tmp_path = _create_temp(path, suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def check_writable(path: str | Path, kind: str = "file") -> None:
    """Fail early (before hours of work) when `path` cannot become an output of this `kind`.

    `kind` "file": `path` must not be a directory and its folder must be creatable and
    writable. "dir": `path` must not be a file and must be (or be creatable as) a
    writable folder. Raises OSError naming the path; creates nothing.
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", str(path))
    if kind == "dir" and path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(path))
    probe = path if kind == "dir" else path.parent
    while not probe.exists():  # the nearest existing ancestor decides whether we can create
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is not a directory", str(probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "folder is not writable", str(probe))
