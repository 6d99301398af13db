"""Compilation of a checked condition to a DynamoDB condition/filter expression.

Every attribute name travels as a placeholder (``#x0``), so reserved words (``status``, ``name``…) and names
with dots need no care; every operand as a value placeholder (``:x0``) in the codec's AttributeValue form.
The meaning is :func:`tierstore.expressions.memory.evaluate`'s: tierstore stores ``None`` as a ``NULL``
attribute, so ``exists()`` is ``attribute_exists(#a) AND NOT attribute_type(#a, NULL)``, and ``!=`` is
``NOT (#a = :v)`` (true for an absent or ``NULL`` attribute, as in Python).
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
from tierstore.expressions.check import normalize

__all__ = ["DynamoExpression"]

_OPS = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class DynamoExpression:
    """Collects the names and values of one or more expressions of one request.

    ``prefix`` keeps the placeholders apart from the others of the request (``#x0`` vs. a key condition's
    ``#p``). ``to_av`` is the store's value encoder.
    """

    def __init__(self, names: dict[str, str], to_av: Any, prefix: str = "x") -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._attr_names = names  # field name -> stored attribute name
        self._to_av = to_av
        self._prefix = prefix
        self._by_name: dict[str, str] = {}

    def _name(self, name: str) -> str:
        ph = self._by_name.get(name)
        if ph is None:
            ph = self._by_name[name] = f"#{self._prefix}{len(self._by_name)}"
            self.names[ph] = name
        return ph

    def path(self, path: Path) -> str:
        parts = [self._name(self._attr_names.get(path.parts[0], path.parts[0]))]
        if len(path.parts) > 1:
            parts += [self._name(_nested_name(path, i)) for i in range(1, len(path.parts))]
        return ".".join(parts)

    def value(self, value: Any) -> str:
        ph = f":{self._prefix}{len(self.values)}"
        self.values[ph] = self._to_av(normalize(value))
        return ph

    def condition(self, c: Condition) -> str:
        if isinstance(c, And):
            return " AND ".join(f"({self.condition(x)})" for x in c.items)
        if isinstance(c, Or):
            return " OR ".join(f"({self.condition(x)})" for x in c.items)
        if isinstance(c, Not):
            return f"NOT ({self.condition(c.item)})"
        a = self.path(c.path)  # type: ignore[attr-defined]
        if isinstance(c, Exists):
            null = self.value("NULL")
            present = f"attribute_exists({a}) AND NOT attribute_type({a}, {null})"
            return present if c.present else f"NOT ({present})"
        if isinstance(c, Compare):
            if c.op == "ne":
                return f"NOT ({a} = {self.value(c.value)})"
            return f"{a} {_OPS[c.op]} {self.value(c.value)}"
        if isinstance(c, Between):
            return f"{a} BETWEEN {self.value(c.low)} AND {self.value(c.high)}"
        if isinstance(c, BeginsWith):
            return f"begins_with({a}, {self.value(c.prefix)})"
        if isinstance(c, In):
            return f"{a} IN ({', '.join(self.value(o) for o in c.options)})"
        if isinstance(c, Contains):
            return f"contains({a}, {self.value(c.value)})"
        raise TypeError(f"unknown condition {c!r}")  # pragma: no cover


def _nested_name(path: Path, i: int) -> str:
    """The stored name of ``path.parts[i]``: a nested Struct's field may be renamed (msgspec ``rename``)."""
    import typing

    from tierstore.model.schema import schema_of

    tp: Any = schema_of(path.entity).field_types[path.parts[0]]
    for j in range(1, i + 1):
        while typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) is not dict and len(args) == 1 and not isinstance(tp, type):
            tp = args[0]
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            fields = {f.name: f for f in msgspec.structs.fields(tp)}
            info = fields[path.parts[j]]
            if j == i:
                return info.encode_name
            tp = info.type
        else:
            if j == i:
                return path.parts[j]
            tp = typing.get_args(tp)[1] if typing.get_origin(tp) is dict else Any
    return path.parts[i]  # pragma: no cover
