"""Partial updates: what ``repository.update(...)`` changes, checked before any I/O, and applied in Python.

- ``set={"status": "paid"}``: new values (checked against the field types);
- ``add={"balance": 5}``: atomic increments of ``int``/``float`` fields (negative to subtract);
- ``remove=["note"]``: optional fields back to ``None``;
- ``append={"tags": ["x"]}``: elements added at the end of ``list`` fields.

Key fields cannot change (that is another item), the version field is the store's to advance, and a field
appears in one kind of change at most.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from tierstore.errors import ValidationError
from tierstore.expressions.check import describe
from tierstore.model.schema import Schema

__all__ = ["Changes", "apply_changes", "check_changes"]


@dataclass(frozen=True, slots=True)
class Changes:
    """Checked changes of one item. Values of ``set`` and ``append`` are already converted to the field types."""

    set: tuple[tuple[str, Any], ...] = ()
    add: tuple[tuple[str, int | float], ...] = ()
    remove: tuple[str, ...] = ()
    append: tuple[tuple[str, list[Any]], ...] = ()

    def fields(self) -> list[str]:
        return [f for f, _ in self.set] + [f for f, _ in self.add] + list(self.remove) + [f for f, _ in self.append]

    def shape(self) -> tuple[Any, ...]:
        """The structure without the values (one compiled statement per shape)."""
        return (
            tuple(f for f, _ in self.set), tuple(f for f, _ in self.add), self.remove,
            tuple((f, len(v)) for f, v in self.append),
        )


def _field(schema: Schema[Any], name: Any, what: str) -> Any:
    if not isinstance(name, str):
        raise ValidationError(f"{what} names fields by their name (a str), got {name!r:.60}", entity=schema.name)
    if name not in schema.field_types:
        raise ValidationError(f"{schema.name} has no field {name!r} ({what})", entity=schema.name)
    if name in schema.key_fields:
        raise ValidationError(
            f"{schema.name}.{name} is part of the key: an update cannot move an item (put it under the new key "
            "and delete the old one)", entity=schema.name,
        )
    if name == schema.version:
        raise ValidationError(f"{schema.name}.{name} is the version: the store advances it", entity=schema.name)
    return schema.field_types[name]


def _convert(schema: Schema[Any], name: str, tp: Any, value: Any, what: str) -> Any:
    try:
        return msgspec.convert(value, tp, strict=True, builtin_types=(bytes,))
    except (msgspec.ValidationError, TypeError) as exc:
        raise ValidationError(
            f"{what}: {schema.name}.{name} is {getattr(tp, '__name__', tp)}, got {type(value).__name__} "
            f"{value!r:.60} ({exc})", entity=schema.name,
        ) from None


def check_changes(
    schema: Schema[Any],
    set: Mapping[str, Any] | None = None,  # the keyword users write
    add: Mapping[str, int | float] | None = None,
    remove: Iterable[str] = (),
    append: Mapping[str, Iterable[Any]] | None = None,
) -> Changes:
    """The changes, checked against ``schema`` (``ValidationError`` naming the field and the value)."""
    sets: list[tuple[str, Any]] = []
    for name, value in (set or {}).items():
        tp = _field(schema, name, "set")
        sets.append((name, _convert(schema, name, tp, value, "set")))
    adds: list[tuple[str, int | float]] = []
    for name, delta in (add or {}).items():
        ft = describe(_field(schema, name, "add"))
        if ft.kind not in ("int", "float") or ft.optional:
            raise ValidationError(
                f"add: {schema.name}.{name} must be an int or float field that cannot be None", entity=schema.name
            )
        if isinstance(delta, bool) or not isinstance(delta, int | float) or (ft.kind == "int" and
                                                                            not isinstance(delta, int)):
            raise ValidationError(
                f"add: {schema.name}.{name} is {ft.kind}, got {type(delta).__name__} {delta!r:.60}", entity=schema.name
            )
        if isinstance(delta, float) and delta != delta:
            raise ValidationError(f"add: {schema.name}.{name} got NaN", entity=schema.name)
        adds.append((name, delta))
    if isinstance(remove, str):
        raise ValidationError("remove= takes a list of field names", entity=schema.name)
    removes: list[str] = []
    for name in remove:
        ft = describe(_field(schema, name, "remove"))
        if not ft.optional:
            raise ValidationError(
                f"remove: {schema.name}.{name} cannot be None (remove sets an optional field to None)",
                entity=schema.name,
            )
        removes.append(name)
    appends: list[tuple[str, list[Any]]] = []
    for name, values in (append or {}).items():
        tp = _field(schema, name, "append")
        ft = describe(tp)
        if typing.get_origin(ft.type) is not list or ft.optional:
            raise ValidationError(f"append: {schema.name}.{name} must be a list field that cannot be None",
                                  entity=schema.name)
        if isinstance(values, str | bytes):
            raise ValidationError(f"append: {schema.name}.{name} takes a list of elements", entity=schema.name)
        items = _convert(schema, name, ft.type, list(values), "append")
        if not items:
            raise ValidationError(f"append: {schema.name}.{name} got no elements", entity=schema.name)
        appends.append((name, items))
    changes = Changes(tuple(sets), tuple(adds), tuple(removes), tuple(appends))
    names = changes.fields()
    if not names:
        raise ValidationError("update needs at least one change (set=, add=, remove= or append=)", entity=schema.name)
    if len(names) != len(frozenset(names)):
        raise ValidationError(f"update changes a field twice: {sorted(names)}", entity=schema.name)
    return changes


def apply_changes(schema: Schema[Any], item: Any, changes: Changes) -> Any:
    """``item`` with ``changes`` applied (the version field untouched)."""
    new: dict[str, Any] = dict(changes.set)
    for name, delta in changes.add:
        new[name] = getattr(item, name) + delta
    for name in changes.remove:
        new[name] = None
    for name, values in changes.append:
        new[name] = [*getattr(item, name), *values]
    return msgspec.structs.replace(item, **new)
