"""Checks of an expression against an entity's schema, before any I/O.

Every path must name a declared field of the entity the operation is on (nested keys only inside Struct or
``dict`` fields), and every operand must suit the field's type: a wrong one is a ``ValidationError`` naming the
field and the value. The checks also fix what each backend may assume: ordering (``<``, ``between``) only on
``int``/``float``/``str``/``bytes`` fields, ``begins_with`` on ``str``/``bytes``, ``contains`` on ``str`` or on
a list/set/tuple field, no ``None`` operands (use ``exists()``/``not_exists()``), no NaN, ``between`` with
``low <= high``, ``in_`` with 1 to 100 values.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

import msgspec

from tierstore.errors import ValidationError
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
from tierstore.model.schema import Schema

__all__ = ["MAX_IN", "FieldType", "check_condition", "field_type", "normalize"]

MAX_IN = 100
"""Most values an ``in_`` takes (DynamoDB's limit for IN)."""

_SCALAR_KINDS = {int: "int", float: "float", str: "str", bytes: "bytes", bool: "bool"}


@dataclass(frozen=True, slots=True)
class FieldType:
    """What a path points at: the declared type (``Annotated`` stripped), whether ``None`` is allowed, and its
    kind: ``int``/``float``/``str``/``bytes``/``bool``, ``seq`` (list/set/tuple, with ``element``) or ``other``."""

    type: Any
    optional: bool
    kind: str
    element: Any = None


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def describe(tp: Any) -> FieldType:
    tp = _strip(tp)
    optional = False
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(members) < len(typing.get_args(tp))
        if len(members) == 1:
            tp = _strip(members[0])
            origin = typing.get_origin(tp)
    kind = _SCALAR_KINDS.get(tp)
    if kind is not None:
        return FieldType(tp, optional, kind)
    if origin in (list, set, frozenset) or (origin is tuple and typing.get_args(tp)[-1:] == (Ellipsis,)):
        args = typing.get_args(tp)
        return FieldType(tp, optional, "seq", args[0] if args else Any)
    if tp in (list, set, frozenset, tuple):
        return FieldType(tp, optional, "seq", Any)
    return FieldType(tp, optional, "other")


def field_type(schema: Schema[Any], path: Path) -> FieldType:
    """Resolve ``path`` on ``schema`` (``ValidationError`` when it names nothing declared)."""
    if path.entity is not schema.cls:
        raise ValidationError(
            f"{path!r} belongs to {path.entity.__name__}, but the operation is on {schema.name}", entity=schema.name
        )
    name = path.parts[0]
    if name not in schema.field_types:
        raise ValidationError(f"{schema.name} has no field {name!r} ({path!r})", entity=schema.name)
    tp: Any = schema.field_types[name]
    for i, part in enumerate(path.parts[1:], start=1):
        base = describe(tp).type
        origin = typing.get_origin(base)
        if isinstance(base, type) and issubclass(base, msgspec.Struct):
            hints = typing.get_type_hints(base, include_extras=True)
            if part not in base.__struct_fields__:
                raise ValidationError(
                    f"{'.'.join(path.parts[:i])} ({base.__name__}) has no field {part!r} ({path!r})",
                    entity=schema.name,
                )
            tp = hints[part]
        elif origin is dict and typing.get_args(base)[:1] == (str,):
            tp = typing.get_args(base)[1]
        else:
            raise ValidationError(
                f"{path!r}: {'.'.join(path.parts[:i])} is not a Struct or dict[str, ...] field", entity=schema.name
            )
    return describe(tp)


def normalize(value: Any) -> Any:
    """An operand as stores see values: msgspec builtins, ``bytes`` kept."""
    return msgspec.to_builtins(value, builtin_types=(bytes,))


def _admits(schema: Schema[Any], path: Path, ft: FieldType, value: Any, tp: Any = None) -> None:
    tp = ft.type if tp is None else tp
    if value is None:
        raise ValidationError(
            f"{path!r} compared to None: use {path!r}.exists() or .not_exists()", entity=schema.name
        )
    if isinstance(value, float) and math.isnan(value):
        raise ValidationError(f"{path!r} compared to NaN", entity=schema.name)
    try:
        msgspec.convert(value, tp, strict=True, builtin_types=(bytes,))
    except (msgspec.ValidationError, TypeError) as exc:
        raise ValidationError(
            f"{path!r} is {_name(tp)}, got {type(value).__name__} {value!r:.60} ({exc})", entity=schema.name
        ) from None
    if isinstance(value, bool) and ft.kind in ("int", "float"):
        raise ValidationError(f"{path!r} is {_name(tp)}, got bool {value!r}", entity=schema.name)


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or repr(tp)


def _ordered(schema: Schema[Any], path: Path, ft: FieldType, value: Any, what: str) -> None:
    if ft.kind not in ("int", "float", "str", "bytes"):
        raise ValidationError(
            f"{path!r} is {_name(ft.type)}: {what} needs an int, float, str or bytes field", entity=schema.name
        )
    if isinstance(value, enum.Enum):
        value = value.value
    ok = (
        isinstance(value, int | float) and not isinstance(value, bool)
        if ft.kind in ("int", "float")
        else isinstance(value, str if ft.kind == "str" else bytes)
    )
    if not ok:
        raise ValidationError(
            f"{path!r} is {_name(ft.type)}, got {type(value).__name__} {value!r:.60}", entity=schema.name
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{path!r} compared to {value}", entity=schema.name)


def check_condition(schema: Schema[Any], condition: Any, what: str = "where") -> Condition:
    """``condition`` checked against ``schema``; raises ``ValidationError`` before any I/O."""
    if isinstance(condition, bool):
        raise ValidationError(
            f"{what}= got a bool: build the condition from the entity class, e.g. {schema.name}.<field> == value "
            f"(a relation or a name that is not a field compares as a plain bool)",
            entity=schema.name,
        )
    if not isinstance(condition, Condition):
        raise ValidationError(
            f"{what}= takes a condition such as {schema.name}.<field> == value, got {type(condition).__name__}",
            entity=schema.name,
        )
    _check(schema, condition)
    return condition


def _check(schema: Schema[Any], c: Condition) -> None:
    if isinstance(c, And | Or):
        for item in c.items:
            _check(schema, item)
        return
    if isinstance(c, Not):
        _check(schema, c.item)
        return
    path = c.path  # type: ignore[attr-defined]
    ft = field_type(schema, path)
    if isinstance(c, Compare):
        if c.op in ("eq", "ne"):
            _admits(schema, path, ft, c.value)
        else:
            _ordered(schema, path, ft, c.value, c.op)
    elif isinstance(c, Between):
        _ordered(schema, path, ft, c.low, "between")
        _ordered(schema, path, ft, c.high, "between")
        if normalize(c.low) > normalize(c.high):
            raise ValidationError(
                f"{path!r}.between({c.low!r:.40}, {c.high!r:.40}): low is above high", entity=schema.name
            )
    elif isinstance(c, BeginsWith):
        if ft.kind not in ("str", "bytes"):
            raise ValidationError(f"{path!r} is {_name(ft.type)}: begins_with needs a str or bytes field",
                                  entity=schema.name)
        _ordered(schema, path, ft, c.prefix, "begins_with")
        if not c.prefix:
            raise ValidationError(f"{path!r}.begins_with() needs a non-empty prefix", entity=schema.name)
    elif isinstance(c, In):
        if not 1 <= len(c.options) <= MAX_IN:
            raise ValidationError(f"{path!r}.in_() takes 1 to {MAX_IN} values, got {len(c.options)}",
                                  entity=schema.name)
        for v in c.options:
            _admits(schema, path, ft, v)
    elif isinstance(c, Contains):
        if ft.kind == "str":
            if not isinstance(c.value, str) or not c.value:
                raise ValidationError(f"{path!r} is str: contains() needs a non-empty str, got {c.value!r:.60}",
                                      entity=schema.name)
        elif ft.kind == "seq":
            _admits(schema, path, ft, c.value, ft.element)
            if describe(ft.element).kind not in ("int", "float", "str", "bytes", "bool"):
                raise ValidationError(f"{path!r}: contains() works on elements of type str, int, float, bytes "
                                      f"or bool", entity=schema.name)
        else:
            raise ValidationError(
                f"{path!r} is {_name(ft.type)}: contains() needs a str, list, set or tuple field", entity=schema.name
            )
    elif not isinstance(c, Exists):  # pragma: no cover - every node type is handled above
        raise ValidationError(f"unknown condition {c!r}", entity=schema.name)
