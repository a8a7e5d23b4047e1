"""Issue 12's fault matrix: every bad input a new user may hand a verb, and what must happen.

One test (or parametrised family) per failure of the issue, named by the behaviour it
holds; issue 20's hostile inputs are a table of their own (hostile_cases.py,
test_hostile_input.py). The promise checked
throughout: bad input ends with one line `artistsim VERB: error: ...` naming the file or
row and the reason, exit status 2, no traceback unless `--debug`; `validate` lists every
problem in one pass. Kills at random moments live in test_kills.py, the non-editable
install in test_packaging.py.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_dataset
from fault_cases import assert_one_line_error, edit_meta, meta_rows, run_cli, set_cell, tiny_config

import artistsim.atomic as atomic_mod
from artistsim.data.layout import DataError, read_meta


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data", n_train_artists=10)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data, run): one tiny trained run shared by the tests that need a checkpoint."""
    root = tmp_path_factory.mktemp("trained")
    data = write_tiny_dataset(root / "data", n_train_artists=10)
    from artistsim.cli import main

    assert main(["-q", "train", str(data), "--config", str(tiny_config(root)), "--out", str(root / "run")]) == 0
    return data, root / "run"


def _copy(data: Path, to: Path) -> Path:
    shutil.copytree(data, to)
    return to


def _first_path(root: Path, split: str = "train") -> Path:
    return root / f"{split}_features" / meta_rows(root, split)[0][-1]


# ------------------ validate in one pass


def test_validate_lists_every_problem_in_one_pass(data, capsys):
    missing = _first_path(data)
    missing.unlink()  # a missing feature file of row 2 ...
    rows = meta_rows(data, "train")
    edit_meta(data, "train", lambda ls: ls + [ls[3]])  # ... a duplicate trackid ...
    for line in (5, 6, 7):  # ... three bad ids ...
        set_cell(data, "train", line, 0, "x1")
    test_rows = meta_rows(data, "test")
    set_cell(data, "test", 2, 0, rows[10][0])  # ... a train trackid in test ...
    set_cell(data, "train", 9, 1, "4242")  # ... and an artist with one track
    code, out, _ = run_cli(capsys, "validate", data)
    assert code == 1
    assert f"line 2: {missing}: feature file not found" in out
    assert f"line {len(rows) + 2}: duplicate trackid {rows[2][0]} (first on line 4)" in out
    assert all(f"line {n}: column 'trackid' must be a plain integer" in out for n in (5, 6, 7))
    assert "in both train_meta.tsv and test_meta.tsv" in out
    assert "artist(s) with one track" in out and "4242" in out
    assert f"no artist for test_meta.tsv line 2 (trackid {rows[10][0]})" in out
    assert f"trackid {test_rows[0][0]} is not in test_meta.tsv" in out


def test_everything_planted_at_once_is_listed_in_one_run(data, tmp_path, capsys):
    """The issue's done-when: all of the faults below at once, every one in one report."""
    rows, test_rows = meta_rows(data, "train"), meta_rows(data, "test")
    feat = data / "train_features"
    (feat / rows[0][2]).unlink()
    for line, value in ((3, "x1"), (4, "inf"), (5, "99999999999999999999"), (6, "1e3")):
        set_cell(data, "train", line, 0, value)
    set_cell(data, "train", 7, 2, "")
    set_cell(data, "train", 8, 2, str(_first_path(write_tiny_dataset(tmp_path / "other", seed=5))))
    (feat / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    set_cell(data, "train", 9, 2, "passwd")
    np.save(feat / rows[8][2], np.full((512, 4), 1e300))
    np.save(feat / rows[9][2], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    set_cell(data, "train", 12, 1, "4242")
    edit_meta(data, "train", lambda ls: ls + [ls[12]])
    set_cell(data, "test", 2, 0, "-7")
    set_cell(data, "test", 3, 0, rows[12][0])
    gt = data / "test_gt.tsv"
    gt.write_text("\n".join(gt.read_text().splitlines()[:-1] + ["77777\t900"]) + "\n")
    code, out, _ = run_cli(capsys, "validate", data)
    expected = [
        "line 2: " + str(feat / rows[0][2]) + ": feature file not found",
        "line 3: column 'trackid' must be a plain integer",
        "line 4: column 'trackid' must be a plain integer",
        "line 5: column 'trackid' is beyond the 64-bit integer range",
        "line 6: column 'trackid' must be a plain integer",
        "line 7: empty archive_features_path",
        "line 8: archive_features_path",
        "line 9: " + str(feat / "passwd") + ": not an .npy file",
        "line 10: " + str(feat / rows[8][2]) + ": 2048 value(s) beyond the float32 range",
        "line 11: " + str(feat / rows[9][2]) + ": holds pickled Python objects",
        f"line {len(rows) + 2}: duplicate trackid {rows[11][0]} (first on line 13)",
        "test_meta.tsv: line 2: column 'trackid' must be a non-negative integer",
        "in both train_meta.tsv and test_meta.tsv",
        f"no artist for test_meta.tsv line {len(test_rows) + 1}",
        "trackid 77777 is not in test_meta.tsv",
        "artist(s) with one track",
    ]
    assert code == 1
    assert [e for e in expected if e not in out] == []
    assert "root:x" not in out
    # and the knock-on effects of the edited test ids: one more test track without an artist,
    # two ground-truth lines for trackids no longer in test_meta.tsv
    assert f"{len(expected) - 1 + 3} error(s), 1 warning(s)" in out


# ------------------ paths stay inside


@pytest.mark.parametrize("kind", ["absolute", "dotdot"])
def test_meta_paths_stay_under_the_feature_root(data, tmp_path, capsys, kind):
    other = write_tiny_dataset(tmp_path / "other", seed=5)
    target = _first_path(other)
    value = str(target) if kind == "absolute" else os.path.relpath(target, data / "train_features")
    set_cell(data, "train", 2, 2, value)
    code, out, _ = run_cli(capsys, "validate", data)
    assert code == 1 and "train_meta.tsv: line 2: archive_features_path" in out and "--allow-outside-paths" in out
    assert_one_line_error(*run_cli(capsys, "pack", data)[::2], "pack", "line 2", "leaves train_features/")
    assert not (data / "packed").exists()
    assert run_cli(capsys, "pack", data, "--allow-outside-paths")[0] == 0
    assert run_cli(capsys, "--allow-outside-paths", "validate", data)[0] == 0


def test_errors_never_echo_file_contents(data, capsys):
    secret = data / "train_features" / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n" * 20)
    set_cell(data, "train", 2, 2, "passwd")
    code, out, _ = run_cli(capsys, "validate", data)
    assert code == 1 and "passwd: not an .npy file" in out and "root:x" not in out
    code, _, err = run_cli(capsys, "pack", data)
    assert_one_line_error(code, err, "pack", "line 2", "not an .npy file")
    assert "root:x" not in err


# ------------------ one line, exit 2


def _fail_replace(code: int):
    def replace(src, dst):
        raise OSError(code, os.strerror(code), str(dst))

    return replace


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_disk_errors_are_one_line_and_leave_nothing(data, capsys, monkeypatch, code):
    monkeypatch.setattr(atomic_mod.os, "replace", _fail_replace(code))
    assert_one_line_error(*run_cli(capsys, "pack", data)[::2], "pack", os.strerror(code), "train.frames")
    assert not list((data / "packed").iterdir())  # and nothing partial is left


@pytest.mark.parametrize("verb", ["predict", "baseline"])
def test_out_is_a_directory_fails_before_any_work(data, tmp_path, capsys, verb):
    extra = ["--run", str(tmp_path / "no-such-run")] if verb == "predict" else []
    code, _, err = run_cli(capsys, verb, data, *extra, "--out", tmp_path)
    assert_one_line_error(code, err, verb, f"{tmp_path}: is a directory")  # not the missing run: checked first


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign"])
def test_bad_checkpoint_is_one_line(trained, tmp_path, capsys, damage):
    data, run = trained
    bad = _copy(run, tmp_path / "run")
    ckpt = bad / "best.pt"
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "garbage":
        ckpt.write_bytes(os.urandom(5000))
    else:
        import torch

        torch.save({"weights": torch.zeros(3)}, ckpt)
    code, _, err = run_cli(capsys, "predict", data, "--run", bad, "--out", tmp_path / "sub.tsv")
    assert_one_line_error(code, err, "predict", str(ckpt), "checkpoint")


def test_resume_with_another_config_is_one_line(trained, tmp_path, capsys):
    data, run = trained
    part = _copy(run, tmp_path / "run")
    other = tiny_config(tmp_path, d_model=48)
    code, _, err = run_cli(capsys, "train", data, "--config", other, "--out", part, "--resume")
    assert_one_line_error(code, err, "train", "last.pt", "different config", "model.d_model")


def test_debug_shows_the_traceback(data, capsys):
    set_cell(data, "train", 2, 0, "nan")
    with pytest.raises(DataError):
        run_cli(capsys, "pack", data, "--debug")


# ------------------ stale temp files


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_files_of_ours_are_removed_on_the_next_run(data, capsys):
    packed = data / "packed"
    packed.mkdir()
    dead, alive = _dead_pid(), os.getpid()
    stale = packed / f".train.frames.artistsim-tmp-{dead}-0badc0de"
    live = packed / f".train.frames.artistsim-tmp-{alive}-0badc0de"
    foreign = packed / ".train.frames.mine.tmp"
    for path in (stale, live, foreign):
        path.write_bytes(b"\0" * 4096)
    assert run_cli(capsys, "pack", data, "--split", "train")[0] == 0
    assert not stale.exists() and live.exists() and foreign.exists()


# ------------------ culprits named


@pytest.mark.parametrize(
    "file, text, needle",
    [
        ("train_meta.tsv", "", "train_meta.tsv: file is empty"),
        ("test_gt.tsv", "", "test_gt.tsv: file is empty"),
        ("train_meta.tsv", "inf", "line 2: column 'trackid' must be a plain integer"),
        ("train_meta.tsv", "99999999999999999999", "line 2: column 'trackid' is beyond the 64-bit integer range"),
        ("train_meta.tsv", "1e20", "line 2: column 'trackid' must be a plain integer"),
        ("train_meta.tsv", "1e3", "line 2: column 'trackid' must be a plain integer"),
    ],
)
def test_errors_name_their_culprit(data, capsys, file, text, needle):
    if text:
        set_cell(data, file.split("_")[0], 2, 0, text)
    else:
        (data / file).write_text("")
    code, out, _ = run_cli(capsys, "validate", data)
    assert code == 1 and needle in out
    assert "test: " in out or file.startswith("test")  # the report went on past the bad file
    if file == "train_meta.tsv":
        with pytest.raises(DataError, match=needle.split(": ")[-1][:20]):
            read_meta(data, "train")


# ------------------ caught up front


def test_negative_test_trackid_is_named(data, capsys):
    set_cell(data, "test", 3, 0, "-7")
    code, out, _ = run_cli(capsys, "validate", data)
    assert code == 1 and "test_meta.tsv: line 3: column 'trackid' must be a non-negative integer" in out


def test_one_artist_dataset_is_refused_for_training(data, tmp_path, capsys):
    edit_meta(data, "train", lambda ls: [ls[0]] + ["\t".join([c.split("\t")[0], "5", c.split("\t")[2]]) for c in ls[1:]])
    code, out, _ = run_cli(capsys, "validate", data)
    assert code == 1 and "train_meta.tsv: 1 artist(s); training needs at least 2" in out
    code, _, err = run_cli(capsys, "train", data, "--config", tiny_config(tmp_path), "--out", tmp_path / "run")
    assert_one_line_error(code, err, "train", "train_meta.tsv", "1 artist(s)")


def test_float64_beyond_float32_is_named(data, capsys):
    path = _first_path(data)
    arr = np.load(path).astype(np.float64)
    arr[3, 0] = 1e300
    np.save(path, arr)
    code, out, _ = run_cli(capsys, "validate", data)
    assert code == 1 and "train_meta.tsv line 2" in out and "beyond the float32 range" in out
    code, _, err = run_cli(capsys, "pack", data, "--dtype", "float32")
    assert_one_line_error(code, err, "pack", "train_meta.tsv line 2", path.name, "beyond the float32 range")


# ------------------ ground truth


def test_ground_truth_extra_and_missing_are_listed(data, capsys):
    gt = data / "test_gt.tsv"
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join(lines[:-1] + ["77777\t900"]) + "\n")
    code, out, _ = run_cli(capsys, "validate", data)
    assert code == 1 and "trackid 77777 is not in test_meta.tsv" in out
    assert f"no artist for test_meta.tsv line {len(lines)}" in out


def test_predict_needs_no_ground_truth(trained, tmp_path, capsys):
    data, run = trained
    copy = _copy(data, tmp_path / "data")
    gt = copy / "test_gt.tsv"
    gt.write_text("\n".join(gt.read_text().splitlines()[:3]) + "\n")  # incomplete
    code, out, err = run_cli(capsys, "predict", copy, "--run", run, "--out", tmp_path / "sub.tsv", "--no-rerank")
    assert code == 0, err
    assert len((tmp_path / "sub.tsv").read_text().splitlines()) == len(meta_rows(copy, "test"))


# ------------------ nested layout


def test_nested_layout_with_first_file_missing(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "data", nested=True)
    first = data / "train_features" / "train_features" / meta_rows(data, "train")[0][-1]
    first.unlink()
    code, out, _ = run_cli(capsys, "validate", data)
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert code == 1 and len(errors) == 1 and str(first) in errors[0], errors


# ------------------ score warns


def _write_sub(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _gt_ids(data: Path) -> list[str]:
    return [line.split("\t")[0] for line in (data / "test_gt.tsv").read_text().splitlines()[1:]]


@pytest.mark.parametrize("case, needle", [("empty", "is empty"), ("missing", "have no line"),
                                          ("short", "hold fewer than")])
def test_score_warns_and_strict_fails(data, tmp_path, capsys, case, needle):
    ids = _gt_ids(data)
    full = [f"{q}\t" + " ".join(i for i in ids if i != q) for q in ids]
    lines = {"empty": [], "missing": full[1:], "short": [full[0].rsplit(" ", 3)[0]] + full[1:]}[case]
    sub = _write_sub(tmp_path / "sub.tsv", lines)
    code, out, err = run_cli(capsys, "score", sub, data / "test_gt.tsv")
    assert code == 0 and "nDCG@100" in out and f"artistsim score: warning: {sub}" in err and needle in err
    assert_one_line_error(*run_cli(capsys, "score", sub, data / "test_gt.tsv", "--strict")[::2], "score", needle)


def test_non_utf8_submission_names_the_file(data, tmp_path, capsys):
    sub = tmp_path / "sub.tsv"
    sub.write_bytes(b"1003\t1006 \xff\xfe 1009\n")
    assert_one_line_error(*run_cli(capsys, "score", sub, data / "test_gt.tsv")[::2], "score", str(sub), "UTF-8")


# ------------------ minor


def test_outputs_have_normal_permissions(data, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        assert run_cli(capsys, "baseline", data, "--out", tmp_path / "sub.tsv")[0] == 0
        assert run_cli(capsys, "pack", data, "--split", "train")[0] == 0
    finally:
        os.umask(old)
    for path in (tmp_path / "sub.tsv", data / "packed" / "train.frames", data / "packed" / "train.index.npz"):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_pickled_npy_is_named_as_such(data, capsys):
    path = _first_path(data)
    np.save(path, np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    code, out, _ = run_cli(capsys, "validate", data)
    assert code == 1 and "pickled Python objects" in out and "truncated" not in out


def test_resume_before_the_first_checkpoint_starts_fresh(data, tmp_path, capsys):
    code, out, err = run_cli(capsys, "-q", "train", data, "--config", tiny_config(tmp_path), "--out",
                             tmp_path / "run", "--resume")
    assert code == 0, err
    assert "does not exist yet; starting a fresh run" in out and (tmp_path / "run" / "best.pt").is_file()


@pytest.mark.parametrize("flag", ["-q", "--quiet", "--debug", "--allow-outside-paths"])
def test_global_flags_after_the_verb(data, capsys, flag):
    code, out, err = run_cli(capsys, "baseline", data, flag)
    assert code == 0 and "validation nDCG@100" in out, err


# ------------------ packaged configs


def test_train_without_config_uses_packaged_config(tmp_path, monkeypatch):
    from artistsim.cli import build_parser
    from artistsim.config import load_train_config, packaged_config

    monkeypatch.chdir(tmp_path)  # no source tree around: the configs come from the package
    for name in ("transformer_seed.toml", "conformer_seed.toml", "transformer_demo.toml", "conformer_demo.toml"):
        assert load_train_config(packaged_config(name)).stages
    assert build_parser().parse_args(["train", "d", "--model", "conformer", "--out", "r"]).config is None


# ------------------ usage mistakes


@pytest.mark.parametrize(("argv", "prog", "needle"), [
    (("train",), "artistsim train", "required: data_dir, --out"),
    (("nosuchverb",), "artistsim", "invalid choice: 'nosuchverb'"),
    (("index",), "artistsim index", "required: index_command"),
    (("query", "cat", "--k", "abc"), "artistsim query", "--k: invalid int value: 'abc'"),
])
def test_usage_mistakes_are_one_line(capsys, argv, prog, needle):
    from artistsim.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stop.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: ") and needle in lines[0], lines
    assert lines[0].endswith(f"(see '{prog} --help')")
