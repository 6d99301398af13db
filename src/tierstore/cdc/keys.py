"""From a changed row or item, as a change log reports it, back to the entity's key and cache key.

A change log names a table and gives column values (SQL) or key attributes (DynamoDB). Invalidation needs
the key tuple tierstore itself uses, so that :meth:`~tierstore.backends.Schema.cache_key` spells exactly the cache key
tierstore's reads fill (``{table:partition}:sort``, with composite parts joined and escaped the same way).
This module is that inverse, per store family:

* SQL: one column per field, named after the field (see :mod:`tierstore.stores.sql.tables`); the key is the
  key fields' columns. Values arrive in each log's own representation (test_decoding's text, the binlog's
  Python values) and are coerced to the key field's type (``str``/``int``/``bytes``).
* DynamoDB: a single-field key lives in the field's attribute; a composite key in a synthetic ``_pk``/``_sk``
  string attribute (see :mod:`tierstore.stores.dynamodb.codec`), decoded here part by part.

Indexes need nothing from the row: the DAX-style query cache keeps one generation per table partition and one
per index, and the invalidation bumps the partition's generation and every index's (as a tierstore write does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from tierstore.errors import ConfigError
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, KeyPart, Schema, schema_of

__all__ = ["EntityMap", "coerce_part", "decode_synthetic", "dynamo_key", "row_key"]

_TERM = "\x00\x01"
_INT_OFFSET = 2**63


class EntityMap:
    """Which entity lives in which table, as the change log names tables.

    ``entities``: the entity classes to keep coherent. ``table_prefix``: prepended to each entity's table name
    (the DynamoDB store's ``table_prefix``). Changes of other tables are ignored.
    """

    def __init__(self, entities: Iterable[type[Entity] | Schema[Any]], *, table_prefix: str = "") -> None:
        self.by_table: dict[str, Schema[Any]] = {}
        for e in entities:
            schema = e if isinstance(e, Schema) else schema_of(e)
            name = table_prefix + schema.table
            other = self.by_table.get(name)
            if other is not None and other is not schema:
                raise ConfigError(f"{schema.name} and {other.name} both live in table {name!r}")
            self.by_table[name] = schema
        if not self.by_table:
            raise ConfigError("an invalidator needs at least one entity to keep coherent")

    def __repr__(self) -> str:
        return f"EntityMap({sorted(self.by_table)})"

    def __contains__(self, table: str) -> bool:
        return table in self.by_table

    def get(self, table: str) -> Schema[Any] | None:
        return self.by_table.get(table)

    @property
    def tables(self) -> list[str]:
        return sorted(self.by_table)


def coerce_part(value: Any, typ: type) -> KeyPart | None:
    """``value`` as a key part of type ``typ`` (``str``, ``int`` or ``bytes``), or ``None`` if it cannot be one.

    A key value that cannot be coerced cannot have been cached by tierstore either (tierstore reads only take
    such parts), so such a change has nothing to invalidate.
    """
    if typ is str:
        if isinstance(value, str):
            return value or None
        if isinstance(value, bytes | bytearray):
            try:
                return bytes(value).decode("utf-8") or None
            except UnicodeDecodeError:
                return None
        return None
    if typ is int:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        if isinstance(value, str | bytes):
            try:
                return int(value)
            except ValueError:
                return None
        return None
    if typ is bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value) or None
        return None
    return None


def row_key(schema: Schema[Any], columns: Mapping[str, Any]) -> Key | None:
    """The key of a SQL row given as ``{column: value}`` (at least the key columns), or ``None``."""
    parts: list[KeyPart] = []
    for name, typ in zip(schema.key_fields, schema.key_types, strict=True):
        if name not in columns:
            return None
        part = coerce_part(columns[name], typ)
        if part is None:
            return None
        parts.append(part)
    return tuple(parts)


def decode_synthetic(text: str, types: tuple[Any, ...]) -> tuple[KeyPart, ...] | None:
    """The parts of a synthetic composite-key attribute (``_pk``/``_sk``), or ``None`` if malformed."""
    parts: list[KeyPart] = []
    pos = 0
    for typ in types:
        if typ is str:
            out: list[str] = []
            while True:
                nul = text.find("\x00", pos)
                if nul < 0 or nul + 1 >= len(text):
                    return None
                out.append(text[pos:nul])
                marker = text[nul + 1]
                pos = nul + 2
                if marker == "\x01":
                    break
                if marker != "\x02":
                    return None
                out.append("\x00")
            parts.append("".join(out))
            continue
        end = text.find(_TERM, pos)
        if end < 0:
            return None
        raw = text[pos:end]
        pos = end + len(_TERM)
        try:
            parts.append(int(raw) - _INT_OFFSET if typ is int else bytes.fromhex(raw))
        except ValueError:
            return None
    return tuple(parts) if pos == len(text) else None


def _attr_value(av: Mapping[str, Any]) -> Any:
    if "S" in av:
        return av["S"]
    if "N" in av:
        return int(av["N"]) if str(av["N"]).lstrip("-").isdigit() else None
    if "B" in av:
        b = av["B"]
        if isinstance(b, str):  # the raw JSON protocol carries base64
            import base64

            return base64.b64decode(b)
        return bytes(b)
    return None


def dynamo_key(schema: Schema[Any], keys: Mapping[str, Mapping[str, Any]]) -> Key | None:
    """The key of a DynamoDB item from its key attributes (a stream record's ``Keys``), or ``None``."""
    from tierstore.stores.dynamodb.codec import codec_for, parse_readable

    codec = codec_for(schema)
    parts: list[KeyPart] = []
    for layout in (codec.partition, codec.sort):
        if layout is None:
            continue
        av = keys.get(layout.attr)
        if av is None:
            return None
        value = _attr_value(av)
        if layout.synthetic:
            if not isinstance(value, str):
                return None
            template = getattr(layout, "template", None)
            if template is not None:  # a key template: parsed back (a constant sort template: no parts)
                decoded = template.parse(value)
            elif layout.readable:
                decoded = parse_readable(value, layout.field_types)
            else:
                decoded = decode_synthetic(value, layout.field_types)
            if decoded is None:
                return None
            parts.extend(decoded)
        else:
            part = coerce_part(value, layout.field_types[0])
            if part is None:
                return None
            parts.append(part)
    key = tuple(parts)
    return key if len(key) == len(schema.key_fields) else None
