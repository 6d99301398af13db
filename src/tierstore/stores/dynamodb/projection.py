"""Projected queries on DynamoDB: a ``ProjectionExpression`` naming the projection's attributes plus the key
attributes (table and index keys, for the cursor and key templates) and the type attribute (shared tables), and
the decoding of such partial items straight into the projection class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from tierstore.errors import StoreError
from tierstore.query import Skipped
from tierstore.stores.dynamodb.codec import AV, DynamoCodec, from_av

__all__ = ["decode_projected", "projection_expression"]


def projection_expression(
    codec: DynamoCodec[Any], index: str | None, names: Sequence[str]
) -> tuple[str, dict[str, str]]:
    """The ``ProjectionExpression`` reading the fields ``names`` (by their stored attribute names) and the
    attributes the query itself needs, with its ``#f{i}`` placeholders."""
    attrs = [codec.names[n] for n in names] + list(codec.cursor_attrs(index))
    attrs += [lay.attr for lay in codec.templates]
    if codec.type_attr is not None:
        attrs.append(codec.type_attr)
    tag = codec.cls.__struct_config__.tag_field
    if tag:
        attrs.append(tag)
    placeholders = {f"#f{i}": a for i, a in enumerate(dict.fromkeys(attrs))}
    return ", ".join(placeholders), placeholders


def decode_projected(
    codec: DynamoCodec[Any], raws: list[dict[str, AV]], cls: type[Any], names: Sequence[str], skip: bool
) -> tuple[list[Any], list[Skipped]]:
    """``raws`` (partial stored items) decoded into ``cls``; an item that does not decode raises a
    ``StoreError``, or with ``skip`` is left out and listed."""
    wanted = [
        (codec.names[n], enc)
        for n, enc in zip(cls.__struct_fields__, cls.__struct_encode_fields__, strict=True)
        if n in names
    ]
    items: list[Any] = []
    skipped: list[Skipped] = []
    for raw in raws:
        fields = codec._generic_fields(raw)
        d = {enc: fields[attr] for attr, enc in wanted if attr in fields}
        try:
            try:
                items.append(msgspec.convert(d, cls))
            except (msgspec.ValidationError, TypeError, ValueError):
                items.append(msgspec.convert(d, cls, str_keys=True))  # dicts with non-str keys travel as str
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            why = f"a stored item does not match {codec.schema.name} (as {cls.__name__}): {exc}"
            if not skip:
                raise StoreError(why, entity=codec.schema.name, backend="dynamodb") from None
            skipped.append(Skipped({a: from_av(raw[a]) for a in codec.key_attrs if a in raw}, why))
    return items, skipped
