"""The one id check: plain non-negative integers below 2^63, everything else named and refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from artistsim.data.errors import DataError
from artistsim.data.ids import NEGATIVE, NOT_PLAIN, TOO_LARGE, check_id, check_ids, parse_ids


@pytest.mark.parametrize("value, expected", [(0, 0), (7, 7), ("42", 42), (" 42 ", 42), ("+5", 5),
                                             (np.int64(9), 9), (2**63 - 1, 2**63 - 1), (str(2**63 - 1), 2**63 - 1),
                                             ("0" * 25 + "3", 3)])
def test_plain_ids_pass(value, expected):
    assert check_id(value, "x") == expected


@pytest.mark.parametrize("value, reason", [
    (-1, NEGATIVE), ("-7", NEGATIVE), ("-0", NEGATIVE), (2**63, TOO_LARGE), ("99999999999999999999", TOO_LARGE),
    (10**30, TOO_LARGE), (True, NOT_PLAIN), (1e3, NOT_PLAIN), ("1e3", NOT_PLAIN), ("inf", NOT_PLAIN),
    (float("inf"), NOT_PLAIN), ("nan", NOT_PLAIN), ("1.0", NOT_PLAIN), ("١٢", NOT_PLAIN), (None, NOT_PLAIN),
    ("", "is empty"),
])
def test_everything_else_is_refused_with_where_and_why(value, reason):
    with pytest.raises(DataError, match=f"^manifest.tsv line 7: trackid {reason[:20]}"):
        check_id(value, "manifest.tsv line 7: trackid")


def test_the_message_never_quotes_the_value():
    with pytest.raises(DataError) as err:
        check_id("root:x:0:0", "meta line 2: trackid")
    assert "root" not in str(err.value)


def test_a_column_is_checked_at_once_and_the_first_bad_line_named():
    col = pd.Series(["1", "2", "1e3", "-4", str(2**63)])
    ids, reasons = parse_ids(col)
    assert ids.tolist() == [1, 2, -1, -1, -1]
    assert reasons.tolist() == [None, None, NOT_PLAIN, NEGATIVE, TOO_LARGE]
    with pytest.raises(DataError, match=r"^m.tsv line 4: trackid must be a plain integer .*\(and 2 more\)"):
        check_ids(col, "m.tsv", "trackid", first_line=2)


@pytest.mark.parametrize("arr, ok", [(np.array([1, 2], np.int64), True), (np.array([1, -2], np.int64), False),
                                     (np.array([2**63], np.uint64), False), (np.array([1.0]), False),
                                     (np.array([True]), False), (np.array([1, 10**30], dtype=object), False)])
def test_numeric_arrays(arr, ok):
    if ok:
        assert check_ids(arr, "new tracks").tolist() == arr.tolist()
    else:
        with pytest.raises(DataError, match="new tracks: id number"):
            check_ids(arr, "new tracks")
