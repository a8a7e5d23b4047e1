"""The one id check: every trackid and artist id that enters artistsim passes through here.

Ids arrive from meta TSVs, featurize manifests, catalogue segments, CLI arguments and
HTTP requests. Each of them has been seen to carry `1e3` (read as 1000), `inf`, `-7`
(stored, then silently dropped from every answer while taking a slot) and 20-digit
numbers (an OverflowError, or a wrap to -9223372036854775808). One rule for all: an id is
a plain non-negative integer below 2^63 (int64), written with digits only; anything else
is refused with one line naming where it came from, never rounded, cast or wrapped.

Messages never quote the value: an id column may belong to a file that is not what it
claims to be (a meta path linked to /etc/shadow), so only the kind of fault is named.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from artistsim.data.errors import DataError

ID_LIMIT = 2**63  # ids are int64 on disk and in memory: [0, 2^63)
_INT64_MAX = str(ID_LIMIT - 1)

NEGATIVE = "must be a non-negative integer"
TOO_LARGE = "is beyond the 64-bit integer range (must be below 2^63)"
NOT_PLAIN = "must be a plain integer (no decimals, exponents, inf or nan)"
EMPTY = "is empty"


def id_reason(value: object) -> str | None:
    """Why `value` is not an id, or None when it is one (see the module's rule)."""
    if isinstance(value, (bool, np.bool_)):
        return NOT_PLAIN
    if isinstance(value, numbers.Integral):
        v = int(value)
        return NEGATIVE if v < 0 else TOO_LARGE if v >= ID_LIMIT else None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return EMPTY
        digits = text[1:] if text[0] in "+-" else text
        if not (digits.isascii() and digits.isdigit()):
            return NOT_PLAIN
        return NEGATIVE if text[0] == "-" else TOO_LARGE if int(digits) >= ID_LIMIT else None
    return NOT_PLAIN  # floats (1e3, inf, nan), bytes, lists, None ...


def check_id(value: object, where: str) -> int:
    """`value` as an int id in [0, 2^63); DataError "`where` ..." naming the fault otherwise."""
    reason = id_reason(value)
    if reason is not None:
        raise DataError(f"{where} {reason}")
    return int(value.strip()) if isinstance(value, str) else int(value)  # type: ignore[call-overload]


def parse_ids(values: object) -> tuple[np.ndarray, np.ndarray]:
    """(ids as int64 with -1 where bad, the reason per row or None): a whole column at once.

    Text columns (meta TSVs, manifests) are checked with vectorised string operations;
    integer arrays by one range comparison; float and bool arrays are refused whole.
    """
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    arr = arr.reshape(-1)
    n = len(arr)
    out = np.full(n, -1, dtype=np.int64)
    reasons = np.full(n, None, dtype=object)
    if arr.dtype.kind in "iu":
        neg = arr < 0 if arr.dtype.kind == "i" else np.zeros(n, dtype=bool)
        big = arr.astype(np.uint64) >= np.uint64(ID_LIMIT) if arr.dtype.kind == "u" else np.zeros(n, dtype=bool)
        reasons[neg], reasons[big] = NEGATIVE, TOO_LARGE
        ok = ~(neg | big)
        out[ok] = arr[ok].astype(np.int64)
        return out, reasons
    if arr.dtype.kind in "fbc":
        reasons[:] = NOT_PLAIN
        return out, reasons
    if arr.dtype.kind in "OUS" and all(isinstance(v, str) for v in arr):
        return _parse_text(pd.Series(arr, dtype=object), out, reasons)
    for i, v in enumerate(arr):  # mixed Python objects (a JSON list): few, one by one
        reasons[i] = id_reason(v)
        if reasons[i] is None:
            out[i] = int(v.strip()) if isinstance(v, str) else int(v)
    return out, reasons


def _parse_text(text: pd.Series, out: np.ndarray, reasons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = text.str.strip().str.lstrip("+")
    ok = np.array(t.str.fullmatch(r"[0-9]{1,19}"), dtype=bool)
    long = ok & (t.str.len().to_numpy() == 19)
    if long.any():
        ok[long] = (t[long] <= _INT64_MAX).to_numpy(dtype=bool)
    if ok.any():
        out[ok] = t[ok].astype(np.int64).to_numpy()
    for row in np.flatnonzero(~ok):  # only the rows the fast path did not take, usually none
        reasons[row] = id_reason(text.iloc[row])
        if reasons[row] is None:  # e.g. 20 digits with leading zeros
            out[row] = int(text.iloc[row].strip())
    return out, reasons


def check_ids(values: object, where: str, name: str = "id", first_line: int | None = None) -> np.ndarray:
    """A column of ids as int64; DataError naming the first bad row otherwise.

    With `first_line` (the file line of row 0, e.g. 2 below a header) the message reads
    "`where` line N: `name` ...", else "`where`: `name` number N ..." (N counts from 1).
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "i" and (arr.size == 0 or arr.min() >= 0):  # the common case, one pass: a segment's ids
        return arr.astype(np.int64, copy=False).reshape(-1)
    ids, reasons = parse_ids(values)
    bad = np.flatnonzero(reasons != None)  # noqa: E711 - elementwise over an object array
    if len(bad):
        row = int(bad[0])
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        place = (f"{where} line {row + first_line}: {name}" if first_line is not None
                 else f"{where}: {name} number {row + 1}")
        raise DataError(f"{place} {reasons[row]}{more}")
    return ids
