"""Evaluation of a checked condition on an item in Python: the memory store's filter and condition, and the
reference semantics the SQL and DynamoDB compilations agree with (a property test holds them to it).

A field that is ``None`` (or a nested key that is missing) is *absent*: every comparison on it is false, so its
negation is true (``~(Order.note == "x")`` holds for an item without a note), ``exists()`` is false. A missing
item (a condition on a write to a key that holds nothing) has every field absent.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tierstore.expressions.ast import (
    And,
    BeginsWith,
    Between,
    Compare,
    Condition,
    Contains,
    Exists,
    In,
    Not,
    Or,
    Path,
)

__all__ = ["evaluate"]

_ABSENT: Any = object()


def _norm(value: Any) -> Any:
    return msgspec.to_builtins(value, builtin_types=(bytes,))


def _read(item: Any, path: Path) -> Any:
    if item is None:
        return _ABSENT
    value = getattr(item, path.parts[0])
    for part in path.parts[1:]:
        if value is None:
            return _ABSENT
        value = value.get(part, _ABSENT) if isinstance(value, dict) else getattr(value, part, _ABSENT)
        if value is _ABSENT:
            return _ABSENT
    return _ABSENT if value is None else _norm(value)


def evaluate(condition: Condition, item: Any) -> bool:
    """Whether ``item`` (``None``: no item) satisfies the checked ``condition``."""
    c = condition
    if isinstance(c, And):
        return all(evaluate(x, item) for x in c.items)
    if isinstance(c, Or):
        return any(evaluate(x, item) for x in c.items)
    if isinstance(c, Not):
        return not evaluate(c.item, item)
    v = _read(item, c.path)  # type: ignore[attr-defined]
    if isinstance(c, Exists):
        return (v is not _ABSENT) == c.present
    if v is _ABSENT:
        return isinstance(c, Compare) and c.op == "ne"
    if isinstance(c, Compare):
        w = _norm(c.value)
        op = c.op
        if op == "eq":
            return bool(v == w)
        if op == "ne":
            return bool(v != w)
        if op == "lt":
            return bool(v < w)
        if op == "le":
            return bool(v <= w)
        if op == "gt":
            return bool(v > w)
        return bool(v >= w)
    if isinstance(c, Between):
        return bool(_norm(c.low) <= v <= _norm(c.high))
    if isinstance(c, BeginsWith):
        return isinstance(v, str | bytes) and v.startswith(_norm(c.prefix))
    if isinstance(c, In):
        return any(v == _norm(o) for o in c.options)
    if isinstance(c, Contains):
        w = _norm(c.value)
        if isinstance(v, str):
            return isinstance(w, str) and w in v
        return isinstance(v, list) and any(x == w for x in v)
    raise TypeError(f"unknown condition {c!r}")  # pragma: no cover - checked trees hold known nodes
