"""Submission files: `trackid<TAB>id1 id2 ... id100`, one line per query.

Writing validates before anything touches the disk (a full, self-free, duplicate-free
list per query), because a defect found by the leaderboard costs a submission slot.
The file appears atomically: an error half-way leaves no partial file behind, and an
older file at the same path stays intact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from artistsim.atomic import atomic_path
from artistsim.data.ids import ID_LIMIT, check_id, id_reason

__all__ = ["write_submission", "read_submission", "submission_gaps"]

_BLOCK_ROWS = 4096  # rows formatted and written at a time: bounded memory, one format call per row


def _integer_array(values: object, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer track ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _validate(query_ids: np.ndarray, ranked_ids: np.ndarray) -> None:
    """Raise ValueError naming the first offending query for any defect of the lists."""
    n_queries = query_ids.shape[0]
    if ranked_ids.shape[0] != n_queries:
        raise ValueError(f"{n_queries} query ids but {ranked_ids.shape[0]} ranked lists")
    if ranked_ids.shape[1] == 0:
        raise ValueError("ranked lists are empty (shape (Q, 0))")
    if n_queries and query_ids.min() < 0:
        raise ValueError(f"query id {query_ids[query_ids < 0][0]} is negative")
    seen, counts = np.unique(query_ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"duplicate query ids, e.g. {seen[counts > 1][:5].tolist()}")
    short = (ranked_ids < 0).any(axis=1)
    if short.any():
        row = int(np.flatnonzero(short)[0])
        missing = int((ranked_ids[row] < 0).sum())
        raise ValueError(
            f"the list of query {query_ids[row]} is shorter than needed: {missing} of "
            f"{ranked_ids.shape[1]} slots hold no id (negative), {int(short.sum())} list(s) affected"
        )
    own = (ranked_ids == query_ids[:, None]).any(axis=1)
    if own.any():
        first = query_ids[np.flatnonzero(own)[0]]
        raise ValueError(f"query {first} is in its own list ({int(own.sum())} such queries)")
    ordered = np.sort(ranked_ids, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        raise ValueError(
            f"the list of query {query_ids[row]} repeats an id ({int(repeated.sum())} such lists)"
        )


def write_submission(path: str | Path, query_ids: Sequence[int] | np.ndarray, ranked_ids: np.ndarray) -> None:
    """Write one line `query<TAB>id id ...` per query (track ids, not row indices).

    `ranked_ids` is (Q, L) with L >= 1 (100 for the competition). Rejected: mismatched
    shapes, negative ids (a -1 means a list came out shorter than needed), a query in its
    own list, repeated ids in a list, duplicate queries.
    """
    queries = _integer_array(query_ids, "query_ids", 1)
    ranked = _integer_array(ranked_ids, "ranked_ids", 2)
    _validate(queries, ranked)
    line = "%d\t" + " ".join(["%d"] * ranked.shape[1]) + "\n"
    table = np.column_stack([queries, ranked])
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for start in range(0, table.shape[0], _BLOCK_ROWS):
            fh.write(_format_block(line, table[start : start + _BLOCK_ROWS]))


def _format_block(line: str, rows: np.ndarray) -> str:
    return "".join([line % tuple(row) for row in rows.tolist()])


def _parse_id(token: str, path: Path, line_no: int) -> int:
    return check_id(token, f"{path}:{line_no}: the query trackid")


def read_submission(path: str | Path) -> dict[int, list[int]]:
    """Parse a submission file into {query trackid: [ranked trackids]}.

    Each non-blank line must be `trackid<TAB>ids` with ids separated by whitespace; an
    empty list is allowed (it simply scores 0). Errors name the file and line number:
    a missing tab, a non-integer id, a query that appears twice. Self-references and
    repeated ids are left to the metric, which scores them as documented there.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: submission file not found")
    result: dict[int, list[int]] = {}
    first_line: dict[int, int] = {}
    line_no = 0
    try:
        with path.open("r", encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                _parse_line(line, path, line_no, result, first_line)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text (after line {line_no}); a submission is digits, "
                         f"tabs and spaces") from None
    return result


def _parse_line(line: str, path: Path, line_no: int, result: dict[int, list[int]], first_line: dict[int, int]) -> None:
    if not line.strip():
        return
    head, tab, rest = line.rstrip("\r\n").partition("\t")
    if not tab:
        raise ValueError(f"{path}:{line_no}: expected 'trackid<TAB>id id ...', found no tab")
    query = _parse_id(head.strip(), path, line_no)
    if query in result:
        raise ValueError(f"{path}:{line_no}: query {query} already listed on line {first_line[query]}")
    try:
        ids = [int(token) for token in rest.split()]
    except ValueError:
        ids = [-1]  # named below, by the one id check
    if ids and (min(ids) < 0 or max(ids) >= ID_LIMIT):
        tokens = rest.split()
        bad = next(i for i, t in enumerate(tokens) if id_reason(t) is not None)
        check_id(tokens[bad], f"{path}:{line_no}: ranked id {bad + 1}")
    result[query] = ids
    first_line[query] = line_no


def submission_gaps(submission: Mapping[int, Sequence[int]], trackids: np.ndarray, k: int = 100) -> list[str]:
    """What a submission leaves out, with counts: no lines, missing queries, short lists.

    Each scores 0 (or less) without any error, so `score` warns, and `--strict` fails.
    A list is short when it holds fewer than min(k, catalogue size - 1) ids.
    """
    if not submission:
        return [f"the submission is empty: all {len(trackids)} queries score 0"]
    gaps = []
    queries = np.fromiter(submission.keys(), dtype=np.int64, count=len(submission))
    missing = int((~np.isin(trackids, queries)).sum())
    if missing:
        gaps.append(f"{missing} of {len(trackids)} ground-truth track(s) have no line in the submission (each scores 0)")
    need = min(k, len(trackids) - 1)
    lengths = np.fromiter((len(ids) for ids in submission.values()), dtype=np.int64, count=len(submission))
    short = lengths < need
    if short.any():
        gaps.append(f"{int(short.sum())} list(s) hold fewer than {need} ids (shortest: {int(lengths.min())})")
    return gaps
