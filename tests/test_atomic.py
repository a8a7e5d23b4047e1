"""atomic: recognisable temp names, stale ones of dead runs removed, normal permissions."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from artistsim.atomic import TMP_MARK, atomic_path, atomic_write_text, check_writable, stale_temp_files


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_name_is_recognisable_and_renamed(tmp_path):
    with atomic_path(tmp_path / "out.npy", suffix=".npy") as tmp:
        assert tmp.name.startswith(f".out.npy{TMP_MARK}{os.getpid()}-") and tmp.suffix == ".npy"
        tmp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]


def test_only_our_stale_temps_are_removed(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".a.tsv{TMP_MARK}{dead}-0123abcd"
    stale_pt = tmp_path / f".b.pt{TMP_MARK}{dead}-0123abcd.pt"
    live = tmp_path / f".a.tsv{TMP_MARK}{os.getpid()}-0123abcd"
    others = [tmp_path / ".a.tsv.x1y2.tmp", tmp_path / f"a{TMP_MARK}{dead}-0123abcd", tmp_path / "notes.txt"]
    for path in (stale, stale_pt, live, *others):
        path.write_text("x")
    assert sorted(stale_temp_files(tmp_path)) == sorted([stale, stale_pt])
    atomic_write_text(tmp_path / "c.txt", "hello")
    assert not stale.exists() and not stale_pt.exists()
    assert live.exists() and all(p.exists() for p in others)


def test_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "r.md", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "r.md").stat().st_mode & 0o777 == 0o640


def test_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_check_writable(tmp_path):
    (tmp_path / "f").write_text("x")
    check_writable(tmp_path / "new" / "deeper" / "sub.tsv", "file")
    check_writable(tmp_path / "run", "dir")
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path, "file")
    with pytest.raises(NotADirectoryError):
        check_writable(tmp_path / "f", "dir")
    with pytest.raises(NotADirectoryError):
        check_writable(tmp_path / "f" / "sub.tsv", "file")
    assert not (tmp_path / "new").exists()
