"""Submission files: exact format, round trip, validation, atomicity, parse errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from artistsim.evaluation import submission as sub
from artistsim.evaluation.metrics import ndcg_at_k, score_submission
from artistsim.evaluation.submission import read_submission, submission_gaps, write_submission


def random_lists(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """n sparse track ids and, per query, k distinct other ids."""
    ids = rng.choice(10**7, size=n, replace=False)
    rows = np.argsort(rng.random((n, n)), axis=1)
    rows = rows[rows != np.arange(n)[:, None]].reshape(n, n - 1)[:, :k]
    return ids, ids[rows]


def test_exact_format(tmp_path):
    path = tmp_path / "submission.tsv"
    write_submission(path, [10, 20, 30], np.array([[20, 30], [30, 10], [10, 20]]))
    assert path.read_bytes() == b"10\t20 30\n20\t30 10\n30\t10 20\n"


def test_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(sub, "_BLOCK_ROWS", 7)  # several blocks
    rng = np.random.default_rng(0)
    ids, ranked = random_lists(rng, 50, 20)
    path = tmp_path / "out" / "submission.tsv"
    write_submission(path, ids, ranked)
    back = read_submission(path)
    assert list(back) == ids.tolist()
    assert [back[q] for q in ids.tolist()] == ranked.tolist()
    assert sorted(p.name for p in path.parent.iterdir()) == ["submission.tsv"]


def test_score_of_written_file_equals_core_metric(tmp_path):
    rng = np.random.default_rng(1)
    ids, ranked = random_lists(rng, 60, 10)
    artists = rng.integers(0, 8, size=60)
    path = tmp_path / "submission.tsv"
    write_submission(path, ids, ranked)
    gt = pd.DataFrame({"trackid": ids, "artistid": artists})
    row_of = {t: i for i, t in enumerate(ids.tolist())}
    rows = np.vectorize(row_of.get)(ranked)
    want = ndcg_at_k(rows, artists, k=10)
    assert score_submission(read_submission(path), gt, k=10) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    ("queries", "ranked", "message"),
    [
        ([1, 2], np.array([[2, -1], [1, 3]]), "query 1 is shorter than needed"),
        ([1, 2], np.array([[2, 3], [2, 3]]), "query 2 is in its own list"),
        ([1, 1], np.array([[2, 3], [2, 3]]), "duplicate query ids"),
        ([1, 2], np.array([[2, 3], [3, 3]]), "query 2 repeats an id"),
        ([1, 2, 3], np.array([[2, 3], [1, 3]]), "3 query ids but 2 ranked lists"),
        ([1, 2], np.array([[2.0, 3.0], [1.0, 3.0]]), "integer"),
        ([1, 2], np.array([2, 1]), "2-D"),
    ],
)
def test_write_rejects_bad_lists(tmp_path, queries, ranked, message):
    path = tmp_path / "submission.tsv"
    with pytest.raises(ValueError, match=message):
        write_submission(path, queries, ranked)
    assert not path.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("existing", [None, "old content\n"])
def test_error_mid_write_leaves_no_partial_file(tmp_path, monkeypatch, existing):
    monkeypatch.setattr(sub, "_BLOCK_ROWS", 5)
    real = sub._format_block
    calls = []

    def failing(line, rows):
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(line, rows)

    monkeypatch.setattr(sub, "_format_block", failing)
    path = tmp_path / "submission.tsv"
    if existing is not None:
        path.write_text(existing)
    ids, ranked = random_lists(np.random.default_rng(2), 30, 4)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_submission(path, ids, ranked)
    assert len(calls) == 3  # two blocks had been written when it failed
    if existing is None:
        assert list(tmp_path.iterdir()) == []
    else:
        assert path.read_text() == existing and list(tmp_path.iterdir()) == [path]


def test_read_accepts_blank_lines_and_empty_lists(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("1\t2 3\n\n2\t\n3\t1  2\r\n")
    assert read_submission(path) == {1: [2, 3], 2: [], 3: [1, 2]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1\t2 3\n2 1 3\n", r"s\.tsv:2: expected 'trackid<TAB>id id \.\.\.', found no tab"),
        ("1\t2 3\n2\t1 3\n3\t1 x2\n", r"s\.tsv:3: ranked id 2 must be a plain integer"),
        ("abc\t2 3\n", r"s\.tsv:1: the query trackid must be a plain integer"),
        ("1\t2 -3\n", r"s\.tsv:1: ranked id 2 must be a non-negative integer"),
        ("99999999999999999999\t2\n", r"s\.tsv:1: the query trackid is beyond the 64-bit integer range"),
        ("1\t2 3\n2\t1\n1\t3\n", r"s\.tsv:3: query 1 already listed on line 1"),
        ("1\t2 3.5\n", r"s\.tsv:1: ranked id 2 must be a plain integer"),
    ],
)
def test_read_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "s.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_submission(path)


def test_read_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_submission(tmp_path / "nope.tsv")


def test_submission_gaps_counts_what_is_left_out():
    ids = np.arange(1, 6)
    full = {q: [i for i in ids.tolist() if i != q] for q in ids.tolist()}
    assert submission_gaps(full, ids) == []
    assert submission_gaps({}, ids) == ["the submission is empty: all 5 queries score 0"]
    partial = {1: [2, 3, 4, 5], 2: [1]}
    gaps = submission_gaps(partial, ids)
    assert gaps == ["3 of 5 ground-truth track(s) have no line in the submission (each scores 0)",
                    "1 list(s) hold fewer than 4 ids (shortest: 1)"]
    assert "fewer than 100" in submission_gaps({1: [2]}, np.arange(1, 300))[1]


def test_non_utf8_submission_names_the_file(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_bytes(b"1\t2 3\n2\t\xff\n")
    with pytest.raises(ValueError, match=f"{path}: not UTF-8 text"):
        read_submission(path)
