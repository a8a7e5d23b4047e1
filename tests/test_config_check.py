"""The type-hint-driven checker on its own: kinds of hints no artistsim config uses yet.

tests/test_config.py covers the real configs; here a toy dataclass shows that optional
values, unions, nested tables, arrays of tables and required fields are handled by the
one walk over the type hints, with the same one-line messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from artistsim.config_check import ConfigError, build, ranged, required


@dataclass
class Inner:
    size: int = required("x >= 1")
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    limit: int | None = ranged(None, "x >= 1")
    either: int | str = 0
    ratios: tuple[float, ...] = ranged((0.5,), "0 < x <= 1")
    inner: Inner = field(default_factory=lambda: Inner(1))
    parts: list[Inner] = field(default_factory=list)


def test_good_values_are_built_with_the_hinted_types():
    got = build(Outer, {"limit": 3, "either": "s", "ratios": [1, 0.25], "inner": {"size": 2, "mode": "b"},
                        "parts": [{"size": 4}]}, "f.toml")
    assert got == Outer(3, "s", (1.0, 0.25), Inner(2, "b"), [Inner(4)])
    assert type(got.ratios[0]) is float
    assert build(Outer, {"limit": None}, "ckpt").limit is None  # a checkpoint may hold None


@pytest.mark.parametrize("data,message", [
    ({"limit": 0}, "f.toml: limit: expected limit >= 1, found 0"),
    ({"limit": "3"}, "f.toml: limit: expected int, found str"),
    ({"either": 1.5}, "f.toml: either: expected int or str, found float"),
    ({"ratios": [0.5, 0]}, "f.toml: ratios[1]: expected 0 < ratios[1] <= 1, found 0.0"),
    ({"ratios": [float("nan")]}, "f.toml: ratios[0]: expected a finite number, found nan"),
    ({"inner": {"size": 2, "mode": "c"}}, "f.toml: [inner] mode: expected one of 'a', 'b', found 'c'"),
    ({"inner": {}}, "f.toml: [inner] size: missing (required)"),
    ({"inner": {"size": 1, "sise": 2}}, "f.toml: [inner] sise: unknown key (did you mean 'size'?)"),
    ({"parts": [{"size": 1}, {"size": True}]}, "f.toml: [[parts]] #2 size: expected int, found bool"),
    ({"parts": {"size": 1}}, "f.toml: parts: expected [[parts]] tables, found table"),
])
def test_bad_values_name_the_key_and_what_was_expected(data, message):
    with pytest.raises(ConfigError) as info:
        build(Outer, data, "f.toml")
    assert str(info.value) == message


def test_a_type_the_checker_does_not_know_is_a_bug_not_a_config_error():
    @dataclass
    class Odd:
        value: bytes = b""

    with pytest.raises(TypeError, match="cannot check"):
        build(Odd, {"value": b"x"}, "f.toml")
