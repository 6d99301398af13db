"""Readable composite partition keys on DynamoDB: ``acme#s1``.

A partition key is only compared for equality, so a composite one is its parts joined by ``#``: ``str`` parts
with ``%`` and ``#`` percent-escaped (``%25``, ``%23``), ``int`` parts in decimal, ``bytes`` parts in hex. The
number of parts is fixed by the entity, so the text parses back (:func:`parse_readable`; change data capture
reads keys from stream records this way). Composite sort keys keep the order-preserving encoding of
:mod:`tierstore.stores.dynamodb.codec`.
"""

from __future__ import annotations

from typing import Any

from tierstore.errors import ValidationError
from tierstore.model.keys import KeyPart

__all__ = ["parse_readable", "readable"]


def readable(value: KeyPart) -> str:
    """One part of a composite partition key as readable text: ``%`` and ``#`` of a str percent-escaped, an
    int in decimal, bytes in hex."""
    if isinstance(value, str):
        return value.replace("%", "%25").replace("#", "%23") if ("%" in value or "#" in value) else value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise ValidationError(f"key parts are str, int or bytes, got {type(value).__name__}", backend="dynamodb")


def parse_readable(text: str, types: tuple[Any, ...]) -> tuple[KeyPart, ...] | None:
    """The parts of a readable composite partition key, or ``None`` when ``text`` is not one."""
    pieces = text.split("#")
    if len(pieces) != len(types):
        return None
    out: list[KeyPart] = []
    try:
        for piece, typ in zip(pieces, types, strict=True):
            if typ is str:
                out.append(piece.replace("%23", "#").replace("%25", "%") if "%" in piece else piece)
            elif typ is int:
                out.append(int(piece))
            else:
                out.append(bytes.fromhex(piece))
    except ValueError:
        return None
    return tuple(out)
