"""Build config dataclasses from parsed TOML, checking every value against its type hint.

Why driven by the type hints: the dataclasses in `config` already say what each field
holds (`int`, `Literal["mean", "attention"]`, `tuple[int, int]`, a nested section), so
one walk over `typing.get_type_hints` checks every field of every section, and a field
added later is checked without anyone remembering to. Bounds that types cannot say
(0 < val_fraction < 1, positive sizes) are declared once beside the field with
`ranged(default, "0 < x < 1")` and checked by the same walk.

Every error is one line: file, key path (`[loss] kind`, `[[stages]] #2 lr`), what was
expected and what was found (the type, or for choices and ranges the value).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import operator
import types
import typing
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class ConfigError(ValueError):
    """A config file names an unknown key or holds a value of the wrong kind."""


def _rule_parts(rule: str) -> list[str]:
    """Split "0 < x <= 1" / "x >= 1"; a malformed rule fails when the class is defined."""
    parts = rule.split()
    ok = (len(parts) == 3 and parts[0] == "x" and parts[1] in _OPS) or (
        len(parts) == 5 and parts[2] == "x" and parts[1] in _OPS and parts[3] in _OPS)
    if not ok:
        raise ValueError(f"range rule {rule!r}: write 'x >= 1' or '0 < x <= 1'")
    for p in parts[::2]:
        if p != "x":
            float(p)
    return parts


def ranged(default: T, rule: str) -> T:
    """A dataclass field with a default and a bound, e.g. `ranged(0.1, "0 < x < 1")`.

    For a tuple or list field the bound holds for each element.
    """
    _rule_parts(rule)
    return typing.cast(T, dataclasses.field(default=default, metadata={"range": rule}))


def required(rule: str) -> Any:
    """A dataclass field without a default, with a bound (see `ranged`)."""
    _rule_parts(rule)
    return dataclasses.field(metadata={"range": rule})


def _holds(rule: str, value: float) -> bool:
    p = _rule_parts(rule)
    if p[0] == "x":
        return _OPS[p[1]](value, float(p[2]))
    return _OPS[p[1]](float(p[0]), value) and _OPS[p[3]](value, float(p[4]))


def _found(value: Any) -> str:
    """What a message shows of a value: its TOML type, never the text of a string."""
    names = {bool: "bool", int: "int", float: "float", str: "str", dict: "table", list: "array", tuple: "array"}
    return names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _expected(hint: Any) -> str:
    """A type hint in words, for "expected ...", e.g. 'list of 2 ints'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        return "number"
    if origin is dict:
        return f"table of {_expected(args[1])}s"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(a) for a in args)
    if origin in (tuple, list):
        if origin is list or args[1:] == (Ellipsis,):
            return f"list of {_expected(args[0])}s"
        return f"list of {len(args)} {_expected(args[0])}s" if len(set(args)) == 1 else \
            "list of " + ", ".join(_expected(a) for a in args)
    if dataclasses.is_dataclass(hint):
        return "table"
    return getattr(hint, "__name__", str(hint))


def _fail(where: str, path: str, message: str) -> typing.NoReturn:
    raise ConfigError(f"{where}: {path}: {message}")


def _is_sections(hint: Any) -> bool:
    """A dataclass, or a union of dataclasses told apart by their `kind` (the [model] table)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return all(dataclasses.is_dataclass(a) for a in typing.get_args(hint))
    return dataclasses.is_dataclass(hint)


def _check(value: Any, hint: Any, where: str, path: str, rule: str | None) -> Any:
    """`value` as the type `hint` asks for (tuples for tuples, floats for numbers), or ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):  # e.g. `int | None`
        alts = [a for a in args if a is not type(None)]
        if value is None and len(alts) < len(args):
            return None
        if len(alts) == 1:  # X's own message (its range, its element), not "X or nothing"
            return _check(value, alts[0], where, path, rule)
        for alt in alts:
            try:
                return _check(value, alt, where, path, rule)
            except ConfigError:
                continue
        _fail(where, path, f"expected {_expected(hint)}, found {_found(value)}")
    if hint is Any:  # free-form (a record's params): JSON values as they are
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            _fail(where, path, f"expected a table of {_expected(args[1])}, found {_found(value)}")
        return {k: _check(v, args[1], where, f"{path}.{k}", rule) for k, v in value.items()}
    if origin is Literal:
        if not any(type(value) is type(a) and value == a for a in args):
            found = _shown(value) if isinstance(value, (str, int, float)) else _found(value)
            _fail(where, path, f"expected {_expected(hint)}, found {found}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            _fail(where, path, f"expected {_expected(hint)}, found {_found(value)}")
        items = [args[0]] * len(value) if origin is list or args[1:] == (Ellipsis,) else list(args)
        if len(items) != len(value):
            _fail(where, path, f"expected {_expected(hint)}, found {len(value)} items")
        out = [_check(v, h, where, f"{path}[{i}]", rule) for i, (v, h) in enumerate(zip(value, items))]
        return tuple(out) if origin is tuple else out
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}
    if hint not in ok:
        raise TypeError(f"{path}: config_check cannot check type {hint!r}")  # a bug in config.py, not the file
    if not ok[hint](value):
        _fail(where, path, f"expected {_expected(hint)}, found {_found(value)}")
    if hint is float:
        value = float(value)
        if not math.isfinite(value):
            _fail(where, path, f"expected a finite number, found {value}")
    if rule is not None and not _holds(rule, value):
        name = path.rpartition(" ")[2]
        _fail(where, path, f"expected {' '.join(name if p == 'x' else p for p in rule.split())}, found {_shown(value)}")
    return value


def _pick(hint: Any, data: dict[str, Any], where: str, path: str) -> type:
    """The dataclass of a union that `data["kind"]` names (the first one's when kind is absent)."""
    classes = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    if len(classes) == 1:
        return classes[0]
    kinds = {typing.get_args(typing.get_type_hints(c)["kind"])[0]: c for c in classes}
    kind = data.get("kind", next(iter(kinds)))
    if not isinstance(kind, str) or kind not in kinds:
        found = _shown(kind) if isinstance(kind, str) else _found(kind)
        _fail(where, f"{path} kind", f"expected one of {', '.join(map(repr, kinds))}, found {found}")
    return kinds[kind]


def build(hint: Any, data: Any, where: str, path: str = "") -> Any:
    """Dataclass `hint` (or the union member `kind` names) from a TOML table, every field checked.

    `where` is the file (or checkpoint) named in errors, `path` the table's key path
    ("" at the top level, "[loss]", "[[stages]] #2").
    """
    if not isinstance(data, dict):
        _fail(where, path or "top level", f"expected a table, found {_found(data)}")
    cls = _pick(hint, data, where, path)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint_text = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(fields)}"
            _fail(where, f"{path} {key}".strip(), f"unknown key ({hint_text})")
    kwargs = {}
    for name, f in fields.items():
        key_path = f"{path} {name}".strip()
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                _fail(where, key_path, "missing (required)")
            continue
        value, field_hint = data[name], hints[name]
        if typing.get_origin(field_hint) is list and _is_sections(typing.get_args(field_hint)[0]):
            if not isinstance(value, list):
                _fail(where, key_path, f"expected [[{name}]] tables, found {_found(value)}")
            item = typing.get_args(field_hint)[0]
            kwargs[name] = [build(item, v, where, f"[[{name}]] #{i + 1}") for i, v in enumerate(value)]
        elif _is_sections(field_hint):
            if not isinstance(value, dict):
                _fail(where, key_path, f"expected a [{name}] table, found {_found(value)}")
            kwargs[name] = build(field_hint, value, where, f"[{name}]" if not path else f"{path} [{name}]")
        else:
            kwargs[name] = _check(value, field_hint, where, key_path, f.metadata.get("range"))
    return cls(**kwargs)
